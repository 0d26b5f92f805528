"""Hold each imported plugin to what ``run`` needs before it may start: one check, every view.

A plugin that described fine may still be refused by the host: a hook the specs
do not know (``ksi_handle_events``) or an argument a spec does not declare, an
event hook written as a wrapper (the event pipeline does not run wrappers), or a
config section its ``config_model`` rejects. These are decided here, once, while
the plan is built, so ``plugins``, ``events``, ``doctor``, ``run`` and
``plugin:list`` show the same verdict. Nothing here calls a plugin hook:
registering on a throwaway manager only checks the hooks against the specs.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ksi_host._config import check_plugin_config
from ksi_host._describe import Described
from ksi_host._dispatch import unsupported_hooks
from ksi_host._plan import Exclusion, PluginSpec, Reason
from ksi_host._report import NullReporter, Reporter
from ksi_host.errors import PluginRegistrationError
from ksi_host.plugin_manager import KsiPluggyManager

__all__ = ["vet", "vet_one"]


def vet(
    described: Described,
    sections: Mapping[str, Any],
    reporter: Reporter | None = None,
) -> Described:
    """``described`` with every plugin the host would refuse moved to ``excluded``.

    ``sections`` maps canonical plugin names to their config sections.
    """
    reporter = reporter or NullReporter()
    specs: list[PluginSpec] = []
    refused: list[Exclusion] = []
    for spec in described.specs:
        reason = vet_one(spec, sections.get(spec.key))
        if reason is None:
            specs.append(spec)
            continue
        exclusion = Exclusion(spec.name, spec.origin, reason, spec)
        reporter.excluded(exclusion)
        refused.append(exclusion)
    return replace(described, specs=tuple(specs), excluded=(*described.excluded, *refused))


def vet_one(spec: PluginSpec, section: Any) -> Reason | None:
    """Why the host would refuse ``spec`` with config ``section``, or None."""
    plugin, manager = spec.plugin, KsiPluggyManager()
    try:
        manager.register(plugin, name=spec.name)
    except PluginRegistrationError as exc:
        file, line = _source(plugin, exc.hook)
        return Reason(
            "hook-mismatch",
            exc.what,
            exc.hint or "",
            hook=exc.hook,
            suggestion=exc.suggestion,
            path=file,
            line=line,
        )
    wrappers = unsupported_hooks(manager, plugin)
    if wrappers:
        file, line = _source(plugin, wrappers[0])
        return Reason(
            "unsupported-hook",
            f"plugin {spec.name!r} implements {', '.join(wrappers)} as a wrapper, "
            "which the host's event pipeline does not run",
            "use @hookimpl(tryfirst=True) or (trylast=True) to run before or after others",
            hook=wrappers[0],
            path=file,
            line=line,
        )
    errors = check_plugin_config(plugin, section)
    if errors:
        return Reason(
            "config-invalid",
            f"config section [{spec.name}] does not validate: {'; '.join(errors)}",
            f"fix the [{spec.name}] table of the config file (or its KSI_ overrides)",
        )
    return None


def _source(plugin: object, hook: str | None) -> tuple[str | None, int | None]:
    """The file of the plugin's class, and the line of ``hook`` in it, for the fix."""
    try:
        file = inspect.getsourcefile(type(plugin))
    except (TypeError, OSError):
        return None, None
    method = getattr(type(plugin), hook, None) if hook else None
    try:
        line = inspect.getsourcelines(method)[1] if method is not None else None
    except (TypeError, OSError):
        line = None
    return file, line
