"""Where ksi-host keeps things by default, all derived from the environment in one place.

``KSI_HOME`` (default ``~/.ksi``) roots the user's plugins, data and run dirs, so a
test or a second instance only has to set one variable::

    plugins  $KSI_HOME/plugins
    data     $KSI_HOME/data              (the state database)
    cache    $KSI_HOME/cache             (what can be rebuilt: scans, manifests, descriptions)
    run      $XDG_RUNTIME_DIR/ksi         when set and KSI_HOME is not, else $KSI_HOME/run
    config   $KSI_CONFIG, else $KSI_HOME/config.toml when KSI_HOME is set,
             else $XDG_CONFIG_HOME/ksi/config.toml (default ~/.config/ksi/config.toml)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KsiPaths"]


def _expand(value: str) -> Path:
    return Path(value).expanduser()


@dataclass(frozen=True)
class KsiPaths:
    """The default locations for one environment."""

    home: Path
    plugins_dir: Path
    data_dir: Path
    run_dir: Path
    config_file: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KsiPaths:
        """Where things go under ``env`` (default ``os.environ``), by the rules above."""
        env = os.environ if env is None else env
        explicit_home = env.get("KSI_HOME")
        user_home = _expand(env.get("HOME") or "~")
        home = _expand(explicit_home) if explicit_home else user_home / ".ksi"
        runtime = env.get("XDG_RUNTIME_DIR")
        run_dir = _expand(runtime) / "ksi" if runtime and not explicit_home else home / "run"
        if env.get("KSI_CONFIG"):
            config_file = _expand(env["KSI_CONFIG"])
        elif explicit_home:
            config_file = home / "config.toml"
        else:
            xdg_config = env.get("XDG_CONFIG_HOME")
            config_root = _expand(xdg_config) if xdg_config else user_home / ".config"
            config_file = config_root / "ksi" / "config.toml"
        return cls(
            home=home,
            plugins_dir=home / "plugins",
            data_dir=home / "data",
            run_dir=run_dir,
            config_file=config_file,
        )

    @property
    def cache_dir(self) -> Path:
        """What ksi-host can always rebuild, kept to save time (see ``_manifest_cache``)."""
        return self.home / "cache"
