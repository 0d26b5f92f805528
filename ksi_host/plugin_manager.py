"""The guide's ``PluginManager``: a pluggy manager for project ``ksi`` with the specs added.

pluggy accepts any object and silently ignores hook names it has no spec for; a
plugin host cannot, because a typo such as ``ksi_handle_events`` would mean a
plugin that never runs. :class:`KsiPluggyManager` refuses such registrations with
an error that names the plugin, the hook and the likely fix.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any, Final

import pluggy

from ksi_host import hookspecs
from ksi_host.errors import PluginRegistrationError

__all__ = ["KsiPluggyManager", "PluginManager"]


def _required_arguments(function: Callable[..., Any]) -> list[str]:
    """The arguments pluggy passes by name: those without a default, ``self`` excluded."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in parameters
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _metadata_name(plugin: object) -> str | None:
    """The name the plugin's metadata gives: pluggy registers it under that name."""
    name = getattr(getattr(plugin, "metadata", None), "name", None)
    return name if isinstance(name, str) else None


class KsiPluggyManager(pluggy.PluginManager):
    """A ``pluggy.PluginManager`` that only accepts well-formed KSI plugins."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self._on_change: list[Callable[[], None]] = []

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every register and unregister (the host's routes cache)."""
        self._on_change.append(callback)

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        """pluggy's unregister, then tell who watches the registry."""
        removed = super().unregister(plugin, name)
        self._changed()
        return removed

    def _changed(self) -> None:
        for callback in self._on_change:
            callback()

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` under its metadata name, refusing anything pluggy would not run."""
        label = name or _metadata_name(plugin) or repr(plugin)
        self._check_is_plugin(plugin, label)
        self._check_arguments(plugin, label)
        try:
            registered = super().register(plugin, name=name or _metadata_name(plugin))
        except pluggy.PluginValidationError as exc:
            raise PluginRegistrationError(
                plugin=plugin,
                name=label,
                what=f"plugin {label!r} does not match the hook spec: {exc}",
                hint="use only argument names the hook spec declares "
                "(see ksi_host.hookspecs); a hook may take fewer arguments, never others",
            ) from exc
        except ValueError as exc:
            raise PluginRegistrationError(
                plugin=plugin,
                name=label,
                what=f"cannot register plugin {label!r}: {exc}",
                hint="each plugin name may be registered once; unregister the old one first "
                "or give the new one another name",
            ) from exc
        self._check_unknown_hooks(plugin, label)
        self._changed()
        return registered

    def has_hookimpls(self, plugin: object) -> bool:
        """Whether ``plugin`` has any ``@hookimpl`` method: what makes an object a plugin."""
        return any(self.parse_hookimpl_opts(plugin, attr) is not None for attr in dir(plugin))

    def _check_is_plugin(self, plugin: object, label: str) -> None:
        if isinstance(plugin, type):
            raise PluginRegistrationError(
                plugin=plugin,
                name=label,
                what=f"{plugin.__name__} is a class, not a plugin instance",
                hint=f"register an instance: pm.register({plugin.__name__}())",
            )
        if not self.has_hookimpls(plugin):
            raise PluginRegistrationError(
                plugin=plugin,
                name=label,
                what=f"{plugin!r} is not a plugin: it has no @hookimpl methods",
                hint="decorate the plugin's hook methods with ksi_host.plugin_base.hookimpl",
            )

    def _check_arguments(self, plugin: object, label: str) -> None:
        """Each hook takes only arguments its spec declares (pluggy checks too, as text)."""
        for attr in dir(plugin):
            caller = getattr(self.hook, attr, None)
            spec = caller.spec if isinstance(caller, pluggy.HookCaller) else None
            if spec is None or self.parse_hookimpl_opts(plugin, attr) is None:
                continue
            unknown = [
                arg
                for arg in _required_arguments(getattr(plugin, attr))
                if arg not in spec.argnames
            ]
            if unknown:
                raise PluginRegistrationError(
                    plugin=plugin,
                    name=label,
                    hook=attr,
                    what=f"plugin {label!r}: {attr} takes {', '.join(map(repr, unknown))}, "
                    f"which the hook spec does not pass (it passes "
                    f"{', '.join(map(repr, spec.argnames)) or 'nothing'})",
                    hint="use only argument names the hook spec declares "
                    "(see ksi_host.hookspecs); a hook may take fewer arguments, never others",
                )

    def _check_unknown_hooks(self, plugin: object, label: str) -> None:
        known = sorted(name for name, caller in vars(self.hook).items() if caller.spec is not None)
        for hook_name, caller in vars(self.hook).items():
            if caller.spec is not None:
                continue
            if any(impl.plugin is plugin for impl in caller.get_hookimpls()):
                self.unregister(plugin)
                close = difflib.get_close_matches(hook_name, known, n=1)
                advice = f"rename it to {close[0]!r}" if close else "remove the @hookimpl"
                raise PluginRegistrationError(
                    plugin=plugin,
                    name=label,
                    hook=hook_name,
                    suggestion=close[0] if close else None,
                    what=f"plugin {label!r} implements {hook_name!r}, which is not a KSI hook",
                    hint=f"{advice}; the hooks are: {', '.join(known)}",
                )


class PluginManager:
    """The entry point of the guide's examples: ``PluginManager().pm`` is the pluggy manager."""

    def __init__(self) -> None:
        self.pm: Final = KsiPluggyManager()

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` (see :meth:`KsiPluggyManager.register`); return its name."""
        return self.pm.register(plugin, name=name)

    def unregister(self, plugin: object) -> Any:
        """Unregister ``plugin``; return it, or ``None`` if it was not registered."""
        return self.pm.unregister(plugin)
