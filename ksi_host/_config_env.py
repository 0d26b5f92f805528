"""``KSI_`` environment overrides, parsed as pydantic-settings parses them.

Imported only when a variable could override the config (:func:`ksi_host._config.load_config`
checks): pydantic-settings costs more to import than the rest of the config together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import Field, create_model
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict, SettingsError

from ksi_host._config import ENV_PREFIX, NESTED, RESERVED, HostConfig
from ksi_host.errors import ConfigError

__all__ = ["env_overrides"]

_SETTINGS_FIELD: Final = re.compile(r'field "(\w+)"')


class _FromEnv(BaseSettings):
    """What the environment may set: :class:`HostConfig`'s fields, by ``KSI_`` variables."""

    model_config = SettingsConfigDict(
        extra="allow",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED,
        case_sensitive=False,
    )


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._given_env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name.lower(): value for name, value in self._given_env.items()}


def env_overrides(data: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The values ``env`` sets for [host], [server] and each plugin section, as data."""
    from_env = {
        name[len(ENV_PREFIX) :].partition(NESTED)[0].lower()
        for name in env
        if name.upper().startswith(ENV_PREFIX) and NESTED in name
    }
    fields: dict[str, Any] = {
        name: (info.annotation, info) for name, info in HostConfig.model_fields.items()
    }
    fields.update(
        {
            name: (dict[str, Any], Field(default_factory=dict))
            for name in {*data, *from_env}
            if name not in RESERVED and name.isidentifier()
        }
    )
    model: type[BaseSettings] = create_model("HostConfigSections", __base__=_FromEnv, **fields)
    try:
        return dict(_EnvSource(model, env)())
    except SettingsError as exc:
        field = _SETTINGS_FIELD.search(str(exc))
        prefix = f"{ENV_PREFIX}{field.group(1)}{NESTED}".upper() if field else ENV_PREFIX
        names = sorted(name for name in env if name.upper().startswith(prefix))
        raise ConfigError(
            what="an environment override is not valid JSON where a list or table is expected",
            where="environment variables " + ", ".join(names),
            hint="list and table values are JSON, e.g. KSI_HOST__DISABLED='[\"my_plugin\"]'",
            env_variables=names,
        ) from None
