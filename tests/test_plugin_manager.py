"""The pluggy manager refuses what pluggy alone would accept and never run."""

from __future__ import annotations

import types

import pluggy
import pytest

from ksi_host import BasePlugin, PluginManager, PluginRegistrationError, hookimpl
from ksi_host.plugin_manager import _marked, hook_names
from ksi_host.plugin_types import PluginMetadata


class Good(BasePlugin):
    def __init__(self, name: str = "good") -> None:
        super().__init__(metadata=PluginMetadata(name=name))

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        return {"from": self.name}


def test_pm_is_a_real_pluggy_manager_with_the_specs():
    manager = PluginManager()
    assert isinstance(manager.pm, pluggy.PluginManager)
    assert manager.pm.project_name == "ksi"
    specs = {name for name, caller in vars(manager.pm.hook).items() if caller.spec}
    assert specs == {
        "ksi_startup",
        "ksi_shutdown",
        "ksi_plugin_context",
        "ksi_handle_event",
        "ksi_filter_event",
        "ksi_validate_event",
        "ksi_metrics_collected",
    }


def test_plugins_register_under_their_metadata_name():
    manager = PluginManager()
    plugin = Good()
    assert manager.register(plugin) == "good"
    assert manager.pm.get_plugin("good") is plugin
    manager.unregister(plugin)
    assert manager.pm.get_plugin("good") is None


def test_a_typo_in_a_hook_name_is_refused_with_the_right_name():
    class Typo(BasePlugin):
        def __init__(self):
            super().__init__(metadata=PluginMetadata(name="typo"))

        @hookimpl
        def ksi_handle_events(self, event_name, data, context):
            return None

    manager = PluginManager()
    with pytest.raises(PluginRegistrationError) as info:
        manager.pm.register(Typo())
    assert info.value.name == "typo"
    assert info.value.hook == "ksi_handle_events"
    assert str(info.value).splitlines()[:2] == [
        "error[plugin-registration]: plugin 'typo' implements 'ksi_handle_events', "
        "which is not a KSI hook",
        "  where: plugin 'typo', hook 'ksi_handle_events'",
    ]
    assert "rename it to 'ksi_handle_event'" in str(info.value)
    assert manager.pm.get_plugin("typo") is None


def test_arguments_that_do_not_match_the_spec_are_refused():
    class BadArgs(BasePlugin):
        def __init__(self):
            super().__init__(metadata=PluginMetadata(name="bad_args"))

        @hookimpl
        def ksi_handle_event(self, event, data):
            return None

    with pytest.raises(PluginRegistrationError) as info:
        PluginManager().pm.register(BadArgs())
    assert (info.value.name, info.value.hook) == ("bad_args", "ksi_handle_event")
    assert info.value.what == (
        "plugin 'bad_args': ksi_handle_event takes 'event', which the hook spec does not pass "
        "(it passes 'event_name', 'data', 'context')"
    )
    assert not PluginManager().pm.get_plugins()


@pytest.mark.parametrize("thing", [42, "plugin", None, object()])
def test_things_without_hooks_are_not_plugins(thing):
    with pytest.raises(PluginRegistrationError, match="is not a plugin: it has no @hookimpl"):
        PluginManager().pm.register(thing)


def test_registering_the_class_instead_of_an_instance_says_so():
    with pytest.raises(
        PluginRegistrationError, match=r"register an instance: pm.register\(Good\(\)\)"
    ):
        PluginManager().pm.register(Good)


def test_registering_the_same_name_twice_is_refused():
    manager = PluginManager()
    manager.register(Good())
    with pytest.raises(PluginRegistrationError, match="already registered"):
        manager.register(Good())


def _pluggy_hook_names(plugin: object) -> tuple[str, ...]:
    """What pluggy's register would find: its option parser over every name of dir()."""
    pm = pluggy.PluginManager("ksi")
    names = set()
    for attr in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is not None:
            names.add(opts.get("specname") or attr)
    return tuple(sorted(names))


def _module_plugin() -> object:
    module = types.ModuleType("module_plugin")

    @hookimpl
    def ksi_startup(config):
        return None

    module.ksi_startup = ksi_startup
    module.helper = len
    return module


class _Static(Good):
    @hookimpl
    @staticmethod
    def ksi_startup(config):
        return None

    @staticmethod
    @hookimpl
    def ksi_shutdown():
        return None

    @hookimpl
    @classmethod
    def ksi_metrics_collected(cls, metrics):
        return None


class _Renamed(Good):
    @hookimpl(specname="ksi_startup")
    def start_up(self, config):
        return None


class _Overridden(Good):
    ksi_handle_event = None


class _Property(Good):
    @property
    def ksi_handle_event(self):
        raise AssertionError("hook discovery must not evaluate properties")


class _Slotted:
    __slots__ = ("ksi_startup",)

    def __init__(self) -> None:
        self.ksi_startup = hookimpl(lambda config: None)


def _instance_hook() -> object:
    plugin = _Overridden(name="inst")
    plugin.__dict__["ksi_startup"] = hookimpl(lambda config: None)
    return plugin


@pytest.mark.parametrize(
    "make",
    [Good, _Static, _Renamed, _Overridden, _Property, _Slotted, _module_plugin, _instance_hook],
)
def test_hook_names_finds_what_pluggy_registers(make):
    plugin = make()
    assert hook_names(plugin) == _pluggy_hook_names(plugin)
    assert PluginManager().pm.has_hookimpls(plugin) == bool(_pluggy_hook_names(plugin))
    # register answers pluggy's parser from the same walk: the very same options objects
    parser = pluggy.PluginManager("ksi")
    found = {attr: parser.parse_hookimpl_opts(plugin, attr) for attr in dir(plugin)}
    expected = {attr: opts for attr, opts in found.items() if opts is not None}
    walked = dict(_marked(plugin))
    assert walked.keys() == expected.keys()
    assert all(walked[attr] is expected[attr] for attr in expected)


class _StartsUnderAnotherName(Good):
    @hookimpl(specname="ksi_startup")
    def start_up(self):
        return None


def test_name_and_hookcallers_lookups_agree_with_pluggys_scans():
    pm = PluginManager().pm
    plugins = [Good(f"g{index}") for index in range(5)]
    renamed, blocked = _StartsUnderAnotherName(name="renamed"), Good("blocked")
    stranger = Good("stranger")
    for plugin in [*plugins, renamed]:
        pm.register(plugin)
    pm.set_blocked("blocked")
    assert pm.register(blocked) is None
    pm.unregister(plugins[1])
    pm.unregister(name="g3")

    def pluggys(plugin: object) -> tuple[object, ...]:
        scan = pluggy.PluginManager
        callers = scan.get_hookcallers(pm, plugin)
        return scan.get_name(pm, plugin), scan.is_registered(pm, plugin), callers and set(callers)

    for plugin in [*plugins, renamed, blocked, stranger]:
        callers = pm.get_hookcallers(plugin)
        ours = (pm.get_name(plugin), pm.is_registered(plugin), callers and set(callers))
        assert ours == pluggys(plugin)
    assert {c.name for c in pm.get_hookcallers(renamed) or ()} == {
        "ksi_handle_event",
        "ksi_startup",
    }
    pm.unregister(renamed)
    assert pm.hook.ksi_startup.get_hookimpls() == []
    assert [name for name, _ in pm.list_name_plugin()] == ["g0", "g2", "g4", "blocked"]


class _Ordered(Good):
    @hookimpl(tryfirst=True)
    def ksi_startup(self):
        return None

    @hookimpl(trylast=True, specname="ksi_startup")
    def start_last(self):
        return None


def test_each_plugins_hookimpls_are_the_ones_pluggy_calls_in_its_order():
    pm = PluginManager().pm
    plugins = [(_Ordered if index % 2 else Good)(f"p{index}") for index in range(6)]
    hooks = ("ksi_startup", "ksi_handle_event", "ksi_shutdown")

    def agree() -> None:
        for plugin in [*plugins, Good("stranger")]:
            for hook in hooks:
                every = getattr(pm.hook, hook).get_hookimpls()
                assert pm.hookimpls_of(plugin, hook) == [i for i in every if i.plugin is plugin]

    for plugin in plugins[:4]:
        pm.register(plugin)
    agree()
    pm.unregister(plugins[1])
    agree()
    pm.register(plugins[4])  # after the lookups: its implementations are found too
    pm.unregister(name="p2")
    agree()
    with pytest.raises(PluginRegistrationError):
        pm.register(Good("p0"))  # refused: the kept lookups still hold
    agree()
    assert [i.function.__name__ for i in pm.hookimpls_of(plugins[3], "ksi_startup")] == [
        "start_last",
        "ksi_startup",
    ]


def test_a_plugin_that_registers_another_while_registering_still_unregisters_whole():
    """A historic hook's replay runs inside ``register``: a plugin whose replay registers
    another keeps its record of every hook it implements, so unregistering it leaves no
    implementation of it behind (``dir()`` order puts ``ksi_announce`` first)."""
    manager = PluginManager()
    pm = manager.pm

    class Announce:
        @pluggy.HookspecMarker("ksi")(historic=True)
        def ksi_announce(self):
            """A historic hook a user's manager adds."""

    pm.add_hookspecs(Announce)
    pm.hook.ksi_announce.call_historic(kwargs={})
    inner = Good("inner")

    class Outer(BasePlugin):
        @hookimpl
        def ksi_announce(self):
            manager.register(inner)

        @hookimpl
        def ksi_handle_event(self, event_name, data, context):
            return None

    outer = Outer(metadata=PluginMetadata(name="outer"))
    manager.register(outer)
    assert pm.is_registered(inner)
    manager.unregister(outer)
    assert [impl.plugin for impl in pm.hook.ksi_handle_event.get_hookimpls()] == [inner]
    assert pm.hook.ksi_announce.get_hookimpls() == []
