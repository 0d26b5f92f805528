"""``ksi-host doctor`` end to end: real fixture distributions and plugin files, run as a process.

One broken environment (``doctor_world``) holds one plugin per problem; doctor runs
on it once as text and once as JSON, and each test checks that its problem is named
with its cause and a pasteable fix. A healthy environment must exit 0.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ksi_host
from ksi_host._cli import cli
from ksi_host._doctor.fixes import PIP
from ksi_host._doctor.report import DoctorReport, Problem, Summary, render_text
from ksi_host._schema import PluginEntry
from tests.dists import install_dist, plugin_source


def _env(world: Mapping[str, Path], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSI_", "NO_COLOR"))}
    env.update(
        PYTHONPATH=str(world["site"]),
        HOME=str(world["root"]),
        KSI_HOME=str(world["home"]),
        KSI_PLUGIN_PATH=str(world["folder"]),
    )
    env.update(extra)
    return env


def _doctor(
    world: Mapping[str, Path], *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ksi_host", "doctor", *args]
    return subprocess.run(
        command, env=_env(world, **extra), capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def broken(doctor_world: dict[str, Path]) -> tuple[str, dict[str, Any], int]:
    """Doctor's text, JSON and exit code on the broken world (run once for every test here)."""
    extra = {
        "KSI_PLUGIN_PATH": f"{doctor_world['folder']}{os.pathsep}{doctor_world['unsafe']}",
        "KSI_DISABLE_PLUGINS": "off",
    }
    text = _doctor(doctor_world, "--timeout", "2", **extra)
    as_json = _doctor(doctor_world, "--timeout", "2", "--json", **extra)
    assert as_json.returncode == text.returncode
    return text.stdout, json.loads(as_json.stdout), text.returncode


def _problem(report: dict[str, Any], code: str, plugin: str | None = None) -> dict[str, Any]:
    found = [p for p in report["problems"] if p["code"] == code and p["plugin"] == plugin]
    assert len(found) == 1, [(p["code"], p["plugin"]) for p in report["problems"]]
    return found[0]


pytestmark = pytest.mark.slow


def test_a_broken_environment_exits_1_and_every_plugin_has_a_status_line(
    broken: tuple[str, dict[str, Any], int],
) -> None:
    text, report, code = broken
    assert code == 1
    assert DoctorReport.model_validate(report).summary.ok is False
    statuses = {p["name"]: p["status"] for p in report["plugins"]}
    assert statuses["auth"] == "loadable"
    assert statuses["seg"] == "excluded"
    assert statuses["off"] == "disabled"
    assert "  ✓ auth 1.5  (loadable)  from ksi-fixture-auth 1.5, entry point 'auth'" in text
    assert "  ✗ seg  (excluded)  from folder " in text
    assert "  - off  (disabled)" in text


@pytest.mark.parametrize(
    ("plugin", "code", "cause", "fix"),
    [
        ("seg", "import-crashed", "crashed the interpreter (SIGSEGV)", "${EDITOR:-vi} +2 "),
        ("hang", "import-timeout", "did not finish importing within 2 s", "${EDITOR:-vi} +2 "),
        ("vanishes", "import-crashed", "exit status 0", "export KSI_DISABLE_PLUGINS=off,vanishes"),
        ("quits", "import-error", "SystemExit: 3", "${EDITOR:-vi} +2 "),
        ("typo", "hook-mismatch", "'ksi_handle_events', which is not a KSI hook", "sed -i "),
        ("badarg", "hook-mismatch", "takes 'name', which the hook spec", "${EDITOR:-vi} +4 "),
        ("broken_meta", "invalid-metadata", "not a valid PEP 440 version", "${EDITOR:-vi} +11 "),
        ("needy", "missing-dependency", "needs storage>=1", 'pip install "ksi-plugin-storage>=1"'),
        ("app", "version-conflict", "found auth 1.5", 'pip install "ksi-fixture-auth<3,>=2"'),
        ("cyc_a", "cycle", "cyc_a -> cyc_b -> cyc_a", "${EDITOR:-vi} +14 "),
        (
            "cache_user",
            "ambiguous-service",
            "2 plugins provide",
            "KSI_DISABLE_PLUGINS=off,cache_two",
        ),
        ("needsmod", "import-error", "No module named 'not_installed_mod'", "--force-reinstall"),
        ("shadow", "shadowed", "is shadowed by shadow from folder", "rm -r "),
        ("off", "disabled", "disabled by KSI_DISABLE_PLUGINS", "unset KSI_DISABLE_PLUGINS"),
        ("configured", "config-invalid", "port: Input should be", "${EDITOR:-vi} +4 "),
    ],
)
def test_each_problem_names_its_cause_and_a_pasteable_fix(
    broken: tuple[str, dict[str, Any], int], plugin: str, code: str, cause: str, fix: str
) -> None:
    text, report, _ = broken
    problem = _problem(report, code, plugin)
    assert cause in problem["what"]
    assert fix in problem["fix"]
    assert f"{plugin}: " in text
    assert f"[{code}]" in text
    assert f"fix:   {problem['fix']}" in text


def test_a_pip_fix_uses_the_pip_of_the_python_running_ksi_host(
    broken: tuple[str, dict[str, Any], int],
) -> None:
    _, report, _ = broken
    problem = _problem(report, "missing-dependency", "needy")
    assert problem["fix"] == f'{shlex.quote(sys.executable)} -m pip install "ksi-plugin-storage>=1"'


def test_the_fix_of_a_crash_names_the_line_the_plugin_was_running(
    broken: tuple[str, dict[str, Any], int], doctor_world: dict[str, Path]
) -> None:
    _, report, _ = broken
    for plugin in ("seg", "hang"):
        problem = _problem(
            report, "import-crashed" if plugin == "seg" else "import-timeout", plugin
        )
        file = doctor_world["folder"] / f"{plugin}.py"
        assert problem["fix"] == f"${{EDITOR:-vi}} +2 {file}"
        assert f'File "{file}", line 2' in problem["traceback"]


def test_the_typo_fix_is_the_rename(
    broken: tuple[str, dict[str, Any], int], doctor_world: dict[str, Path]
) -> None:
    _, report, _ = broken
    problem = _problem(report, "hook-mismatch", "typo")
    file = doctor_world["folder"] / "typo.py"
    assert problem["fix"] == f"sed -i 's/\\bksi_handle_events\\b/ksi_handle_event/' {file}"


def test_a_chain_of_exclusions_is_a_tree_under_its_root_cause(
    broken: tuple[str, dict[str, Any], int],
) -> None:
    text, report, _ = broken
    assert _problem(report, "dependency-excluded", "web")["caused_by"] == "needy"
    assert _problem(report, "dependency-excluded", "site_ui")["caused_by"] == "web"
    assert (
        "      also not loading because of this:\n"
        "        └─ web (needs needy)\n"
        "             └─ site_ui (needs web)\n"
    ) in text


@pytest.mark.parametrize(
    ("code", "what", "fix"),
    [
        ("duplicate-dist-info", "ksi-fixture-dup is installed 2 times", "rm -rf "),
        ("entry-point-claimed-twice", "entry point 'twin'", f"{PIP} uninstall ksi-fixture-"),
        ("unsafe-plugin-folder", "(a symlink to ", "chmod go-w "),
        ("config-unknown-section", "[ghost] section", "${EDITOR:-vi} +6 "),
    ],
)
def test_environment_warnings_name_the_place_and_a_fix(
    broken: tuple[str, dict[str, Any], int], code: str, what: str, fix: str
) -> None:
    text, report, _ = broken
    problem = _problem(report, code)
    assert problem["severity"] == "warning"
    assert what in problem["what"]
    assert problem["fix"].startswith(fix)
    assert f"fix:   {problem['fix']}" in text


def test_a_config_file_that_does_not_parse_is_an_error_with_its_line(
    healthy_world: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[host]\ndisabled = = 1\n")
    result = _doctor(healthy_world, "--json", "--config", str(config))
    assert result.returncode == 1
    problem = _problem(json.loads(result.stdout), "config-invalid")
    assert problem["where"].startswith(f"{config}, line 2")
    assert problem["fix"] == f"${{EDITOR:-vi}} +2 {config}"


def test_a_missing_plugin_path_points_at_the_config_line_that_names_it(
    healthy_world: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "ksi.toml"
    config.write_text('[host]\nplugin_paths = [\n  "~/my-plugins",\n]\n')
    result = _doctor(healthy_world, "--json", "--config", str(config))
    assert result.returncode == 1
    problem = _problem(json.loads(result.stdout), "import-error", "my-plugins")
    assert problem["fix"] == f"${{EDITOR:-vi}} +3 {config}"
    missing_file = tmp_path / "nowhere" / "plugin.py"
    result = _doctor(healthy_world, "--json", "--plugin-path", str(missing_file))
    assert _problem(json.loads(result.stdout), "import-error", "plugin")["fix"] == (
        f"${{EDITOR:-vi}} {missing_file}"
    )


def test_a_bad_environment_override_says_which_variable_to_unset(
    healthy_world: dict[str, Path],
) -> None:
    result = _doctor(healthy_world, "--json", KSI_HOST__SERVICES='{"db": 1}')
    assert result.returncode == 1
    problem = _problem(json.loads(result.stdout), "config-invalid")
    assert problem["where"].startswith("environment variable KSI_HOST__SERVICES")
    assert problem["fix"] == "unset KSI_HOST__SERVICES"
    text = _doctor(healthy_world, KSI_HOST__SERVICES='{"db": 1}').stdout
    assert text.rstrip().endswith("1 error(s), 0 warning(s): the host will not start as configured")


def test_a_server_section_that_stops_run_is_an_error_too(
    healthy_world: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "ksi.toml"
    config.write_text("[server]\nmax_conections = 8\n")
    result = _doctor(healthy_world, "--json", "--config", str(config))
    assert result.returncode == 1
    problem = _problem(json.loads(result.stdout), "config-invalid")
    assert (
        "max_conections: unknown key 'max_conections'; did you mean 'max_connections'?"
        in problem["what"]
    )
    assert problem["where"] == f"[server] section of {config}"
    assert problem["fix"] == f"${{EDITOR:-vi}} {config}"
    from_env = _doctor(healthy_world, "--json", KSI_SERVER__IDLE_TIMEOUT="0")
    assert _problem(json.loads(from_env.stdout), "config-invalid")["fix"] == (
        "unset KSI_SERVER__IDLE_TIMEOUT"
    )


def test_the_config_host_section_applies_as_it_does_to_run(
    healthy_world: dict[str, Path], tmp_path: Path
) -> None:
    config = tmp_path / "ksi.toml"
    config.write_text('[host]\ndisabled = ["front"]\n')
    result = _doctor(healthy_world, "--json", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    problem = _problem(json.loads(result.stdout), "disabled", "front")
    assert problem["severity"] == "info"


def test_a_healthy_environment_exits_0_even_when_strict(healthy_world: dict[str, Path]) -> None:
    result = _doctor(healthy_world, "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "  ✓ store 1.2  (loadable)  from ksi-fixture-store 1.2, entry point 'store'"
        in result.stdout
    )
    assert "  ✓ front  (loadable)  from folder " in result.stdout
    assert "0 error(s), 0 warning(s): everything can load" in result.stdout
    assert "\x1b[" not in result.stdout


def test_strict_fails_on_warnings_only_when_asked(doctor_world: dict[str, Path]) -> None:
    folder = doctor_world["root"] / "only-shadow"
    folder.mkdir(exist_ok=True)
    (folder / "shadow.py").write_text((doctor_world["folder"] / "shadow.py").read_text())
    env = {"KSI_PLUGIN_PATH": str(folder), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    assert _doctor(doctor_world, **env).returncode == 0
    assert _doctor(doctor_world, "--strict", **env).returncode == 1


def test_doctor_never_starts_a_plugin(tmp_path: Path) -> None:
    world = {"root": tmp_path, "site": tmp_path, "folder": tmp_path / "f", "home": tmp_path / "h"}
    world["folder"].mkdir()
    touched = tmp_path / "touched"
    hooks = "".join(
        f"    @hookimpl\n    def {hook}(self{args}):\n"
        f"        open({str(touched)!r}, 'a').write({hook!r} + '\\n')\n"
        for hook, args in [
            ("ksi_plugin_context", ", context"),
            ("ksi_startup", ""),
            ("ksi_shutdown", ""),
            ("ksi_metrics_collected", ", metrics"),
        ]
    )
    (world["folder"] / "eager.py").write_text(
        "from ksi_host import BasePlugin, PluginMetadata, hookimpl\n"
        f"class P(BasePlugin):\n{hooks}plugin = P(PluginMetadata(name='eager'))\n"
    )
    result = _doctor(world, "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ eager  (loadable)" in result.stdout
    assert not touched.exists()


# --- a new user pastes the printed fix, and the problem is gone ---


def _typo(world: dict[str, Path]) -> None:
    body = (
        "    @hookimpl\n"
        "    def ksi_handle_events(self, event_name, data, context):\n"
        "        return None\n"
    )
    (world["folder"] / "typo.py").write_text(
        "from ksi_host import BasePlugin, PluginMetadata, hookimpl\n"
        f"class P(BasePlugin):\n{body}plugin = P(PluginMetadata(name='typo'))\n"
    )


def _vanishes(world: dict[str, Path]) -> None:
    (world["folder"] / "vanishes.py").write_text("import os\nos._exit(0)\n")


def _ambiguous(world: dict[str, Path]) -> None:
    for name in ("cache_one", "cache_two"):
        (world["folder"] / f"{name}.py").write_text(plugin_source(name, services=["cache"]))
    (world["folder"] / "user.py").write_text(plugin_source("user", dependencies=["cache"]))


def _shadowed(world: dict[str, Path]) -> None:
    (world["folder"] / "twice.py").write_text(plugin_source("twice", version="2.0"))
    (world["home"] / "plugins" / "twice.py").write_text(plugin_source("twice", version="1.0"))


def _stale_dist_info(world: dict[str, Path]) -> None:
    source = plugin_source("dup", version="1.0")
    install_dist(
        world["site"],
        dist="ksi-x-dup",
        version="1.0",
        files={"dup_mod.py": source},
        entry_points={"dup": "dup_mod"},
    )
    install_dist(
        world["site"],
        dist="ksi-x-dup",
        version="0.9",
        files={},
        entry_points={"dup": "dup_mod"},
        info_name="KSI_X_dup",
    )


def _unsafe_link(world: dict[str, Path]) -> None:
    shared = world["root"] / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "__init__.py").write_text(plugin_source("fine"))
    (world["home"] / "plugins" / "fine").symlink_to(shared)


@pytest.mark.parametrize(
    ("setup", "code", "fix"),
    [
        (_typo, "hook-mismatch", "sed -i "),
        (_vanishes, "import-crashed", "export KSI_DISABLE_PLUGINS=vanishes"),
        (_ambiguous, "ambiguous-service", "export KSI_DISABLE_PLUGINS=cache_two"),
        (_shadowed, "shadowed", "rm -r "),
        (_stale_dist_info, "duplicate-dist-info", "rm -rf "),
        (_unsafe_link, "untrusted", "chmod go-w "),
    ],
)
def test_pasting_the_printed_fix_makes_the_problem_go_away(
    tmp_path: Path, setup: Callable[[dict[str, Path]], None], code: str, fix: str
) -> None:
    world = {name: tmp_path / name for name in ("site", "folder", "home")}
    for folder in world.values():
        folder.mkdir()
    (world["home"] / "plugins").mkdir()
    world["root"] = tmp_path
    setup(world)
    before = _doctor(world, "--json", "--strict", "--timeout", "2")
    assert before.returncode == 1
    found = [p for p in json.loads(before.stdout)["problems"] if p["code"] == code]
    assert len(found) == 1, before.stdout
    assert found[0]["fix"].startswith(fix)
    # The fix and doctor run in one shell, as the user's next two commands would.
    script = f"{found[0]['fix']}\nexec {shlex.quote(sys.executable)} -m ksi_host doctor --strict"
    after = subprocess.run(
        ["bash", "-c", script], env=_env(world), capture_output=True, text=True, timeout=120
    )
    assert after.returncode == 0, after.stdout + after.stderr
    assert f"[{code}]" not in after.stdout
    assert "0 error(s), 0 warning(s): everything can load" in after.stdout


# --- in process: rendering, colour, usage ---


def _small_report() -> DoctorReport:
    root = Problem(
        code="import-error",
        severity="error",
        plugin="driver",
        what="driver failed to import: ImportError: nope",
        where="/p/driver.py:3",
        fix="${EDITOR:-vi} +3 /p/driver.py",
        note="ImportError: nope",
    )
    child = Problem(
        code="dependency-excluded",
        severity="error",
        plugin="web",
        what="web needs driver, which will not load (import-error)",
        where="/p/web.py",
        fix="export KSI_DISABLE_PLUGINS=web",
        caused_by="driver",
    )
    return DoctorReport(
        plugins=[
            PluginEntry(
                name="store", version="1.0", source="ksi-store 1.0", status="loadable", position=1
            ),
            PluginEntry(
                name="driver", version=None, source="folder /p/driver.py", status="excluded"
            ),
            PluginEntry(name="web", version=None, source="folder /p/web.py", status="excluded"),
        ],
        problems=[root, child],
        summary=Summary(
            plugins=3, loadable=1, errors=2, warnings=0, ok=False, without=["driver", "web"]
        ),
    )


def test_text_rendering_is_exact() -> None:
    assert render_text(_small_report(), color=False) == "\n".join(
        [
            "plugins:",
            "  ✓ store 1.0  (loadable)  from ksi-store 1.0",
            "  ✗ driver  (excluded)  from folder /p/driver.py",
            "  ✗ web  (excluded)  from folder /p/web.py",
            "problems:",
            "  ✗ driver: driver failed to import: ImportError: nope  [import-error]",
            "      where: /p/driver.py:3",
            "      fix:   ${EDITOR:-vi} +3 /p/driver.py",
            "             ImportError: nope",
            "      also not loading because of this:",
            "        └─ web (needs driver)",
            "3 plugin(s), 1 will load; 2 error(s), 0 warning(s): "
            "the host will start without driver, web",
        ]
    )


def test_colour_only_when_wanted() -> None:
    assert "\x1b[" in render_text(_small_report(), color=True)
    assert "\x1b[" not in render_text(_small_report(), color=False)


def test_no_color_wins_over_a_colour_terminal(runner: CliRunner, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "KSI_HOME": str(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    coloured = runner.invoke(cli, ["doctor"], env=env, color=True)
    plain = runner.invoke(cli, ["doctor"], env={**env, "NO_COLOR": "1"}, color=True)
    assert coloured.exit_code == plain.exit_code == 0, coloured.output
    assert "\x1b[" in coloured.output
    assert "\x1b[" not in plain.output


def test_a_usage_error_exits_2(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["doctor", "--timeout", "soon"]).exit_code == 2


def test_doctor_reads_no_rendered_text_with_regular_expressions():
    """Fixes come from the errors' and reasons' attributes, never from parsing messages."""
    doctor = Path(ksi_host.__file__).parent / "_doctor"
    users = [p.name for p in sorted(doctor.glob("*.py")) if "import re\n" in p.read_text()]
    assert users == []
