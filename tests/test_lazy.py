"""Lazy activation: a plugin with a lazy manifest is imported on the first event it declares."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ksi_host._config import HostConfig
from ksi_host._lifecycle import Host
from ksi_host._pipeline import build_plan
from tests.conftest import MODULES_PROBE, DaemonProcess, error_code, write_config
from tests.dists import install_recorded, recorded_manifest, recording_source


def _states(host: Host) -> dict[str, str]:
    return {status.name: status.status for status in host.status()}


def test_a_lazy_plugin_is_imported_once_on_its_first_event(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(site_dir, "lz_one", manifest=recorded_manifest("lz_one"))
    install_recorded(site_dir, "lz_other", manifest=recorded_manifest("lz_other"))

    async def scenario() -> None:
        async with Host(build_plan(env=ksi_env, builtin_package=None), HostConfig()) as host:
            assert _states(host) == {"lz_one": "lazy", "lz_other": "lazy"}
            assert imports.read_text() == ""
            answers = await asyncio.gather(*(host.dispatch("lz_one:hi") for _ in range(5)))
            assert answers == [{"from": "lz_one", "event": "lz_one:hi"}] * 5
            assert _states(host) == {"lz_one": "running", "lz_other": "lazy"}
            assert await host.dispatch("nobody:hi") == {
                "status": "error",
                "error": {"code": "NO_HANDLER", "message": "no plugin handles 'nobody:hi'"},
            }
        assert _states(host) == {"lz_one": "stopped", "lz_other": "stopped"}

    asyncio.run(scenario())
    assert imports.read_text().split() == ["lz_one"]


def test_a_lazy_plugin_that_cannot_import_answers_with_its_name_and_the_rest_runs(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(site_dir, "lz_broken", manifest=recorded_manifest("lz_broken"))
    (site_dir / "lz_broken_pkg" / "__init__.py").write_text("raise RuntimeError('no disk')\n")
    install_recorded(site_dir, "lz_fine", manifest=recorded_manifest("lz_fine"))

    async def scenario() -> None:
        async with Host(build_plan(env=ksi_env, builtin_package=None), HostConfig()) as host:
            for _ in range(2):
                answer = await host.dispatch("lz_broken:go")
                assert error_code(answer) == "UNAVAILABLE"
                assert answer["error"]["plugin"] == "lz_broken"
                assert "RuntimeError: no disk" in answer["error"]["message"]
            assert await host.dispatch("lz_fine:go") == {"from": "lz_fine", "event": "lz_fine:go"}
            broken = next(s for s in host.status() if s.name == "lz_broken")
            assert broken.status == "failed"
            assert broken.reason is not None
            assert broken.reason.code == "import-error"

    asyncio.run(scenario())


def test_a_lazy_plugin_whose_startup_fails_answers_unavailable(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(
        site_dir,
        "lz_start",
        manifest=recorded_manifest("lz_start", hooks=("ksi_handle_event", "ksi_startup")),
        source=recording_source("lz_start", failing_startup=True),
    )

    async def scenario() -> None:
        async with Host(build_plan(env=ksi_env, builtin_package=None), HostConfig()) as host:
            answer = await host.dispatch("lz_start:go")
            assert error_code(answer) == "UNAVAILABLE"
            assert "OSError in ksi_startup: port taken" in answer["error"]["message"]

    asyncio.run(scenario())


def test_a_stale_manifest_fails_the_plugin_field_by_field(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(site_dir, "lz_stale", manifest=recorded_manifest("lz_stale", version="2.0"))

    async def scenario() -> None:
        async with Host(build_plan(env=ksi_env, builtin_package=None), HostConfig()) as host:
            answer = await host.dispatch("lz_stale:go")
            assert error_code(answer) == "UNAVAILABLE"
            assert "version: manifest says '2.0', code says '1.0'" in answer["error"]["message"]

    asyncio.run(scenario())


def test_lazy_plugins_that_must_see_everything_or_that_others_need_start_at_once(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(
        site_dir,
        "lz_all",
        manifest=recorded_manifest("lz_all", event_namespaces=()),
        source=recording_source("lz_all", namespaces=()),
    )
    install_recorded(site_dir, "lz_needed", manifest=recorded_manifest("lz_needed"))
    install_recorded(
        site_dir,
        "lz_needs",
        manifest=recorded_manifest(
            "lz_needs", activation="startup", after_dependencies=("lz_needed",)
        ),
        source=recording_source("lz_needs", after=("lz_needed",)),
    )

    async def scenario() -> None:
        async with Host(build_plan(env=ksi_env, builtin_package=None), HostConfig()) as host:
            assert _states(host) == {
                "lz_all": "running",
                "lz_needed": "running",
                "lz_needs": "running",
            }

    asyncio.run(scenario())
    assert sorted(imports.read_text().split()) == ["lz_all", "lz_needed", "lz_needs"]


def test_a_lazy_plugin_activates_its_lazy_dependencies_first(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(site_dir, "lz_base", manifest=recorded_manifest("lz_base"))
    install_recorded(
        site_dir,
        "lz_top",
        manifest=recorded_manifest("lz_top", dependencies=("lz_base",)),
        source=recording_source("lz_top", dependencies=("lz_base",)),
    )

    async def scenario() -> None:
        async with Host(build_plan(env=ksi_env, builtin_package=None), HostConfig()) as host:
            assert await host.dispatch("lz_top:go") == {"from": "lz_top", "event": "lz_top:go"}
            assert _states(host) == {"lz_base": "running", "lz_top": "running"}

    asyncio.run(scenario())
    assert imports.read_text().split() == ["lz_base", "lz_top"]


@pytest.mark.slow
def test_the_daemon_lists_routes_to_and_imports_a_lazy_plugin_only_on_its_first_event(
    tmp_path: Path, short_dir: Path
) -> None:
    site = tmp_path / "site"
    install_recorded(site, "lz_daemon", manifest=recorded_manifest("lz_daemon"))
    write_config(short_dir / "ksi.toml", state=short_dir / "state.db")
    daemon = DaemonProcess(short_dir)
    daemon.env.update(PYTHONPATH=str(site), KSI_TEST_IMPORTS=str(tmp_path / "imports.log"))
    daemon.start(*daemon.run_args(), "--plugin-path", str(MODULES_PROBE))
    try:

        def send(event: str, data: object = None) -> dict[str, object]:
            args = ("--data", json.dumps(data)) if data is not None else ()
            done = daemon.send(event, *args)
            return json.loads(done.stdout)  # type: ignore[no-any-return]

        def status() -> str:
            plugins = send("plugin:list")["plugins"]
            return next(p["status"] for p in plugins if p["name"] == "lz_daemon")  # type: ignore[index, union-attr]

        modules = {"names": ["lz_daemon_pkg"]}
        assert status() == "lazy"
        assert send("probe:modules", modules) == {"loaded": []}
        assert not (tmp_path / "imports.log").exists()

        assert send("lz_daemon:hello") == {"from": "lz_daemon", "event": "lz_daemon:hello"}

        assert send("probe:modules", modules) == {"loaded": ["lz_daemon_pkg"]}
        assert status() == "running"
        assert (tmp_path / "imports.log").read_text().split() == ["lz_daemon"]
    finally:
        daemon.stop()
    assert "activating lazy plugin lz_daemon for lz_daemon:hello" in daemon.log()
