"""The guide's ``PluginManager``: a pluggy manager for project ``ksi`` with the specs added.

pluggy accepts any object and silently ignores hook names it has no spec for; a
plugin host cannot, because a typo such as ``ksi_handle_events`` would mean a
plugin that never runs. :class:`KsiPluggyManager` refuses such registrations with
an error that names the plugin, the hook and the likely fix.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import pluggy

from ksi_host import hookspecs
from ksi_host.errors import PluginRegistrationError

__all__ = ["KsiPluggyManager", "PluginManager", "hook_names"]


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


def hook_names(plugin: object) -> tuple[str, ...]:
    """The hooks ``plugin`` implements, sorted, as pluggy's ``register`` would find them.

    pluggy asks its option parser about every name ``dir()`` lists (about sixty for a
    ``BasePlugin``, each through ``inspect.getattr_static``); this reads each namespace
    of the plugin once and looks only at the values that can carry the marker, which is
    what keeps describing a thousand plugins close to importing them.
    """
    return tuple(sorted({opts.get("specname") or name for name, opts in _marked(plugin)}))


def _marked(plugin: object) -> list[tuple[str, dict[str, Any]]]:
    """Each attribute of ``plugin`` that carries a ``@hookimpl`` marker, with its options."""
    marker = _MARKER
    found = []
    for name, holder in _hookable(plugin):
        opts = getattr(holder, marker, None)
        if opts is None:
            opts = getattr(getattr(holder, "__func__", None), marker, None)
        if isinstance(opts, dict):
            found.append((name, opts))
    return found


def _hookable(plugin: object) -> list[tuple[str, object]]:
    """Each attribute name with the value that would carry its marker, first binding wins.

    One pass, no generators: describing and registering every plugin both walk it.
    """
    seen: set[str] = set()
    found: list[tuple[str, object]] = []
    is_namespace = inspect.isclass(plugin) or inspect.ismodule(plugin)
    if not is_namespace:
        for name, value in _own_dict(plugin).items():
            seen.add(name)
            if isinstance(value, types.MethodType):
                found.append((name, value.__func__))
            elif inspect.isfunction(value):
                found.append((name, value))
    mro = plugin.__mro__ if inspect.isclass(plugin) else type(plugin).__mro__
    # object comes last and defines no hook: its names can shadow nothing after it.
    owners = [vars(owner) for owner in mro if owner is not object]
    for namespace in [_own_dict(plugin), *owners] if is_namespace else owners:
        for name, value in namespace.items():
            if name in seen:
                continue
            seen.add(name)
            if isinstance(value, types.MemberDescriptorType) and not is_namespace:
                value = _slot_value(value, plugin)
            if isinstance(value, types.MethodType):
                found.append((name, value.__func__))
            elif isinstance(value, _HOOKABLE):
                found.append((name, value))
    return found


_HOOKABLE: Final = (types.FunctionType, staticmethod, classmethod)
_MARKER: Final = hookspecs.PROJECT_NAME + "_impl"


def _own_dict(obj: object) -> Mapping[str, object]:
    try:
        own = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return {}
    return own if isinstance(own, Mapping) else {}


def _slot_value(slot: types.MemberDescriptorType, plugin: object) -> object:
    try:
        return slot.__get__(plugin, type(plugin))
    except AttributeError:
        return None


class KsiPluggyManager(pluggy.PluginManager):
    """A ``pluggy.PluginManager`` that only accepts well-formed KSI plugins."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self._on_change: list[Callable[[], None]] = []
        self._marked_now: dict[str, dict[str, Any]] | None = None
        self._hooks_now: list[str] = []
        self._registered: dict[int, tuple[str, tuple[str, ...]]] = {}

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        """pluggy's parser, answered from the one walk :func:`hook_names` makes, in ``register``.

        ``register`` asks about every name ``dir()`` lists, each through
        ``inspect.getattr_static``; the walk finds the same marked attributes with the
        same options objects (tests/test_plugin_manager.py holds the two together), and
        the plan's checks and the host both register every plugin.
        """
        if self._marked_now is not None:
            opts = self._marked_now.get(name)
            if opts is not None:
                self._hooks_now.append(opts.get("specname") or name)
            return cast("pluggy.HookimplOpts | None", opts)
        return super().parse_hookimpl_opts(plugin, name)

    def get_name(self, plugin: object) -> str | None:
        """pluggy's answer, found by the plugin's identity rather than a scan of every plugin.

        pluggy's ``unregister`` asks for the name (twice, once through
        :meth:`get_hookcallers`), so stopping each of N plugins scanned N: a host's stop
        grew with the square of its plugins. A plugin this manager registered is looked
        up by identity; anything else (an equal object, a plugin pluggy holds that the
        lookup does not know) gets pluggy's scan, so the answer is the same.
        """
        known = self._registered.get(id(plugin))
        if known is not None and self.get_plugin(known[0]) is plugin:
            return known[0]
        return super().get_name(plugin)

    def is_registered(self, plugin: object) -> bool:
        """pluggy's answer (``==`` against every plugin, as :meth:`get_name`), by lookup."""
        return self.get_name(plugin) is not None

    def get_hookcallers(self, plugin: object) -> list[pluggy.HookCaller] | None:
        """pluggy's answer, from the hooks ``register`` gave the plugin implementations of.

        pluggy reads every implementation of every hook to find the plugin's; the hooks
        are the ones its registration asked :meth:`parse_hookimpl_opts` about and got
        options for, each of which pluggy gave an implementation (``unregister`` then
        removes the plugin from exactly these).
        """
        known = self._registered.get(id(plugin))
        if known is None or self.get_plugin(known[0]) is not plugin:
            return super().get_hookcallers(plugin)
        return [getattr(self.hook, hook) for hook in known[1]]

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every register and unregister (the host's routes cache)."""
        self._on_change.append(callback)

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any | None:
        """pluggy's unregister, then tell who watches the registry."""
        removed = super().unregister(plugin, name)
        if removed is not None:
            self._registered.pop(id(removed), None)
        self._changed()
        return removed

    def _changed(self) -> None:
        for callback in self._on_change:
            callback()

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register ``plugin`` under its metadata name, refusing anything pluggy would not run."""
        label = name or _metadata_name(plugin) or repr(plugin)
        marked = dict(_marked(plugin))
        self._check_is_plugin(plugin, label, bool(marked))
        self._marked_now = marked
        hooks = self._hooks_now = []  # its own: a historic hook's replay may register others
        try:
            registered = super().register(plugin, name=name or _metadata_name(plugin))
        except pluggy.PluginValidationError as exc:
            if self.is_registered(plugin):
                self.unregister(plugin)
            # pluggy refuses an argument its spec lacks as text; say which hook, and why.
            # Only here: signatures cost more than registering a plugin that is fine.
            self._check_arguments(plugin, label)
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
        finally:
            self._marked_now = None
        if registered is not None:  # None: a blocked name, nothing registered
            self._registered[id(plugin)] = (registered, tuple(dict.fromkeys(hooks)))
        self._check_unknown_hooks(plugin, label)
        self._changed()
        return registered

    def has_hookimpls(self, plugin: object) -> bool:
        """Whether ``plugin`` has any ``@hookimpl`` method: what makes an object a plugin."""
        return bool(hook_names(plugin))

    def _check_is_plugin(self, plugin: object, label: str, marked: bool) -> None:
        if isinstance(plugin, type):
            raise PluginRegistrationError(
                plugin=plugin,
                name=label,
                what=f"{plugin.__name__} is a class, not a plugin instance",
                hint=f"register an instance: pm.register({plugin.__name__}())",
            )
        if not marked:
            raise PluginRegistrationError(
                plugin=plugin,
                name=label,
                what=f"{plugin!r} is not a plugin: it has no @hookimpl methods",
                hint="decorate the plugin's hook methods with ksi_host.plugin_base.hookimpl",
            )

    def _check_arguments(self, plugin: object, label: str) -> None:
        """Each hook takes only arguments its spec declares (pluggy checks too, as text)."""
        for attr in hook_names(plugin):
            caller = getattr(self.hook, attr, None)
            spec = caller.spec if isinstance(caller, pluggy.HookCaller) else None
            method = getattr(plugin, attr, None)
            if spec is None or method is None:
                continue
            unknown = [arg for arg in _required_arguments(method) if arg not in spec.argnames]
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
                import difflib  # only for a wrong hook name: the host's start needs none

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
