"""The parent side of ``doctor``'s isolated imports: one worker for all, a fresh one after a crash.

The worker (:mod:`ksi_host._doctor.worker`) announces each import before it starts,
so when it dies or goes quiet the candidate in flight is known. A crash is only
pinned on a candidate that was the first import of its worker (otherwise the
crash might come from state an earlier plugin left behind): the others are
retried first in a fresh worker. A hang is pinned at once, since waiting twice
would double the cost. Healthy runs cost exactly one extra process.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Final

from ksi_host._defaults import DOCTOR_IMPORT_TIMEOUT
from ksi_host._doctor.worker import TRACEBACK_LINES, candidate_to_wire
from ksi_host._plan import Candidate
from ksi_host._signal_name import signal_name
from ksi_host.errors import WorkerError

__all__ = ["Failure", "WorkerError", "import_isolated"]

_ABORT_GRACE: Final = 2.0
_WORKER: Final = "import sys; del sys.path[0]; from ksi_host._doctor.worker import main; main()"
"""The worker, started with the working directory off ``sys.path``: doctor checks what is
installed, as ``ksi-host run`` sees it, not what happens to lie in the current directory."""
_IDLE_GRACE: Final = 30.0
"""Seconds the worker may take outside any import (its own start-up) before it counts as stuck."""


@dataclass(frozen=True)
class Failure:
    """Candidate ``index`` took the worker down (``crashed``) or never finished (``timeout``)."""

    index: int
    kind: str
    detail: str
    output: str

    @property
    def frames(self) -> tuple[tuple[str, int], ...]:
        """The ``(file, line)`` of each frame faulthandler dumped, innermost last.

        A worker that crashed or hung leaves no exception behind, only faulthandler's
        report in its output (``File "x.py", line 2 in <module>``, most recent call
        first); this is the one place that report is read.
        """
        frames: list[tuple[str, int]] = []
        for text in self.output.splitlines():
            head, quote, rest = text.strip().partition('File "')
            file, _, after = rest.partition('", line ')
            number = after.split(" ", 1)[0]
            if not head and quote and file and number.isdigit():
                frames.append((file, int(number)))
        newest_first = "most recent call first" in self.output
        return tuple(reversed(frames)) if newest_first else tuple(frames)


def import_isolated(
    candidates: Sequence[Candidate],
    *,
    disabled: Mapping[str, str],
    sections: Mapping[str, Any],
    trust_paths: Sequence[str] = (),
    timeout: float = DOCTOR_IMPORT_TIMEOUT,
    sys_path: Sequence[str] = (),
) -> list[dict[str, Any] | Failure]:
    """Describe every candidate out of process: the worker's ``done`` event, or a Failure.

    ``sys_path`` folders go first on the worker's ``sys.path`` (distributions staged
    there are imported instead of the installed ones).
    """
    results: dict[int, dict[str, Any] | Failure] = {}
    pending = list(range(len(candidates)))
    base = {
        "disabled": dict(disabled),
        "sections": dict(sections),
        "trust_paths": list(trust_paths),
        "sys_path": list(sys_path),
    }
    while pending:
        run = _Run(candidates, pending, base, timeout)
        run.wait()
        results.update(run.done)
        if run.failure is not None:
            first = run.started[:1] == [run.failure.index]
            if first or run.failure.kind == "timeout":
                results[run.failure.index] = run.failure
        pending = [index for index in pending if index not in results]
    return [results[index] for index in range(len(candidates))]


class _Run:
    """One worker process over the pending candidates, read line by line with a deadline."""

    def __init__(
        self,
        candidates: Sequence[Candidate],
        pending: Sequence[int],
        base: Mapping[str, Any],
        timeout: float,
    ) -> None:
        self.timeout = timeout
        self.done: dict[int, dict[str, Any]] = {}
        self.started: list[int] = []
        self.failure: Failure | None = None
        self.in_flight: int | None = None
        self.stderr_at = 0
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in wait)
        request = {"candidates": [[i, candidate_to_wire(candidates[i])] for i in pending], **base}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request, default=str).encode())
        self.proc.stdin.close()

    def wait(self) -> None:
        try:
            self._read()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self.stderr.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        stream = self.proc.stdout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while True:
                allowed = self.timeout if self.in_flight is not None else _IDLE_GRACE
                deadline = time.monotonic() + allowed
                if not selector.select(max(0.0, deadline - time.monotonic())):
                    self._fail("timeout", f"did not finish importing within {allowed:g} s (hung?)")
                    return
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    self.proc.wait()
                    self._fail("crashed", _exit_detail(self.proc.returncode))
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if self._event(json.loads(line)):
                        return

    def _event(self, event: dict[str, Any]) -> bool:
        """Record one event; True at the end of the run."""
        if "start" in event:
            self.in_flight = int(event["start"])
            self.started.append(self.in_flight)
            self.stderr_at = event.get("stderr_at") or 0
        elif "done" in event:
            self.done[int(event["done"])] = event
            self.in_flight = None
        return bool(event.get("end"))

    def _fail(self, kind: str, detail: str) -> None:
        """Blame the import in flight; between imports, the next run goes on after the last done."""
        if self.in_flight is None and self.started:
            return
        if self.in_flight is None:
            raise WorkerError(
                what=f"the doctor worker {detail} outside any plugin import",
                where=self._output() or "no output",
                hint=_bug_hint(),
            )
        if self.proc.poll() is None:
            self._abort()
        self.failure = Failure(self.in_flight, kind, detail, self._output())

    def _abort(self) -> None:
        """SIGABRT first: the worker's faulthandler then dumps where the import hung."""
        self.proc.send_signal(signal.SIGABRT)
        try:
            self.proc.wait(timeout=_ABORT_GRACE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _output(self) -> str:
        """What the worker wrote to stderr since the import in flight started (its last lines)."""
        self.stderr.seek(self.stderr_at)
        lines = self.stderr.read().decode("utf-8", "replace").rstrip().splitlines()
        crash = [i for i, line in enumerate(lines) if line.startswith("Fatal Python error")]
        if crash:  # faulthandler: the innermost frame comes first, right after this line
            return "\n".join(lines[crash[-1] :][:TRACEBACK_LINES])
        return "\n".join(lines[-TRACEBACK_LINES:])


def _exit_detail(returncode: int) -> str:
    if returncode < 0:
        return f"crashed the interpreter ({signal_name(-returncode)}) while being imported"
    return f"ended the interpreter (exit status {returncode}) while being imported: os._exit?"


def _bug_hint() -> str:
    return (
        f"check that `{sys.executable} -c 'import ksi_host._doctor.worker'` works "
        "(reinstall ksi-host: pip install --force-reinstall ksi-host)"
    )
