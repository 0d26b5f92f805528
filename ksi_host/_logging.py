"""Where the daemon's log goes and in which shape: ``ksi-host run --log-*``.

Text (the default) is one readable line per record; ``json`` is one JSON object per
line with ``time``, ``level``, ``logger``, ``plugin``, ``event``, ``correlation_id``
and ``message`` (plus ``exception`` with the traceback, and the trace fields
``hook``, ``stage``, ``result``, ``duration_ms`` on trace lines), for journald or a
log collector. ``plugin`` and ``event`` come from the record when the host names
them; ``event`` and ``correlation_id`` otherwise from the socket request being
served, so a plugin's own log lines carry them too.

A log file is rotated by size (``--log-max-bytes``, keeping ``--log-backups`` old
files); without one the log goes to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Final, Literal

from ksi_host._current import CURRENT_REQUEST
from ksi_host._defaults import LOG_BACKUPS, LOG_MAX_BYTES
from ksi_host._trace import TRACE_LOGGER
from ksi_host.errors import ConfigError

__all__ = [
    "JsonFormatter",
    "LogFormat",
    "configure_logging",
]

LogFormat = Literal["text", "json"]
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_TRACE_FIELDS: Final = ("hook", "stage", "result", "duration_ms")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        request = CURRENT_REQUEST.get()
        event = getattr(record, "event", None) or (request[0] if request else None)
        cid = getattr(record, "correlation_id", None)
        if cid is None and request is not None:
            cid = request[1]
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "plugin": getattr(record, "plugin", None),
            "event": event,
            "correlation_id": cid,
            "message": record.getMessage(),
        }
        for field in _TRACE_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(
    *,
    level: str,
    log_file: Path | None = None,
    log_format: LogFormat = "text",
    max_bytes: int = LOG_MAX_BYTES,
    backups: int = LOG_BACKUPS,
    trace: bool = False,
) -> None:
    """Send every ``ksi_host`` and plugin record to stderr or a rotated file, as text or JSON."""
    handler = _file_handler(log_file, max_bytes, backups) if log_file else _stderr_handler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(_TEXT_FORMAT)
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    if trace:
        TRACE_LOGGER.setLevel(logging.INFO)


def _stderr_handler() -> logging.Handler:
    return logging.StreamHandler(sys.stderr)


def _file_handler(path: Path, max_bytes: int, backups: int) -> logging.Handler:
    import logging.handlers  # only --log-file needs it

    path = path.expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
    except OSError as exc:
        problem = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError):
            problem = f"{exc.filename} is not a directory"
        raise ConfigError(
            what=f"cannot write the log file: {problem}",
            where=f"--log-file {path}",
            hint="choose a file in a directory you can write to, or leave --log-file out "
            "to log to stderr",
        ) from None
