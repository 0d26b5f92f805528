"""``state:set/get/delete/list``: the guide's database example, durable in SQLite.

The file is in WAL mode with ``synchronous=FULL``, and a write is answered only
after its transaction committed, so an acknowledged write survives ``kill -9``.
One connection guarded by a lock serves every client; calls run in a worker
thread so a slow fsync never stalls the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import stat
import threading
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from ksi_host import (
    BasePlugin,
    ConfigError,
    ErrorCode,
    KsiPaths,
    PluginCapabilities,
    PluginContext,
    error_reply,
    hookimpl,
)
from ksi_host.errors import StateDatabaseError
from ksi_plugins_builtin._metadata import builtin_metadata

__all__ = [
    "MAX_KEY",
    "StatePlugin",
    "StateStore",
    "exposure",
    "plugin",
    "private_fix",
]

logger: Final = logging.getLogger("ksi_plugins_builtin.state")

MAX_KEY: Final = 1024
MAX_LIST: Final = 10_000
MAX_LIST_BYTES: Final = 8 * 1024 * 1024
"""A state:list reply stops before its keys and values pass this many bytes (see truncated)."""
_SCHEMA: Final = "CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


def _database_files(path: Path) -> tuple[Path, ...]:
    """The database, its write-ahead log and its shared-memory index."""
    return (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))


def _checked(path: Path, data_dir: bool) -> tuple[Path, ...]:
    return (path.parent, *_database_files(path)) if data_dir else _database_files(path)


def private_fix(path: Path, *, data_dir: bool = True) -> str:
    """The one command that makes the data dir and the database files there now private."""
    dir_fix = f"chmod 700 {shlex.quote(str(path.parent))} && " if data_dir else ""
    files = " ".join(shlex.quote(str(f)) for f in _database_files(path) if f.exists())
    return f"{dir_fix}chmod 600 {files}"


def exposure(path: Path, *, data_dir: bool = True) -> list[str]:
    """Each database file (and the data dir) that another user can read or enter, with its mode.

    Stored values are the users' data: the files are ``0600`` and ksi-host's own data
    dir ``0700``; a dir the operator chose for ``[state] path`` is theirs (``data_dir``
    false). A mismatch is reported with :func:`private_fix`, never silently changed.
    """
    found = []
    for item in _checked(path, data_dir):
        try:
            mode = stat.S_IMODE(item.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            found.append(f"{item} ({oct(mode)[2:].zfill(4)})")
    return found


def _create_private(path: Path) -> None:
    """Make the data dir ``0700`` and the database ``0600`` when they are new, whatever the umask.

    SQLite gives the ``-wal`` and ``-shm`` files it creates the database file's mode.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
        path.parent.chmod(0o700)
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


class StateStore:
    """Key → JSON value in one SQLite file; every method commits before it returns."""

    def __init__(self, path: Path) -> None:
        import sqlite3  # the plugin opens its store when it starts, not when it is described

        self.path: Final = path
        self._lock = threading.Lock()
        try:
            _create_private(path)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StateDatabaseError(path=path, problem=str(exc)) from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise StateDatabaseError(path=path, problem=str(exc)) from exc

    def set(self, key: str, value: Any) -> None:
        text = json.dumps(value, allow_nan=False)
        with self._lock:
            self._db.execute(
                "INSERT INTO state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def get(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return (False, None) if row is None else (True, json.loads(row[0]))

    def delete(self, key: str) -> bool:
        with self._lock:
            cursor = self._db.execute("DELETE FROM state WHERE key = ?", (key,))
        return cursor.rowcount > 0

    def list(
        self, prefix: str, limit: int, after: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Keys with ``prefix`` (past ``after``), in order, until ``limit`` keys or the budget.

        A range scan on the primary key (no LIKE, so ``%``, ``_`` and NUL in a prefix
        are literal), stopping at the first key past the prefix; the second value says
        whether more matching keys were left out (ask again with ``after`` = the last key).
        """
        items: list[dict[str, Any]] = []
        budget = MAX_LIST_BYTES
        with self._lock:
            if after is not None and after >= prefix:
                query, start = "SELECT key, value FROM state WHERE key > ? ORDER BY key", after
            else:
                query, start = "SELECT key, value FROM state WHERE key >= ? ORDER BY key", prefix
            rows = self._db.execute(query, (start,))
            for key, value in rows:
                if not key.startswith(prefix):
                    return items, False
                budget -= len(key) + len(value)
                if len(items) == limit or (budget < 0 and items):
                    return items, True
                items.append({"key": key, "value": json.loads(value)})
        return items, False

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM state").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Key(BaseModel):
    # Built on the first request (defer_build): the daemon's start does not wait for it.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    key: StrictStr = Field(min_length=1, max_length=MAX_KEY)


class _Set(_Key):
    value: Any


class _List(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    prefix: StrictStr = Field("", max_length=MAX_KEY)
    limit: int = Field(1000, ge=1, le=MAX_LIST, strict=True)
    after: StrictStr | None = Field(None, max_length=MAX_KEY)


_USAGE: Final[dict[str, str]] = {
    "state:set": '{"key": "greeting", "value": <any JSON>}',
    "state:get": '{"key": "greeting"}',
    "state:delete": '{"key": "greeting"}',
    "state:list": f'{{"prefix": "gree", "limit": 100, "after": "greeting"}} '
    f"(all optional; limit 1..{MAX_LIST}; after: the last key of the previous page)",
}


_Handler = Callable[[Any], Awaitable[dict[str, Any]]]
"""Answers one state event, given its data already validated against the event's model."""


def _invalid(event: str, exc: ValidationError) -> dict[str, Any]:
    problems = "; ".join(
        f"'{'.'.join(map(str, err['loc']))}': {err['msg']}" for err in exc.errors()
    )
    return error_reply(ErrorCode.INVALID_INPUT, f"{event} {problems}; send {_USAGE[event]}")


class StateSettings(BaseModel):
    """The ``[state]`` section: held to it while the plan is built, like any plugin's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: StrictStr | None = Field(
        default=None, pattern=r"\S", description="the SQLite file (default: the data dir's)"
    )


def _configured_path(config: object) -> Path:
    section = config.get("state", {}) if isinstance(config, Mapping) else {}
    try:
        settings = StateSettings.model_validate(section if isinstance(section, Mapping) else {})
    except ValidationError as exc:
        raw = section.get("path") if isinstance(section, Mapping) else None
        raise ConfigError(
            what=f"state.path must be a file path, not {raw!r}"
            if any(err["loc"] == ("path",) for err in exc.errors())
            else f"the [state] section does not validate: {exc.errors()[0]['msg']}",
            where="[state] section of the config",
            hint='e.g. path = "~/.ksi/data/state.sqlite3", or leave it out for the default',
        ) from None
    if settings.path is None:
        return KsiPaths.from_env().data_dir / "state.sqlite3"
    return Path(settings.path).expanduser()


_T = TypeVar("_T")


async def _in_thread(call: Callable[..., _T], *args: Any) -> _T:
    """``asyncio.to_thread``, imported by the first request: describing the plugin needs none."""
    import asyncio

    return await asyncio.to_thread(call, *args)


class StatePlugin(BasePlugin):
    """Durable key/value state for clients and other plugins."""

    config_model = StateSettings

    def __init__(self) -> None:
        super().__init__(
            metadata=builtin_metadata("state", "state:set/get/delete/list: JSON values in SQLite"),
            capabilities=PluginCapabilities(commands=list(_USAGE), provides_services=["state"]),
        )
        self._path: Path | None = None
        self._store: StateStore | None = None
        self._handlers: Final[dict[str, tuple[type[BaseModel], _Handler]]] = {
            "state:set": (_Set, self._set),
            "state:get": (_Key, self._get),
            "state:delete": (_Key, self._delete),
            "state:list": (_List, self._list),
        }

    @hookimpl
    def ksi_plugin_context(self, context: PluginContext) -> None:
        self._path = _configured_path(context.get("config"))

    @hookimpl
    def ksi_startup(self) -> dict[str, str]:
        path = self._path or _configured_path(None)
        self._store = StateStore(path)
        logger.info("state database %s", path)
        data_dir = path.parent == KsiPaths.from_env().data_dir
        if exposed := exposure(path, data_dir=data_dir):
            logger.warning(
                "other users can read the state database: %s; fix: %s",
                ", ".join(exposed),
                private_fix(path, data_dir=data_dir),
            )
        return {"status": "plugin_started", "path": str(path)}

    @hookimpl
    def ksi_shutdown(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @hookimpl
    def ksi_metrics_collected(self, metrics: dict[str, Any]) -> dict[str, Any]:
        if self._store is not None:
            metrics["state"] = {"keys": self._store.count(), "path": str(self._store.path)}
        return metrics

    @hookimpl
    def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        route = self._handlers.get(event_name)
        if route is None:
            return None
        if self._store is None:
            return error_reply(
                ErrorCode.UNAVAILABLE,
                f"{event_name} arrived before the state plugin started (it opens its "
                "database at startup); send it once the host is running",
            )
        model, handler = route
        try:
            request = model.model_validate(data)
        except ValidationError as exc:
            return _invalid(event_name, exc)
        return handler(request)

    def _ready(self) -> StateStore:
        assert self._store is not None, "ksi_handle_event checks that the store is open"
        return self._store

    async def _set(self, request: _Set) -> dict[str, Any]:
        try:
            await _in_thread(self._ready().set, request.key, request.value)
        except ValueError as exc:
            return error_reply(ErrorCode.INVALID_INPUT, f"state:set 'value' is not JSON: {exc}")
        return {"status": "set", "key": request.key}

    async def _get(self, request: _Key) -> dict[str, Any]:
        found, value = await _in_thread(self._ready().get, request.key)
        return {"key": request.key, "found": found, "value": value}

    async def _delete(self, request: _Key) -> dict[str, Any]:
        deleted = await _in_thread(self._ready().delete, request.key)
        return {"status": "deleted" if deleted else "not_found", "key": request.key}

    async def _list(self, request: _List) -> dict[str, Any]:
        items, truncated = await _in_thread(
            self._ready().list, request.prefix, request.limit, request.after
        )
        return {
            "prefix": request.prefix,
            "count": len(items),
            "items": items,
            "truncated": truncated,
        }


plugin = StatePlugin()
