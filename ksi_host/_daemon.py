"""The run loop of ``ksi-host run``: claim the socket, start the host, serve until a signal.

The process claims its socket (lock + bind) *before* any plugin loads, so a second
daemon fails fast with "already running (pid N)" and never touches the first one's
socket. The socket transport plugin binds its dispatch to the claimed socket (see
:func:`active_daemon`), and the socket accepts only once every plugin has started,
so no request reaches a plugin whose startup has not run. On SIGTERM/SIGINT (see
:mod:`ksi_host._signals`) the loop stops accepting, lets in-flight requests finish up
to the drain deadline, stops the plugins (reverse order is the host's job), then
removes the socket and the lock.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from ksi_host._collector import resume_start_up
from ksi_host._instance import Instance
from ksi_host._limits import reserve_files
from ksi_host._server import Dispatch, SocketServer
from ksi_host._server_config import ServerConfig
from ksi_host._signals import StopSignals
from ksi_host.errors import KsiError

__all__ = ["Daemon", "Listener", "active_daemon", "run_daemon"]

logger: Final = logging.getLogger("ksi_host.daemon")


class Listener(Protocol):
    """Another transport's server (WebSocket): accepts once every plugin has started."""

    async def start(self) -> None: ...

    async def shutdown(self) -> None: ...


class Daemon:
    """The socket this process claimed, the server a transport runs on it, and other listeners."""

    def __init__(self, config: ServerConfig, instance: Instance) -> None:
        self.config: Final = config
        self.instance: Final = instance
        self.server: SocketServer | None = None
        self.listeners: list[Listener] = []
        self.connections: dict[str, int] = {"unix_socket": config.max_connections}

    def listen(self, listener: Listener, *, transport: str, max_connections: int) -> None:
        """Start ``listener`` with the socket, and stop it with the socket, on SIGTERM.

        The open-files limit is raised to fit its ``max_connections`` too.
        """
        self.listeners.append(listener)
        self.connections[transport] = max_connections
        reserve_files(self.connections)

    async def start_serving(self) -> None:
        assert self.server is not None
        await self.server.start()
        for listener in self.listeners:
            await listener.start()

    async def stop_serving(self) -> None:
        """Stop every transport at once, so a slow drain on one does not delay the other."""
        servers = [self.server, *self.listeners] if self.server is not None else self.listeners
        await asyncio.gather(*(server.shutdown() for server in servers))

    def serve(self, dispatch: Dispatch) -> SocketServer:
        """Bind a transport's dispatch to the claimed socket; it accepts once all plugins start."""
        if self.server is not None:
            raise RuntimeError(
                f"{self.config.socket_path} is already served by another transport; "
                "load one unix_socket transport per daemon"
            )
        self.server = SocketServer(dispatch, self.config, sock=self.instance.sock)
        return self.server


_active: Daemon | None = None


def active_daemon() -> Daemon | None:
    """The daemon run by :func:`run_daemon` in this process, if any."""
    return _active


async def run_daemon(
    start: Callable[[], Awaitable[object]],
    stop: Callable[[], Awaitable[object]],
    config: ServerConfig,
    reload: Callable[[], Awaitable[object]] | None = None,
    *,
    stop_grace: float = 10.0,
    emergency: tuple[Callable[[], None], ...] = (),
) -> int:
    """Serve until SIGTERM/SIGINT; return the exit code (0 after a clean stop).

    ``start`` loads and starts the plugins (the socket transport among them);
    ``stop`` shuts them down; SIGHUP calls ``reload`` (its failure is logged,
    the daemon goes on serving). Raises :class:`~ksi_host._instance.AlreadyRunning`
    before calling ``start`` if another daemon owns the socket. A stop that takes
    longer than ``drain_timeout + stop_grace`` is forced (see :mod:`ksi_host._signals`):
    ``emergency`` callbacks run, then the socket and lock are removed. A fatal signal
    (a segfault in a plugin) dumps every thread's stack to stderr (``faulthandler``).
    """
    global _active
    if _active is not None:
        raise RuntimeError("run_daemon is already running in this process")
    resume_start_up()  # plugins' code runs from here on: with the collector on
    instance = Instance.claim(config.socket_path)
    daemon = Daemon(config, instance)
    reserve_files(daemon.connections)
    _active = daemon
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    signals = StopSignals(
        loop,
        lambda signum: stopping.set(),
        config.drain_timeout + stop_grace,
        (*emergency, instance.release),
    )
    signals.install()
    faulthandler.enable(sys.stderr, all_threads=True)
    reloads: set[asyncio.Task[None]] = set()
    hangup = signal.getsignal(signal.SIGHUP)
    if reload is not None:
        # Not loop.add_signal_handler: it would take the wakeup fd StopSignals reads.
        signal.signal(
            signal.SIGHUP,
            lambda _signum, _frame: loop.call_soon_threadsafe(_on_hangup, reload, reloads),
        )
    code = 0
    try:
        await start()
        if daemon.server is None:
            logger.error(
                "no transport serves %s: the unix_socket plugin is disabled or failed to "
                "start (see above); stopping",
                config.socket_path,
            )
            code = 1
        else:
            await daemon.start_serving()
            logger.info("ready: pid %d, socket %s", os.getpid(), config.socket_path)
            await stopping.wait()
        await daemon.stop_serving()
    finally:
        try:
            await stop()
        finally:
            signals.uninstall()
            faulthandler.disable()
            if reload is not None:
                signal.signal(signal.SIGHUP, signal.SIG_DFL if hangup is None else hangup)
            instance.release()
            _active = None
            logger.info("stopped")
    return code


def _on_hangup(reload: Callable[[], Awaitable[object]], running: set[asyncio.Task[None]]) -> None:
    logger.info("received SIGHUP: reloading the plugin set")
    task = asyncio.ensure_future(_reload_logged(reload))
    running.add(task)
    task.add_done_callback(running.discard)


async def _reload_logged(reload: Callable[[], Awaitable[object]]) -> None:
    """A reload nobody awaits: its failure goes to the log, never into the loop."""
    try:
        await reload()
    except KsiError as exc:
        logger.error("reload failed: %s", exc.render())
    except Exception:
        logger.exception("reload failed")
