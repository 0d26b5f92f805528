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

from ksi_host._config import plugin_settings
from ksi_host._describe import Described
from ksi_host._event_hooks import unsupported_hooks
from ksi_host._plan import Exclusion, PluginSpec, Reason
from ksi_host._report import NullReporter, Reporter
from ksi_host.errors import PluginConfigInvalid, PluginRegistrationError
from ksi_host.plugin_manager import KsiPluggyManager

__all__ = ["config_reason", "vet", "vet_one"]


def vet(
    described: Described,
    sections: Mapping[str, Any],
    reporter: Reporter | None = None,
) -> Described:
    """``described`` with every plugin the host would refuse moved to ``excluded``.

    ``sections`` maps canonical plugin names to their config sections.
    """
    reporter = reporter or NullReporter()
    manager = KsiPluggyManager()
    specs: list[PluginSpec] = []
    refused: list[Exclusion] = []
    for spec in described.specs:
        if not spec.imported:  # known from its manifest: the host vets it once imported
            specs.append(spec)
            continue
        reason = vet_one(spec, sections.get(spec.key), manager)
        if reason is None:
            specs.append(spec)
            continue
        exclusion = Exclusion(spec.name, spec.origin, reason, spec)
        reporter.excluded(exclusion)
        refused.append(exclusion)
    return replace(described, specs=tuple(specs), excluded=(*described.excluded, *refused))


def vet_one(spec: PluginSpec, section: Any, manager: KsiPluggyManager) -> Reason | None:
    """Why the host would refuse ``spec`` with config ``section``, or None.

    ``manager`` is a scratch registry: the plugin is registered on it to check its
    hooks, and never left there.
    """
    plugin = spec.plugin
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
    manager.unregister(plugin)
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
    try:
        plugin_settings(spec.name, plugin, section)
    except PluginConfigInvalid as exc:
        return config_reason(exc)
    return None


def config_reason(exc: PluginConfigInvalid) -> Reason:
    """The plan's ``config-invalid`` reason for a section its plugin's model rejects."""
    key = exc.problems[0][0] if exc.problems else None
    return Reason(
        "config-invalid", exc.what, exc.hint or "", key=None if key == "<section>" else key
    )


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
