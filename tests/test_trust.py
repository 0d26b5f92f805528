"""The trust rule: plugin code another user can change (or owns) is refused, by run and doctor.

Tests run as root, so "another user" is real: files are handed to uid 65534 with
chown, and a child process that drops to that uid shows it really can write them.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ksi_host._config import HostConfig, load_config
from ksi_host._pipeline import plan_for
from ksi_host._plan import LoadPlan, Reason
from ksi_host._trust import TrustPolicy, distrust
from ksi_host.errors import ConfigError
from tests.dists import plugin_source

NOBODY = 65534


def _write_as(uid: int, path: Path, text: str) -> bool:
    """Whether a child process running as ``uid`` could append ``text`` to ``path``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.setgid(uid)
            os.setuid(uid)
            with path.open("a") as file:
                file.write(text)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def folder() -> Iterator[Path]:
    """A plugin folder other users can reach (pytest's own tmp dirs are root-only)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to hand files to another uid")
    base = Path(tempfile.mkdtemp(prefix="ksi-trust-"))
    base.chmod(0o755)
    plugins = base / "plugins"
    plugins.mkdir(mode=0o755)
    (plugins / "mine.py").write_text(plugin_source("mine"))
    try:
        yield plugins
    finally:
        shutil.rmtree(base)


def _plan(folder: Path, **host: object) -> LoadPlan:
    env = {"KSI_HOME": str(folder.parent / "home"), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    config = HostConfig(host=host) if host else HostConfig()
    return plan_for(config, paths=[folder], env={**env})


def _reason(plan: LoadPlan, name: str) -> Reason | None:
    found = [e.reason for e in plan.excluded if e.name == name]
    return found[0] if found else None


def test_a_private_folder_loads(folder: Path) -> None:
    assert [spec.name for spec in _plan(folder).order if spec.name == "mine"] == ["mine"]


def test_a_file_another_user_can_write_is_refused(folder: Path) -> None:
    file = folder / "mine.py"
    file.chmod(0o646)
    assert _write_as(NOBODY, file, "# nobody was here\n")
    reason = _reason(_plan(folder), "mine")
    assert reason is not None
    assert reason.code == "untrusted"
    assert reason.path == str(file)
    assert f"file {file} is writable by all users (owner root, mode -rw-r--rw- 646)" in (
        reason.message
    )
    assert f"run `chmod go-w {file}`" in reason.hint
    assert f'[host] trust_paths = ["{file}"]' in reason.hint


def test_a_file_owned_by_another_user_is_refused(folder: Path) -> None:
    file = folder / "mine.py"
    os.chown(file, NOBODY, NOBODY)
    assert _write_as(NOBODY, file, "# nobody owns this\n")
    reason = _reason(_plan(folder), "mine")
    assert reason is not None
    assert reason.code == "untrusted"
    assert "is owned by nobody, not by root (owner nobody" in reason.message
    assert f"chown root {file}" in reason.hint


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775])
def test_a_folder_others_can_write_is_refused_sticky_or_not(folder: Path, mode: int) -> None:
    folder.chmod(mode)
    reason = _reason(_plan(folder), "mine")
    assert reason is not None
    assert reason.code == "untrusted"
    assert f"folder {folder} is writable by" in reason.message
    assert stat.filemode(stat.S_IFDIR | mode) in reason.message


def test_a_module_inside_a_package_counts(folder: Path) -> None:
    package = folder / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .impl import plugin\n")
    impl = package / "impl.py"
    impl.write_text(plugin_source("pkg"))
    impl.chmod(0o664)
    reason = _reason(_plan(folder), "pkg")
    assert reason is not None
    assert reason.code == "untrusted"
    assert reason.path == str(impl)


def test_a_symlink_is_judged_by_what_it_points_at(folder: Path) -> None:
    shared = folder.parent / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o777)
    (shared / "__init__.py").write_text(plugin_source("linked"))
    (folder / "linked").symlink_to(shared)
    reason = _reason(_plan(folder), "linked")
    assert reason is not None
    assert reason.code == "untrusted"
    assert f"(a symlink to {shared})" in reason.message
    assert reason.path == str(shared)


def test_trust_paths_is_the_explicit_opt_in(folder: Path) -> None:
    (folder / "mine.py").chmod(0o666)
    assert _reason(_plan(folder), "mine") is not None
    plan = _plan(folder, trust_paths=[str(folder)])
    assert _reason(plan, "mine") is None
    assert "mine" in [spec.name for spec in plan.order]


def test_the_rule_applies_to_any_path(tmp_path: Path) -> None:
    file = tmp_path / "config.toml"
    file.write_text("")
    assert distrust(file) is None
    file.chmod(0o620)
    found = distrust(file)
    assert found is not None
    assert (found.writable_by, found.foreign_owner) == ("its group", False)
    assert found.fix == f"chmod go-w {file}"
    assert distrust(file, TrustPolicy.of([tmp_path])) is None
    assert distrust(tmp_path / "missing") is None
    assert distrust(file, TrustPolicy(uid=1000)) is not None


# --- the config file: it says which code runs, so it is held to the same rule ---


def _config(folder: Path, text: str = "[host]\n") -> Path:
    config = folder.parent / "config.toml"
    config.write_text(text)
    return config


def test_a_config_file_another_user_can_write_is_refused_with_the_fix(folder: Path) -> None:
    config = _config(folder, f'[host]\nplugin_paths = ["{folder}"]\n')
    config.chmod(0o666)
    assert _write_as(NOBODY, config, "# nobody was here\n")
    with pytest.raises(ConfigError) as refused:
        load_config(config, env={})
    assert refused.value.what == (
        f"the config file cannot be trusted: file {config} is writable by its group and all "
        f"users (owner root, mode -rw-rw-rw- 666)"
    )
    assert refused.value.file == config
    fix = refused.value.hint.split("`")[1]
    assert fix == f"chmod go-w {config}"
    subprocess.run(["sh", "-c", fix], check=True)
    assert load_config(config, env={}).host.plugin_paths == [str(folder)]


def test_a_config_file_owned_by_another_user_or_in_a_shared_folder_is_refused(
    folder: Path,
) -> None:
    config = _config(folder)
    os.chown(config, NOBODY, NOBODY)
    with pytest.raises(ConfigError, match="is owned by nobody, not by root"):
        load_config(config, env={})
    os.chown(config, 0, 0)
    config.parent.chmod(0o1777)
    with pytest.raises(ConfigError, match=f"folder {config.parent} is writable by"):
        load_config(config, env={})


def test_a_config_file_cannot_vouch_for_itself_only_the_environment_can(folder: Path) -> None:
    link = folder.parent / "linked.toml"
    config = _config(folder, f'[host]\ntrust_paths = ["{folder.parent}"]\n')
    config.chmod(0o666)
    link.symlink_to(config)
    with pytest.raises(ConfigError, match=r"a symlink to .*config\.toml"):
        load_config(link, env={})
    env = {"KSI_HOST__TRUST_PATHS": f'["{config}"]'}
    assert load_config(link, env=env).host.trust_paths == [str(config)]


def test_run_and_doctor_refuse_an_untrusted_config_with_the_same_message(folder: Path) -> None:
    config = _config(folder)
    config.chmod(0o664)
    env = {**os.environ, "KSI_HOME": str(folder.parent / "home")}
    said = []
    for command in (["run"], ["doctor"], ["plugins"]):
        done = subprocess.run(
            [sys.executable, "-m", "ksi_host", *command, "--config", str(config)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0, done
        output = done.stdout + done.stderr
        said.append(re.search(r"the config file cannot be trusted: [^\n]*\)", output)[0])
        assert f"chmod go-w {config}" in output
    assert len(set(said)) == 1, said
    assert f"file {config} is writable by its group" in said[0]
