"""The ``[nats]`` section, the client library it needs, and the options nats-py connects with.

Secrets are never written in the section itself: credentials, keys and passwords are
named by file, so a config file or a log line that shows the settings shows no secret.
A server URL that carries ``user:password@`` is shown with the password masked.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator, model_validator

from ksi_host.errors import ConfigError, InvalidEventName, MissingExtra
from ksi_host.events import normalise_namespace

if TYPE_CHECKING:
    import ssl

__all__ = [
    "DEFAULT_SERVER",
    "EXTRA",
    "NatsSettings",
    "connect_options",
    "nats_client",
    "shown_url",
]

DEFAULT_SERVER: Final = "nats://127.0.0.1:4222"
EXTRA: Final = 'pip install "ksi-host[nats]"'


class NatsSettings(BaseModel):
    """The ``[nats]`` table; being present in the config is what turns the bridge on."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    servers: tuple[str, ...] = Field(default=(DEFAULT_SERVER,), min_length=1)
    export: tuple[str, ...] = ()
    import_: tuple[str, ...] = Field(default=(), alias="import")
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    timeout: float = Field(default=5.0, gt=0)
    """Seconds an imported event waits for another host's answer before ``TIMEOUT``."""
    name: str | None = None
    """This host on the NATS server and in the origin header; default host name and pid."""
    connect_timeout: float = Field(default=2.0, gt=0)
    reconnect_wait: float = Field(default=2.0, gt=0)
    max_inflight: int = Field(default=256, ge=1)
    """Exported requests this host handles at once; NATS holds the rest."""
    user: str | None = None
    password_file: FilePath | None = None
    token_file: FilePath | None = None
    user_credentials: FilePath | None = None
    nkeys_seed: FilePath | None = None
    tls_ca_file: FilePath | None = None
    tls_cert_file: FilePath | None = None
    tls_key_file: FilePath | None = None
    tls_hostname: str | None = None
    tls_handshake_first: bool = False

    @field_validator("servers", "export", "import_", "publish", "subscribe", mode="before")
    @classmethod
    def _list_from_text(cls, value: object) -> object:
        """An environment override is text: a JSON list, or names separated by commas."""
        if not isinstance(value, str):
            return value
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
        return [item.strip() for item in value.split(",") if item.strip()]

    @field_validator("export", "import_", "publish", "subscribe")
    @classmethod
    def _namespaces(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = []
        for item in value:
            try:
                names.append(normalise_namespace(item))
            except InvalidEventName as exc:
                raise ValueError(f"{item!r} is not a namespace: {exc.what}") from None
        return tuple(dict.fromkeys(names))

    @field_validator("servers")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            parts = urlsplit(url if "://" in url else f"nats://{url}")
            if parts.scheme not in ("nats", "tls", "ws", "wss") or not parts.hostname:
                raise ValueError(
                    f"{url!r} is not a NATS server URL; e.g. {DEFAULT_SERVER!r} or "
                    "'tls://nats.example.org:4222'"
                )
        return value

    @model_validator(mode="after")
    def _not_both_ways(self) -> NatsSettings:
        both = sorted(set(self.export) & set(self.import_))
        if both:
            raise ValueError(
                f"namespace(s) {', '.join(both)} both exported and imported: a host serves a "
                "namespace's events (export) or forwards them to the hosts that do (import)"
            )
        return self

    def shown_servers(self) -> str:
        """The servers as logs and errors show them: passwords masked."""
        return ", ".join(shown_url(url) for url in self.servers)


def shown_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def nats_client() -> ModuleType:
    """The ``nats`` package, or :class:`~ksi_host.errors.MissingExtra` saying how to install it."""
    try:
        import nats
    except ImportError as exc:
        raise MissingExtra(
            feature="the NATS bridge (a [nats] section is in the config)",
            module="nats",
            install=f"{EXTRA} (or remove the [nats] section to run without the bridge)",
            where="[nats] section of the config",
        ) from exc
    return nats


def connect_options(settings: NatsSettings, name: str) -> dict[str, Any]:
    """Keyword arguments for ``nats.connect`` from the settings (files are read here)."""
    options: dict[str, Any] = {
        "servers": list(settings.servers),
        "name": name,
        "connect_timeout": settings.connect_timeout,
        "reconnect_time_wait": settings.reconnect_wait,
        "max_reconnect_attempts": -1,
        "allow_reconnect": True,
    }
    if settings.user is not None:
        options["user"] = settings.user
    if settings.password_file is not None:
        options["password"] = _secret(settings.password_file)
    if settings.token_file is not None:
        options["token"] = _secret(settings.token_file)
    if settings.user_credentials is not None:
        options["user_credentials"] = str(settings.user_credentials)
    if settings.nkeys_seed is not None:
        options["nkeys_seed"] = str(settings.nkeys_seed)
    if settings.tls_ca_file or settings.tls_cert_file:
        options["tls"] = _tls_context(settings)
    if settings.tls_hostname is not None:
        options["tls_hostname"] = settings.tls_hostname
    if settings.tls_handshake_first:
        options["tls_handshake_first"] = True
    return options


def _secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            what=f"cannot read the secret file {str(path)!r}: {exc}",
            where="[nats] section of the config",
            hint="point password_file/token_file at a readable UTF-8 file",
        ) from None


def _tls_context(settings: NatsSettings) -> ssl.SSLContext:
    import ssl  # only a bridge that connects with TLS needs it, not one being described

    context = ssl.create_default_context(
        cafile=str(settings.tls_ca_file) if settings.tls_ca_file else None
    )
    if settings.tls_cert_file is not None:
        context.load_cert_chain(
            str(settings.tls_cert_file),
            str(settings.tls_key_file) if settings.tls_key_file else None,
        )
    return context
