"""The cookiecutter template: what it bakes, what it refuses, and that the result really works.

Fast tests bake with the cookiecutter API and check files, names and refusals. Tests
marked slow pip-install the baked projects into a temporary venv and run them there:
their own tests, ruff and mypy, entry-point discovery and, once those commands exist,
``ksi-host plugins``/``doctor`` and a daemon answering ``<namespace>:ping``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import keyword
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import (
    TEMPLATE_DIR,
    UNUSUAL_ANSWERS,
    BakedPlugin,
    _cookiecutter_config,
    bake_template,
    subprocess_env,
)
from cookiecutter.exceptions import FailedHookException
from hypothesis import assume, given
from packaging.utils import InvalidName, canonicalize_name
from strategies import name_like_text, one_line_text, plugin_names

from ksi_host.errors import InvalidEventName, InvalidPluginMetadata
from ksi_host.events import check_event_name
from ksi_host.plugin_types import PluginMetadata

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hook = _load(TEMPLATE_DIR / "hooks" / "pre_gen_project.py", "ksi_template_pre_gen_hook")
filters = _load(TEMPLATE_DIR / "local_extensions.py", "ksi_template_filters")

VALID_ANSWERS = {
    "plugin_name": "my_plugin",
    "module_name": "my_plugin",
    "dist_name": "ksi-plugin-my-plugin",
    "namespace": "my_plugin",
    "description": "A plugin",
    "ksi_host_min_version": "0.1",
}


def _pyproject(plugin: BakedPlugin) -> dict[str, Any]:
    return tomllib.loads((plugin.path / "pyproject.toml").read_text(encoding="utf-8"))


def _metadata_literals(plugin: BakedPlugin) -> dict[str, Any]:
    """The literal keyword arguments of ``PluginMetadata(...)`` in the generated plugin.py."""
    tree = ast.parse((plugin.path / plugin.module_name / "plugin.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PluginMetadata":
            return {
                kw.arg: ast.literal_eval(kw.value)
                for kw in node.keywords
                if isinstance(kw.value, ast.Constant)
            }
    raise AssertionError("plugin.py builds no PluginMetadata")


# --- baking -------------------------------------------------------------------------


def test_defaults_bake_the_guides_layout(baked_default: BakedPlugin) -> None:
    assert baked_default.path.name == "ksi-plugin-my-plugin"
    files = {p.relative_to(baked_default.path).as_posix() for p in baked_default.path.rglob("*")}
    assert {
        "pyproject.toml",
        "README.md",
        "my_plugin/__init__.py",
        "my_plugin/plugin.py",
        "my_plugin/handlers.py",
        "my_plugin/models.py",
        "my_plugin/utils.py",
        "my_plugin/py.typed",
        "my_plugin/tests/test_plugin.py",
    } <= files
    assert not [name for name in files if "{{" in name or "cookiecutter" in name]


def test_pyproject_declares_the_entry_point_and_a_ksi_host_range(
    baked_default: BakedPlugin,
) -> None:
    project = _pyproject(baked_default)["project"]
    assert project["name"] == "ksi-plugin-my-plugin"
    assert project["entry-points"]["ksi.plugins"] == {"my_plugin": "my_plugin.plugin:plugin"}
    assert "ksi-host>=0.1,<1" in project["dependencies"]
    assert project["license"] == "MIT"
    assert project["optional-dependencies"]["test"] == ["pytest>=8"]


def test_readme_shows_install_test_and_first_event(baked_default: BakedPlugin) -> None:
    readme = (baked_default.path / "README.md").read_text(encoding="utf-8")
    for step in ("pip install", "python -m pytest", "ksi-host send my_plugin:ping"):
        assert step in readme


def test_unusual_answers_survive_into_toml_and_python(baked_unusual: BakedPlugin) -> None:
    assert baked_unusual == BakedPlugin(
        path=baked_unusual.path,
        plugin_name="Weather.Station-2_x",
        module_name="weather_station_2_x",
        dist_name="ksi-plugin-weather-station-2-x",
        namespace="weather_station-2_x",
    )
    project = _pyproject(baked_unusual)["project"]
    assert project["description"] == UNUSUAL_ANSWERS["description"]
    assert project["authors"] == [{"name": "Zo\u00eb O'Brien", "email": "zoe@example.org"}]
    assert project["license"] == "Apache-2.0"
    assert project["entry-points"]["ksi.plugins"] == {
        "Weather.Station-2_x": "weather_station_2_x.plugin:plugin"
    }
    literals = _metadata_literals(baked_unusual)
    assert literals["description"] == UNUSUAL_ANSWERS["description"]
    assert literals["author"] == UNUSUAL_ANSWERS["author"]


def test_a_higher_minimum_moves_the_upper_bound(tmp_path: Path) -> None:
    baked = bake_template(tmp_path / "out", ksi_host_min_version="1.4")
    assert "ksi-host>=1.4,<2" in _pyproject(baked)["project"]["dependencies"]


# --- refusing bad answers -----------------------------------------------------------

BAD_ANSWERS = [
    ({"module_name": "class"}, "type module_name=class_plugin"),
    ({"module_name": "2fast"}, "type module_name=plugin_2fast"),
    ({"module_name": "json"}, "type module_name=json_plugin"),
    ({"module_name": "my-plugin"}, "type module_name=my_plugin"),
    ({"dist_name": "-bad name-"}, "type dist_name=bad-name"),
    ({"dist_name": "evil/name"}, "type dist_name=evil-name"),
    ({"namespace": "Sys:tem"}, "type namespace=sys_tem"),
    ({"namespace": "/system"}, "type namespace=system"),
    ({"namespace": "9lives"}, "type namespace=ns_9lives"),
    ({"plugin_name": "my plugin"}, "type plugin_name=my_plugin"),
    ({"ksi_host_min_version": "latest"}, "type ksi_host_min_version=0.1"),
]


@pytest.mark.parametrize(("answers", "fix"), BAD_ANSWERS, ids=lambda v: str(v))
def test_bad_answers_fail_with_the_fix_and_leave_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, str], fix: str
) -> None:
    out = tmp_path / "out"
    with pytest.raises(FailedHookException):
        bake_template(out, **answers)
    assert fix in capfd.readouterr().err
    assert list(out.iterdir()) == []


def test_every_problem_is_reported_at_once() -> None:
    found = hook.problems(
        {**VALID_ANSWERS, "module_name": "def", "namespace": "A", "dist_name": ""}
    )
    assert [problem.split()[0] for problem in found] == ["module_name", "dist_name", "namespace"]


def test_cookiecutter_command_line_shows_the_hooks_message(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    config = _cookiecutter_config(tmp_path)
    cookiecutter = [sys.executable, "-m", "cookiecutter", "--no-input", f"--config-file={config}"]
    answers = ["module_name=import", "description=two\nlines"]
    result = subprocess.run(
        [*cookiecutter, "-o", str(out), str(TEMPLATE_DIR), *answers],
        capture_output=True,
        text=True,
        env=subprocess_env(tmp_path),
        check=False,
    )
    assert result.returncode != 0
    assert "module_name 'import' is a Python keyword; type module_name=import_plugin" in (
        result.stderr
    )
    assert "description must be one line" in result.stderr
    assert list(out.iterdir()) == []


# --- the hook agrees with ksi_host, and the defaults pass it ------------------------


def _accepted(check: Any, value: str) -> bool:
    return bool(check(value) is None)


@given(name_like_text)
def test_namespace_rule_is_the_event_grammar(text: str) -> None:
    try:
        check_event_name(f"{text}:ping")
        valid = True
    except InvalidEventName:
        valid = False
    assert _accepted(hook._check_namespace, text) is valid


@given(name_like_text)
def test_plugin_name_rule_is_plugin_metadatas(text: str) -> None:
    try:
        PluginMetadata(name=text)
        valid = text == text.strip()
    except InvalidPluginMetadata:
        valid = False
    assert _accepted(hook._check_plugin_name, text) is valid


@given(name_like_text)
def test_dist_name_rule_is_pep_508(text: str) -> None:
    try:
        canonicalize_name(text, validate=True)
        valid = True
    except InvalidName:
        valid = False
    assert _accepted(hook._check_dist_name, text) is valid


@given(name_like_text)
def test_accepted_module_names_are_importable_names(text: str) -> None:
    if _accepted(hook._check_module_name, text):
        assert text.isidentifier()
        assert text.isascii()
        assert not keyword.iskeyword(text)


@given(plugin_names)
def test_defaults_derived_from_any_plugin_name_pass_the_hook(name: str) -> None:
    module = filters.module_slug(name)
    assume(module[:1].isalpha() and not keyword.iskeyword(module))
    assume(module not in sys.stdlib_module_names and module not in {"tests", "test"})
    answers = {
        **VALID_ANSWERS,
        "plugin_name": name,
        "module_name": module,
        "dist_name": f"ksi-plugin-{filters.dist_slug(name)}",
        "namespace": filters.namespace_slug(name),
    }
    assert hook.problems(answers) == []
    assert filters.class_name(module).isidentifier()


@given(one_line_text)
def test_any_answer_becomes_a_python_literal(text: str) -> None:
    assert ast.literal_eval(filters.py_str(text)) == text


@given(one_line_text)
def test_any_answer_becomes_a_toml_string(text: str) -> None:
    assert tomllib.loads(f"v = {filters.toml_str(text)}")["v"] == text


@given(one_line_text)
def test_any_author_becomes_a_toml_authors_array(text: str) -> None:
    authors = tomllib.loads(f"a = {filters.toml_author(text)}")["a"]
    assert isinstance(authors, list)
    assert len(authors) == (1 if text.strip() else 0)


# --- installed into a venv that has ksi-host (slow) ---------------------------------

BOTH = ["baked_default", "baked_unusual"]


@pytest.fixture(params=BOTH)
def baked(request: pytest.FixtureRequest) -> BakedPlugin:
    plugin: BakedPlugin = request.getfixturevalue(request.param)
    return plugin


def _run(
    args: list[str], cwd: Path, home: Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env=subprocess_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_generated_tests_pass_in_the_venv(
    installed_plugins: tuple[BakedPlugin, ...], ksi_venv: Path, baked: BakedPlugin, tmp_path: Path
) -> None:
    result = _run(
        [str(ksi_venv), "-m", "pytest", "-q", "-p", "no:cacheprovider"], baked.path, tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tool", "verdict"),
    [
        (["ruff", "check", "--no-cache", "."], "All checks passed!"),
        (["ruff", "format", "--check", "--no-cache", "."], "8 files already formatted"),
        (["mypy"], "Success: no issues found in 7 source files"),
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_generated_code_is_lint_and_type_clean(
    baked: BakedPlugin, tool: list[str], verdict: str, tmp_path: Path
) -> None:
    result = _run([sys.executable, "-m", *tool], baked.path, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert verdict in output  # not a vacuous pass over no files


ENTRY_POINT_PROBE = """
import json
from importlib.metadata import entry_points
found = {}
for ep in entry_points(group="ksi.plugins"):
    plugin = ep.load()
    found[ep.name] = {"value": ep.value, "dist": ep.dist.name if ep.dist else None,
                      "metadata_name": plugin.metadata.name}
print(json.dumps(found))
"""


@pytest.mark.slow
def test_installed_entry_points_load_the_plugins(
    installed_plugins: tuple[BakedPlugin, ...], ksi_venv: Path, tmp_path: Path
) -> None:
    result = _run([str(ksi_venv), "-c", ENTRY_POINT_PROBE], tmp_path, tmp_path)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    for plugin in installed_plugins:
        assert found[plugin.plugin_name] == {
            "value": f"{plugin.module_name}.plugin:plugin",
            "dist": plugin.dist_name,
            "metadata_name": plugin.plugin_name,
        }


@pytest.mark.slow
def test_installed_plugins_ship_a_manifest_equal_to_their_code(
    installed_plugins: tuple[BakedPlugin, ...], ksi_venv: Path, tmp_path: Path
) -> None:
    result = _run([str(ksi_venv), "-m", "ksi_host", "manifest", "--check"], tmp_path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for plugin in installed_plugins:
        assert f"ok   {plugin.plugin_name} (" in result.stdout
        assert f"/{plugin.module_name}/ksi-plugin.toml)" in result.stdout


# --- ksi-host commands in that venv --------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "healthy"),
    [(["plugins"], "loadable"), (["doctor", "--strict"], "loadable")],
    ids=["plugins", "doctor"],
)
def test_ksi_host_lists_the_plugins_as_healthy(
    installed_plugins: tuple[BakedPlugin, ...],
    ksi_venv: Path,
    tmp_path: Path,
    command: list[str],
    healthy: str,
) -> None:
    result = _run([str(ksi_venv), "-m", "ksi_host", *command, "--json"], tmp_path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    status = {entry["name"]: entry["status"] for entry in json.loads(result.stdout)["plugins"]}
    for plugin in installed_plugins:
        assert status[plugin.plugin_name] == healthy, result.stdout


@pytest.mark.slow
def test_doctor_checks_the_plugins_config_section_before_startup(
    installed_plugins: tuple[BakedPlugin, ...], ksi_venv: Path, tmp_path: Path
) -> None:
    plugin = installed_plugins[0]
    config = tmp_path / "ksi.toml"
    config.write_text(f'["{plugin.plugin_name}"]\nrepyl = "sunny"\n')
    args = [str(ksi_venv), "-m", "ksi_host", "doctor", "--json", "--config", str(config)]
    result = _run(args, tmp_path, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = json.loads(result.stdout)["problems"]
    assert [(p["plugin"], p["code"]) for p in problems] == [(plugin.plugin_name, "config-invalid")]
    assert "repyl" in problems[0]["what"]


@pytest.fixture
def daemon(ksi_venv: Path, tmp_path: Path) -> Iterator[Path]:
    """A ``ksi-host run`` in the venv; yields its socket path."""
    socket = tmp_path / "ksi.sock"
    process = subprocess.Popen(
        [str(ksi_venv), "-m", "ksi_host", "run", "--socket", str(socket)],
        cwd=tmp_path,
        env=subprocess_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield socket
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


@pytest.mark.slow
def test_the_daemon_answers_the_plugins_ping(
    installed_plugins: tuple[BakedPlugin, ...], ksi_venv: Path, daemon: Path, tmp_path: Path
) -> None:
    send = [str(ksi_venv), "-m", "ksi_host", "send", "--socket", str(daemon), "--timeout", "5"]
    deadline = time.monotonic() + 30
    for plugin in installed_plugins:
        while True:
            result = _run([*send, f"{plugin.namespace}:ping"], tmp_path, tmp_path, timeout=30)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout) == {"status": "success", "result": {"reply": "pong"}}


def _readme_block(readme: str, heading: str) -> list[str]:
    """The command lines of the first ``sh`` block after ``heading``, comments dropped."""
    block = readme.split(heading, 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_readme_first_event_commands_work_as_written(
    installed_plugins: tuple[BakedPlugin, ...], ksi_venv: Path, tmp_path: Path
) -> None:
    """Each line of the README's block, with `.venv/bin/ksi-host` as the venv's ksi_host."""
    plugin = installed_plugins[0]
    readme = (plugin.path / "README.md").read_text(encoding="utf-8")
    daemon: subprocess.Popen[str] | None = None
    outputs = []
    try:
        for words in _readme_block(readme, "## Send it its first event"):
            if words == ["kill", "%1"]:
                assert daemon is not None
                daemon.send_signal(signal.SIGTERM)
                assert daemon.wait(timeout=15) == 0
                continue
            assert words[0] == ".venv/bin/ksi-host", words
            command = [str(ksi_venv), "-m", "ksi_host", *words[1:]]
            if command[-1] == "&":
                daemon = subprocess.Popen(
                    command[:-1], cwd=tmp_path, env=subprocess_env(tmp_path), text=True
                )
                continue
            deadline = time.monotonic() + 30
            while True:
                result = _run(command, tmp_path, tmp_path, timeout=30)
                if result.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert result.returncode == 0, (words, result.stdout + result.stderr)
            outputs.append(result.stdout)
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    plugins_out, events_out, ping, echo = outputs
    assert plugin.plugin_name in plugins_out
    assert f"{plugin.namespace}:ping" in events_out
    assert json.loads(ping) == {"status": "success", "result": {"reply": "pong"}}
    assert json.loads(echo) == {"status": "success", "result": {"message": "hi hi"}}
