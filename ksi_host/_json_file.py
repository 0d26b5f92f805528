"""Replace a JSON file atomically: a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["replace_json"]


def replace_json(path: Path, data: object, *, indent: int | None = None) -> None:
    """Write ``data`` beside ``path`` (mode 0600 from the start), then rename it into place.

    Raises :class:`OSError` when the folder cannot be made or written.
    """
    text = json.dumps(data, indent=indent)  # one C call; json.dump encodes in Python
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    scratch.replace(path)
