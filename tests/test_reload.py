"""A running Host adopts a new plan: stop, start and restart only what differs, in order."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ksi_host._config import HostConfig, HostSection
from ksi_host._lifecycle import Host
from ksi_host._manifest import PluginManifest
from ksi_host._pipeline import boot, build_plan, plan_for
from ksi_host._plan import LoadPlan
from ksi_host._reload import (
    InstalledSince,
    PlanChange,
    code_stamps,
    diff_plans,
    forget_changed_modules,
)
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata
from tests.conftest import (
    DAEMON_EVENTS,
    ScriptedPlugin,
    answering_source,
    host_env,
    plan_of,
    running_daemon,
)
from tests.dists import install_dist, plugin_source

HOOKS = ("ksi_plugin_context", "ksi_startup", "ksi_shutdown")


def lifecycle(log: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(plugin, hook) for plugin, hook in log if hook in HOOKS]


def test_diff_restarts_what_depends_on_a_replaced_plugin_and_keeps_the_rest() -> None:
    a, b, c, d = (ScriptedPlugin(name) for name in "abcd")
    old = plan_of(a, b, c, requires={"b": ("a",)})
    a2, e = ScriptedPlugin("a"), ScriptedPlugin("e")
    new = plan_of(a2, b, d, e, requires={"b": ("a",)})
    diff = diff_plans(old, new, active={"a", "b", "c"})
    assert diff.stop == ("c", "b", "a")
    assert diff.start == ("a", "b", "d", "e")
    assert diff.removed == {"c"}
    assert diff.added == {"d", "e"}


def test_diff_of_the_same_plan_changes_nothing() -> None:
    plan = plan_of(ScriptedPlugin("a"), ScriptedPlugin("b"))
    diff = diff_plans(plan, plan, active={"a", "b"})
    assert (diff.stop, diff.start) == ((), ())


def test_apply_stops_in_reverse_and_starts_in_order_while_the_rest_keep_running() -> None:
    log: list[tuple[str, str]] = []
    a, b, keep = (ScriptedPlugin(n, log=log, commands=[f"{n}:ping"]) for n in ("a", "b", "keep"))
    keep.answers = {"keep:ping": {"ok": True}}
    a2 = ScriptedPlugin("a", log=log, answers={"a:ping": {"version": 2}}, commands=["a:ping"])
    new_plugin = ScriptedPlugin("new", log=log, answers={"new:ping": {"new": True}})

    async def main() -> tuple[PlanChange, list[Any]]:
        host = Host(plan_of(a, b, keep, requires={"b": ("a",)}))
        async with host:
            log.clear()
            change = await host.apply(plan_of(a2, b, keep, new_plugin, requires={"b": ("a",)}))
            answers = [
                await host.dispatch(event, {}) for event in ("a:ping", "keep:ping", "new:ping")
            ]
            assert {s.name: s.status for s in host.status()} == dict.fromkeys(
                ("a", "b", "keep", "new"), "running"
            )
        return change, answers

    change, answers = asyncio.run(main())
    assert change == PlanChange(started=("new",), restarted=("a", "b"), failed={})
    assert lifecycle(log)[:6] == [
        ("b", "ksi_shutdown"),
        ("a", "ksi_shutdown"),
        ("a", "ksi_plugin_context"),
        ("b", "ksi_plugin_context"),
        ("new", "ksi_plugin_context"),
        ("a", "ksi_startup"),
    ]
    assert ("keep", "ksi_shutdown") not in lifecycle(log)[:8]
    assert answers == [{"version": 2}, {"ok": True}, {"new": True}]


def test_a_plugin_that_fails_to_start_on_reload_is_reported_and_the_others_run() -> None:
    bad = ScriptedPlugin("bad", raises={"ksi_startup"})

    async def main() -> PlanChange:
        async with Host(plan_of(ScriptedPlugin("a"))) as host:
            change = await host.apply(plan_of(ScriptedPlugin("a"), bad))
            assert {s.name: s.status for s in host.status()}["bad"] == "failed"
            return change

    change = asyncio.run(main())
    assert change.restarted == ("a",)
    assert "bad broke in ksi_startup" in (change.failed or {})["bad"]
    assert change.as_dict()["status"] == "reloaded"


class Gated(BasePlugin):
    """Answers ``gated:wait`` once its gate opens."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__(
            PluginMetadata(name="gated", version="1.0"),
            PluginCapabilities(commands=["gated:wait"]),
        )
        self.gate = gate

    @hookimpl
    async def ksi_handle_event(self, event_name: str, data: dict[str, Any], context: Any) -> Any:
        await self.gate.wait()
        return {"finished": True}


def test_a_request_in_flight_finishes_when_its_plugin_restarts() -> None:
    async def main() -> tuple[Any, PlanChange]:
        gate = asyncio.Event()
        host = Host(plan_of(Gated(gate)))
        async with host:
            pending = asyncio.ensure_future(host.dispatch("gated:wait", {}))
            await asyncio.sleep(0.01)
            change = await host.apply(plan_of(Gated(asyncio.Event())))
            gate.set()
            return await pending, change

    answer, change = asyncio.run(main())
    assert answer == {"finished": True}
    assert change.restarted == ("gated",)


def _host_over(folder: Path, home: Path) -> Host:
    """A host as ``ksi-host run`` builds it, over ``folder`` and the built-ins, no entry points."""
    return boot(
        HostConfig(),
        paths=[folder],
        env=host_env(home),
    )


def test_reload_starts_new_restarts_edited_and_stops_removed_plugin_files(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "first.py").write_text(plugin_source("first", version="1.0"))

    async def main() -> list[PlanChange]:
        host = _host_over(folder, tmp_path)
        async with host:
            (folder / "second.py").write_text(plugin_source("second", version="1.0"))
            changes = [await host.reload()]
            (folder / "first.py").write_text(plugin_source("first", version="1.1"))
            changes.append(await host.reload())
            (folder / "second.py").unlink()
            changes.append(await host.reload())
            changes.append(await host.reload())
            running = {s.name: s.version for s in host.status() if s.status == "running"}
            assert running["first"] == "1.1"
            assert "second" not in running
        return changes

    changes = asyncio.run(main())
    assert [c.summary() for c in changes] == [
        "started second",
        "restarted first",
        "stopped second",
        "no plugin changed",
    ]


def test_load_runs_a_plugin_file_through_the_whole_lifecycle(tmp_path: Path) -> None:
    async def main() -> list[Any]:
        host = boot(
            HostConfig(),
            env=host_env(tmp_path),
        )
        async with host:
            change, found = await host.load(str(DAEMON_EVENTS))
            assert change.started == ("daemon_events",)
            assert [s.status for s in found] == ["running"]
            listed = await host.dispatch("plugin:list", {})
            assert "daemon_events" in {p["name"] for p in listed["plugins"]}
            echo = await host.dispatch("test:echo", {"x": 1})
            again = await host.reload()
            assert again.summary() == "no plugin changed"
        states = {s.name: s.status for s in host.status()}
        return [echo, states["daemon_events"]]

    echo, final = asyncio.run(main())
    assert echo["echo"] == {"x": 1}
    assert final == "stopped"


def test_load_of_a_broken_file_says_why_and_is_not_kept(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('nope')\n")

    async def main() -> None:
        host = boot(
            HostConfig(),
            env=host_env(tmp_path),
        )
        async with host:
            change, found = await host.load(str(broken))
            assert change.summary() == "no plugin changed"
            assert [s.status for s in found] == ["excluded"]
            assert found[0].reason is not None
            assert "RuntimeError: nope" in found[0].reason.message
            broken.write_text(plugin_source("broken"))
            assert (await host.reload()).summary() == "no plugin changed"
            answer = await host.dispatch("plugin:load", {"path": "relative.py"})
            assert answer["error"]["code"] == "INVALID_INPUT"

    asyncio.run(main())


def test_an_event_for_a_plugin_installed_since_start_names_ksi_host_reload(
    tmp_path: Path, site_dir: Path
) -> None:
    env = {**host_env(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "0"}

    async def main() -> dict[str, Any]:
        plan: LoadPlan = build_plan(env=env)
        async with Host(plan, installed_since=InstalledSince(env)) as host:
            install_dist(
                site_dir,
                dist="ksi-plugin-late",
                version="1.0",
                files={"late_mod.py": plugin_source("late")},
                entry_points={"late": "late_mod"},
            )
            return await host.dispatch("late:ping", {})  # type: ignore[no-any-return]

    answer = asyncio.run(main())
    assert answer["error"]["code"] == "NO_HANDLER"
    message = answer["error"]["message"]
    assert "plugin 'late' (ksi-plugin-late 1.0)" in message
    assert "run `ksi-host reload`" in message


@pytest.mark.slow
def test_ksi_host_load_adds_a_plugin_to_a_running_daemon_until_it_stops(tmp_path: Path) -> None:
    plugin_file = tmp_path / "greeter.py"
    plugin_file.write_text(
        "from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl\n"
        "class Greeter(BasePlugin):\n"
        "    @hookimpl\n"
        "    def ksi_startup(self):\n"
        "        print('greeter started', flush=True)\n"
        "    @hookimpl\n"
        "    def ksi_shutdown(self):\n"
        "        print('greeter stopped', flush=True)\n"
        "    @hookimpl\n"
        "    def ksi_handle_event(self, event_name, data, context):\n"
        "        if event_name == 'greeter:hello':\n"
        "            return {'hello': data.get('name')}\n"
        "plugin = Greeter(PluginMetadata(name='greeter', version='1.0'),\n"
        "                 PluginCapabilities(commands=['greeter:hello']))\n"
    )
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    with running_daemon() as daemon:
        sock = ("--socket", str(daemon.socket_path))
        loaded = daemon.cli("load", str(plugin_file), *sock)
        assert loaded.returncode == 0, loaded.stderr
        assert loaded.stdout == "daemon loaded:\n  started: greeter\n"
        hello = daemon.send("greeter:hello", "--data", '{"name": "ksi"}')
        assert json.loads(hello.stdout) == {"hello": "ksi"}
        listed = json.loads(daemon.send("plugin:list").stdout)["plugins"]
        assert {"name": "greeter", "status": "running"}.items() <= next(
            p for p in listed if p["name"] == "greeter"
        ).items()
        broken = daemon.cli("load", str(tmp_path / "broken.py"), *sock)
        assert broken.returncode == 1
        assert "broken from" in broken.stderr
        assert "No module named 'not_a_module_anywhere'" in broken.stderr
        missing = daemon.cli("load", str(tmp_path / "nope.py"), *sock)
        assert missing.returncode == 2
        assert daemon.proc is not None
        daemon.proc.terminate()
        assert daemon.proc.wait(30) == 0
        assert daemon.log().index("greeter started") < daemon.log().index("greeter stopped")


def test_reloading_an_edited_file_never_drops_the_library_its_plugin_class_comes_from(
    tmp_path: Path,
) -> None:

    file = tmp_path / "borrowed.py"
    source = "from tests.conftest import ScriptedPlugin\nplugin = ScriptedPlugin({name!r})\n"
    file.write_text(source.format(name="borrowed"))
    library = sys.modules["tests.conftest"]

    async def main() -> PlanChange:
        host = boot(HostConfig(), paths=[file], env=host_env(tmp_path))
        async with host:
            file.write_text(source.format(name="borrowed") + "# edited\n")
            return await host.reload()

    assert asyncio.run(main()).restarted == ("borrowed",)
    assert sys.modules["tests.conftest"] is library


def test_an_edit_that_keeps_size_and_modification_time_is_still_reloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Content, not mtime, says a plugin file changed (and its stale bytecode is not used)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)  # as a daemon runs: .pyc written
    folder = tmp_path / "plugins"
    folder.mkdir()
    file = folder / "tick.py"
    file.write_text(plugin_source("tick", version="1.0"))

    async def main() -> tuple[PlanChange, str | None]:
        host = _host_over(folder, tmp_path)
        async with host:
            before = file.stat()
            file.write_text(plugin_source("tick", version="1.1"))
            os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
            assert (file.stat().st_size, file.stat().st_mtime_ns) == (
                before.st_size,
                before.st_mtime_ns,
            )
            change = await host.reload()
            return change, {s.name: s.version for s in host.status()}["tick"]

    change, version = asyncio.run(main())
    assert change.restarted == ("tick",)
    assert version == "1.1"


def _which_source(marker: str) -> str:
    """The same plugin, version and size, answering with ``marker`` (one letter)."""
    return (
        "from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl\n"
        "class Which(BasePlugin):\n"
        "    @hookimpl\n"
        "    def ksi_handle_event(self, event_name, data, context):\n"
        f"        return {{'code': {marker!r}}}\n"
        "plugin = Which(PluginMetadata(name='which', version='1.0'),\n"
        "               PluginCapabilities(commands=['which:code']))\n"
    )


def test_a_reinstall_of_the_same_version_with_other_code_is_restarted(
    tmp_path: Path, site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    env = {**host_env(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "0"}

    def install(marker: str) -> Path:
        return install_dist(
            site_dir,
            dist="ksi-plugin-which",
            version="1.0",
            files={"which_mod.py": _which_source(marker)},
            entry_points={"which": "which_mod"},
        )

    info = install("A")

    async def main() -> list[Any]:
        host = boot(HostConfig(), env=env)
        async with host:
            answers = [await host.dispatch("which:code", {})]
            assert (await host.reload()).summary() == "no plugin changed"
            shutil.rmtree(info)
            written = (site_dir / "which_mod.py").stat()
            install("B")  # same size; same second too, most likely: the .pyc would pass
            os.utime(site_dir / "which_mod.py", ns=(written.st_atime_ns, written.st_mtime_ns))
            answers.append(await host.reload())
            answers.append(await host.dispatch("which:code", {}))
        return answers

    first, change, second = asyncio.run(main())
    assert first == {"code": "A"}
    assert change.restarted == ("which",)
    assert second == {"code": "B"}


def test_a_start_stamp_reads_the_distribution_the_scan_found_as_a_reload_looks_it_up(
    tmp_path: Path, site_dir: Path
) -> None:
    env = {**host_env(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "0"}
    info = install_dist(
        site_dir,
        dist="ksi-plugin-stamped",
        version="1.0",
        files={"stamped_mod.py": plugin_source("stamped")},
        entry_points={"stamped": "stamped_mod"},
    )
    plan = plan_for(HostConfig(), env=env)
    spec = next(spec for spec in plan.order if spec.name == "stamped")
    assert spec.candidate is not None
    assert spec.candidate.dist_info == str(info)
    assert forget_changed_modules(plan, code_stamps(plan)).changed == frozenset()
    shutil.rmtree(info)
    assert code_stamps(plan)[spec.key] == "gone"  # the folder went: looked up by name


def test_a_lazy_plugin_upgraded_before_or_after_its_activation_runs_the_new_version(
    tmp_path: Path, site_dir: Path
) -> None:
    env = {**host_env(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "0"}

    def install(version: str) -> Path:
        manifest = PluginManifest(
            name="sleepy",
            version=version,
            commands=("sleepy:ping",),
            hooks=("ksi_handle_event",),
            activation="lazy",
        )
        return install_dist(
            site_dir,
            dist="ksi-plugin-sleepy",
            version=version,
            files={
                "sleepy_pkg/__init__.py": answering_source("sleepy", version),
                "sleepy_pkg/ksi-plugin.toml": manifest.to_toml(),
            },
            entry_points={"sleepy": "sleepy_pkg"},
        )

    def upgrade(info: Path, version: str) -> Path:
        shutil.rmtree(info)
        shutil.rmtree(site_dir / "sleepy_pkg")
        return install(version)

    info = install("1.0")

    async def main() -> list[Any]:
        host = boot(HostConfig(), env=env)
        found: list[Any] = []
        async with host:
            assert {s.name: s.status for s in host.status()}["sleepy"] == "lazy"
            info2 = upgrade(info, "2.0")
            found.append(await host.reload())
            found.append({s.name: (s.status, s.version) for s in host.status()}["sleepy"])
            found.append(await host.dispatch("sleepy:ping", {}))
            assert (await host.reload()).summary() == "no plugin changed"
            assert {s.name: s.status for s in host.status()}["sleepy"] == "running"
            upgrade(info2, "3.0")
            found.append(await host.reload())
            found.append(await host.dispatch("sleepy:ping", {}))
        return found

    before, status, first, after, second = asyncio.run(main())
    assert before.restarted == ("sleepy",)
    assert status == ("lazy", "2.0")
    assert first["version"] == "2.0"
    assert after.restarted == ("sleepy",)
    assert second["version"] == "3.0"


def test_an_edit_to_the_source_of_an_editable_install_is_reloaded(
    tmp_path: Path, site_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editable install's RECORD never changes: the code it points to does."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    source = tmp_path / "src" / "edit_mod.py"
    source.parent.mkdir()
    source.write_text(_which_source("A"))
    monkeypatch.syspath_prepend(str(source.parent))  # what its .pth does at start-up
    info = install_dist(
        site_dir,
        dist="ksi-plugin-edit",
        version="1.0",
        files={"__editable__.ksi_plugin_edit-1.0.pth": f"{source.parent}\n"},
        entry_points={"which": "edit_mod"},
    )
    direct = {"url": source.parent.as_uri(), "dir_info": {"editable": True}}
    (info / "direct_url.json").write_text(json.dumps(direct))
    env = {**host_env(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "0"}

    async def main() -> list[Any]:
        async with boot(HostConfig(), env=env) as host:
            answers = [await host.dispatch("which:code", {})]
            assert (await host.reload()).summary() == "no plugin changed"
            written = source.stat()
            source.write_text(_which_source("B"))
            os.utime(source, ns=(written.st_atime_ns, written.st_mtime_ns))
            answers.append(await host.reload())
            answers.append(await host.dispatch("which:code", {}))
        return answers

    first, change, second = asyncio.run(main())
    assert first == {"code": "A"}
    assert change.restarted == ("which",)
    assert second == {"code": "B"}


ISOLATED_NEEDS_BASE = """\
import os
from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


class Iso(BasePlugin):
    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        if event_name == "iso:exit":
            os._exit(3)
        return {"pid": os.getpid()}


plugin = Iso(
    PluginMetadata(name="iso", version="1.0", dependencies=["base"]),
    PluginCapabilities(commands=["iso:ping", "iso:exit"]),
)
"""


@pytest.mark.slow
def test_an_isolated_plugin_restarted_for_its_dependency_gets_a_worker_that_recovers(
    tmp_path: Path,
) -> None:
    """Unchanged, it keeps its worker; restarted, a fresh proxy: its crashes are still handled."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "base.py").write_text(plugin_source("base", version="1.0"))
    (folder / "iso.py").write_text(ISOLATED_NEEDS_BASE)
    config = HostConfig(host=HostSection(isolated=["iso"], watchdog_threshold=0))

    async def until_answered(host: Host) -> dict[str, Any]:
        for _ in range(200):
            answer: dict[str, Any] = await host.dispatch("iso:ping", {})
            if "pid" in answer:
                return answer
            await asyncio.sleep(0.05)
        raise AssertionError(f"iso never answered again: {answer}")

    async def main() -> list[Any]:
        async with boot(config, paths=[folder], env=host_env(tmp_path)) as host:
            first = (await host.dispatch("iso:ping", {}))["pid"]
            assert (await host.reload()).summary() == "no plugin changed"
            assert (await host.dispatch("iso:ping", {}))["pid"] == first
            (folder / "base.py").write_text(plugin_source("base", version="1.1"))
            change = await host.reload()
            second = (await host.dispatch("iso:ping", {}))["pid"]
            crashed = await host.dispatch("iso:exit", {})
            third = (await until_answered(host))["pid"]
        return [change, first, second, crashed, third]

    change, first, second, crashed, third = asyncio.run(main())
    assert change.restarted == ("base", "iso")
    assert len({first, second, third}) == 3
    assert crashed["error"]["code"] == "PLUGIN_CRASHED"


def test_an_edit_made_while_a_reload_plans_is_seen_by_the_next_one(tmp_path: Path) -> None:
    """The stamps kept are from before the plan: an edit after an import is not masked."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    file = folder / "first.py"
    file.write_text(plugin_source("first", version="1.0"))
    env = host_env(tmp_path)
    during: list[str] = []

    def planner(loaded: Sequence[str]) -> LoadPlan:
        plan = plan_for(HostConfig(), paths=[folder, *loaded], env=env)
        for version in during:  # written after the import, before the stamps are taken
            file.write_text(plugin_source("first", version=version))
        during.clear()
        return plan

    async def main() -> list[str]:
        versions = []
        async with Host(planner(()), HostConfig(), planner=planner) as host:
            file.write_text(plugin_source("first", version="1.1"))
            during.append("1.2")
            for _ in range(2):
                assert (await host.reload()).restarted == ("first",)
                versions.append({s.name: s.version for s in host.status()}["first"])
        return versions

    assert asyncio.run(main()) == ["1.1", "1.2"]
