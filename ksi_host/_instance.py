"""One daemon per socket: a private run dir, a pid lock, and a socket that is never exposed.

``Instance.claim(path)`` makes (or checks) the socket's directory so only this user
can enter it, takes an exclusive lock on ``<socket>.lock`` holding our pid, replaces
a socket file left by a killed daemon, and binds a new one with umask ``0o177`` so it
is ``0600`` from the first instant. asyncio's ``start_unix_server(path=...)`` would
unlink whatever file is at the path, including a live daemon's socket; we bind
ourselves and pass ``sock=`` instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from ksi_host._paths import KsiPaths
from ksi_host.errors import AlreadyRunning, SocketPathUnusable, UnsafeRunDir

__all__ = [
    "LISTEN_BACKLOG",
    "MAX_SOCKET_PATH",
    "SOCKET_NAME",
    "Instance",
    "default_socket_path",
    "lock_holder",
    "lock_path_of",
    "peer_pid",
    "peer_uid",
]

SOCKET_NAME: Final = "ksi.sock"
MAX_SOCKET_PATH: Final = 107
LISTEN_BACKLOG: Final = 128


def default_socket_path(env: Mapping[str, str] | None = None) -> Path:
    """``ksi.sock`` in the user's run dir: the socket when nothing names another.

    Which socket is used is decided in one place, ``ServerConfig.from_section``:
    ``--socket``, else ``$KSI_SOCKET``, else ``[server] socket_path``, else this.
    """
    return KsiPaths.from_env(env).run_dir / SOCKET_NAME


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end, where the platform can tell (SO_PEERCRED)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def peer_pid(sock: socket.socket) -> int | None:
    """The pid of the process that listens at the other end, where the platform can tell."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[0]) or None


def _private_dir(directory: Path) -> None:
    directory.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeRunDir(directory=directory, problem="is not a directory")
    if info.st_uid != os.getuid():
        raise UnsafeRunDir(
            directory=directory, problem=f"belongs to uid {info.st_uid}, not to you ({os.getuid()})"
        )
    if info.st_mode & 0o077:
        raise UnsafeRunDir(
            directory=directory,
            problem=f"can be entered by other users (mode {stat.S_IMODE(info.st_mode):04o})",
        )


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def lock_path_of(socket_path: Path) -> Path:
    """The pid lock next to a socket: ``<socket>.lock``."""
    return socket_path.with_name(socket_path.name + ".lock")


def lock_holder(socket_path: Path) -> int | None:
    """The pid of the daemon holding ``socket_path``'s lock, or None when nobody holds it.

    Reads the kernel's table of locks (``/proc/locks``) so the probe takes no lock
    itself: a daemon starting at the same instant must not see us as "already running".
    Where there is no such table, a non-blocking shared lock is tried and dropped.
    """
    lock_path = lock_path_of(Path(socket_path).absolute())
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        held = _held_in_proc_locks(os.fstat(fd))
        if held is None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                held = True
            else:
                held = False
        return (_read_pid(fd) or 0) if held else None
    finally:
        os.close(fd)


def _held_in_proc_locks(info: os.stat_result) -> bool | None:
    """Whether an flock is held on the file ``info`` describes; None without ``/proc/locks``."""
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    return any(
        len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == device
        for fields in (line.split() for line in table.splitlines())
    )


def _lock(lock_path: Path, socket_path: Path) -> int:
    """Hold ``lock_path`` exclusively; retry if a releasing daemon unlinked it under us."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunning(socket_path=socket_path, pid=pid) from None
        try:
            same = lock_path.stat().st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


def _clear_stale(socket_path: Path) -> None:
    """Remove a socket nobody serves; refuse to touch anything else."""
    try:
        info = socket_path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketPathUnusable(
            socket_path=socket_path,
            problem="a file that is not a socket is in the way",
            hint="remove it yourself if it is not needed, or choose another --socket",
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(socket_path))
    except (ConnectionRefusedError, FileNotFoundError):
        socket_path.unlink(missing_ok=True)
        return
    else:
        raise AlreadyRunning(socket_path=socket_path, pid=peer_pid(probe))
    finally:
        probe.close()


def _bind(socket_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        sock.bind(str(socket_path))
    except OSError as exc:
        sock.close()
        raise SocketPathUnusable(
            socket_path=socket_path,
            problem=exc.strerror or str(exc),
            hint="check the directory exists and is writable by you",
        ) from exc
    finally:
        os.umask(previous)
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


class Instance:
    """This process's claim on a socket path: the held lock and the bound, listening socket."""

    def __init__(self, socket_path: Path, lock_path: Path, lock_fd: int, sock: socket.socket):
        self.socket_path: Final = socket_path
        self.lock_path: Final = lock_path
        self.sock: Final = sock
        self._lock_fd: int | None = lock_fd
        self._inode: Final = socket_path.stat().st_ino

    @classmethod
    def claim(cls, socket_path: Path) -> Instance:
        """Become the one daemon on ``socket_path`` or raise saying who already is."""
        socket_path = Path(socket_path).absolute()
        if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
            raise SocketPathUnusable(
                socket_path=socket_path,
                problem=f"the path is longer than {MAX_SOCKET_PATH} bytes (a Unix socket limit)",
                hint="choose a shorter --socket path (or KSI_SOCKET / KSI_HOME)",
            )
        _private_dir(socket_path.parent)
        lock_path = lock_path_of(socket_path)
        lock_fd = _lock(lock_path, socket_path)
        try:
            _clear_stale(socket_path)
            sock = _bind(socket_path)
        except BaseException:
            lock_path.unlink(missing_ok=True)
            os.close(lock_fd)
            raise
        return cls(socket_path, lock_path, lock_fd, sock)

    @property
    def held(self) -> bool:
        return self._lock_fd is not None

    def release(self) -> None:
        """Remove our socket (not a successor's) and the lock; safe to call twice."""
        if self._lock_fd is None:
            return
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            if self.socket_path.lstat().st_ino == self._inode:
                self.socket_path.unlink()
        self.lock_path.unlink(missing_ok=True)
        os.close(self._lock_fd)
        self._lock_fd = None
