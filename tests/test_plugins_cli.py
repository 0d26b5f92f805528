"""``ksi-host plugins``: the plan as text and as JSON, with an exit code that says if all load."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ksi_host._cli import cli
from ksi_host._plan import Exclusion, LoadPlan, Origin, PlanWarning, Reason
from ksi_host._plans_report import PlanReport, plan_report, render_text
from ksi_host._resolve import resolve
from ksi_host._schema import SCHEMA_VERSION
from tests.conftest import subprocess_env
from tests.dists import plugin_source
from tests.strategies import make_spec


def _env(tmp_path: Path, **extra: str) -> dict[str, str | None]:
    home = tmp_path / "ksi-home"
    (home / "plugins").mkdir(parents=True, exist_ok=True)
    return {
        "HOME": str(tmp_path),
        "KSI_HOME": str(home),
        "KSI_PLUGIN_PATH": None,
        "KSI_DISABLE_PLUGINS": None,
        "KSI_DISABLE_PLUGIN_AUTOLOAD": "1",
        **extra,
    }


def _plan() -> LoadPlan:
    storage = make_spec("storage", version="1.0")
    app = make_spec("app", version="0.2", dependencies=["storage"])
    broken = Reason("import-error", "driver failed to import: ImportError: nope", "fix it")
    chained = Reason(
        "dependency-excluded", "web needs driver, which will not load (import-error)", cause=broken
    )
    return LoadPlan(
        order=(storage, app),
        excluded=(
            Exclusion("driver", Origin("folder", "/p/driver.py"), broken),
            Exclusion("web", Origin("entry-point", "web", "ksi-web", "3.0", "web"), chained),
        ),
        requires={"storage": (), "app": ("storage",)},
        warnings=(PlanWarning("duplicate-command", "something to know", "choose", ("app",)),),
    )


def test_text_shows_the_order_then_each_reason_down_to_the_root() -> None:
    assert render_text(plan_report(_plan())) == "\n".join(
        [
            "2 plugin(s) will load, 2 will not",
            "load order:",
            "  1. storage 1.0  [loadable]  from path storage.py",
            "  2. app 0.2  [loadable]  from path app.py",
            "not loading:",
            "  driver  [excluded]  from folder /p/driver.py",
            "    import-error: driver failed to import: ImportError: nope",
            "      hint: fix it",
            "  web 3.0  [excluded]  from ksi-web 3.0, entry point 'web'",
            "    dependency-excluded: web needs driver, which will not load (import-error)",
            "    caused by import-error: driver failed to import: ImportError: nope",
            "      hint: fix it",
            "warnings:",
            "  - something to know  [duplicate-command]",
            "    hint: choose",
        ]
    )


def test_json_report_lists_loadable_in_order_then_the_rest() -> None:
    report = plan_report(_plan())
    data = json.loads(report.model_dump_json())
    assert [(p["name"], p["status"], p["position"]) for p in data["plugins"]] == [
        ("storage", "loadable", 1),
        ("app", "loadable", 2),
        ("driver", "excluded", None),
        ("web", "excluded", None),
    ]
    assert data["plugins"][1]["requires"] == ["storage"]
    assert data["plugins"][3]["reason"]["cause"]["code"] == "import-error"
    assert data["warnings"] == [
        {
            "code": "duplicate-command",
            "message": "something to know",
            "hint": "choose",
            "plugins": ["app"],
        }
    ]
    assert data["plugins"][1]["warnings"] == ["duplicate-command"]
    assert (data["schema_version"], data["command"]) == (SCHEMA_VERSION, "plugins")
    assert not report.ok


def test_json_reasons_carry_the_structured_fields_scripts_need() -> None:
    specs = [
        make_spec("cyc_a", dependencies=["cyc_b"]),
        make_spec("cyc_b", dependencies=["cyc_a"]),
        make_spec("old", version="1.0"),
        make_spec("app", dependencies=["old>=2"]),
    ]
    data = json.loads(plan_report(resolve(specs)).model_dump_json())
    reasons = {p["name"]: p["reason"] for p in data["plugins"]}
    assert reasons["cyc_a"]["code"] == "cycle"
    assert reasons["cyc_a"]["cycle"] == ["cyc_a", "cyc_b", "cyc_a"]
    assert (reasons["app"]["code"], reasons["app"]["requirement"]) == ("version-conflict", "old>=2")


def test_disabled_and_shadowed_plugins_do_not_fail_the_check() -> None:
    origin = Origin("path", "x.py")
    plan = LoadPlan(
        order=(),
        excluded=(
            Exclusion("x", origin, Reason("disabled", "x is disabled by KSI_DISABLE_PLUGINS")),
            Exclusion("y", origin, Reason("shadowed", "y is shadowed")),
        ),
    )
    report = plan_report(plan)
    assert [p.status for p in report.plugins] == ["disabled", "shadowed"]
    assert report.ok


@pytest.mark.usefixtures("site_dir")
def test_plugins_command_exits_1_when_one_cannot_load(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "good.py").write_text(plugin_source("cli_good", version="1.0"))
    (folder / "needy.py").write_text(plugin_source("cli_needy", dependencies=["cli_absent"]))

    result = runner.invoke(
        cli, ["plugins", "--json", "--plugin-path", str(folder)], env=_env(tmp_path)
    )

    assert result.exit_code == 1, result.output
    report = PlanReport.model_validate_json(result.output)
    ours = {p.name: p for p in report.plugins if p.name.startswith("cli_")}
    assert ours["cli_good"].status == "loadable"
    assert ours["cli_good"].source == f"path {folder / 'good.py'}"
    assert ours["cli_needy"].reason is not None
    assert ours["cli_needy"].reason.code == "missing-dependency"


@pytest.mark.usefixtures("site_dir")
def test_plugins_command_exits_0_when_all_load(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "fine.py").write_text(plugin_source("cli_fine", version="1.0"))
    (folder / "broken.py").write_text("raise ImportError('x')\n")

    result = runner.invoke(
        cli,
        ["plugins", "--plugin-path", str(folder)],
        env=_env(tmp_path, KSI_DISABLE_PLUGINS="broken"),
    )

    assert result.exit_code == 0, result.output
    assert "cli_fine 1.0  [loadable]" in result.output
    assert "broken  [disabled]" in result.output


@pytest.mark.usefixtures("site_dir")
def test_config_file_adds_paths_and_disables_plugins(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "from-config"
    folder.mkdir()
    (folder / "kept.py").write_text(plugin_source("cfg_kept", version="1.0"))
    (folder / "dropped.py").write_text(plugin_source("cfg_dropped", version="1.0"))
    config = tmp_path / "ksi.toml"
    config.write_text(f'[host]\nplugin_paths = ["{folder}"]\ndisabled = ["cfg_dropped"]\n')

    result = runner.invoke(cli, ["plugins", "--config", str(config)], env=_env(tmp_path))

    assert result.exit_code == 0, result.output
    assert "cfg_kept 1.0  [loadable]" in result.output
    assert "cfg_dropped 1.0  [disabled]" in result.output


@pytest.mark.usefixtures("site_dir")
def test_a_user_plugin_shadows_a_builtin_and_the_report_says_by_what(
    runner: CliRunner, tmp_path: Path
) -> None:
    env = _env(tmp_path)
    user_copy = Path(str(env["KSI_HOME"])) / "plugins" / "my_health.py"
    user_copy.write_text(plugin_source("health", version="9.0"))

    result = runner.invoke(cli, ["plugins", "--json"], env=env)

    assert result.exit_code == 0, result.output
    report = PlanReport.model_validate_json(result.output)
    ours, builtin = [p for p in report.plugins if p.name == "health"]
    assert (ours.version, ours.status, ours.source) == ("9.0", "loadable", f"user {user_copy}")
    assert (builtin.status, builtin.source) == ("shadowed", "builtin ksi_plugins_builtin.health")
    assert builtin.reason is not None
    assert builtin.reason.message.endswith(f"is shadowed by health from user {user_copy}")


def test_a_broken_config_file_is_rendered_not_raised(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "ksi.toml"
    config.write_text("[host\n")
    result = runner.invoke(cli, ["plugins", "--config", str(config)], env=_env(tmp_path))
    assert result.exit_code == 1
    assert result.output.startswith("error[config-error]: config file is not valid TOML")


def test_a_bad_setting_is_rendered_not_raised(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["plugins"], env=_env(tmp_path, KSI_DISABLE_PLUGINS="a b"))
    assert result.exit_code == 1
    assert result.output.startswith("error[config-error]: KSI_DISABLE_PLUGINS names 'a b'")


@pytest.mark.slow
def test_three_installed_wheels_two_load_in_order_one_is_excluded(
    wheel_venv: Path, tmp_path: Path
) -> None:
    env = subprocess_env(tmp_path)
    command = [str(wheel_venv), "-m", "ksi_host", "plugins"]

    as_json = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True)
    as_text = subprocess.run(command, env=env, capture_output=True, text=True)

    assert as_json.returncode == 1, as_json.stderr
    report = PlanReport.model_validate_json(as_json.stdout)
    fixtures = [p for p in report.plugins if p.name in {"alpha", "beta", "gamma"}]
    assert [(p.name, p.version, p.status, p.source) for p in fixtures] == [
        ("alpha", "1.0", "loadable", "ksi-fixture-alpha 1.0, entry point 'alpha'"),
        ("beta", "2.0", "loadable", "ksi-fixture-beta 2.0, entry point 'beta'"),
        ("gamma", "0.3", "excluded", "ksi-fixture-gamma 0.3, entry point 'gamma'"),
    ]
    assert fixtures[0].position is not None
    assert fixtures[1].position is not None
    assert fixtures[0].position < fixtures[1].position
    assert fixtures[2].reason is not None
    assert fixtures[2].reason.code == "missing-dependency"
    assert as_text.returncode == 1
    assert (
        "    missing-dependency: gamma needs storage>=1, but no plugin is named or provides "
        "'storage'" in as_text.stdout
    )
