"""install, uninstall, lock, sync, reload: real pip in real venvs, offline (a folder of wheels)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LineSocket, ManagedVenv, managed_venv, pip_env

pytestmark = pytest.mark.slow


@pytest.fixture
def venv(plugin_venv: ManagedVenv) -> Iterator[ManagedVenv]:
    """The shared venv; whatever a test installs is removed after it."""
    yield plugin_venv
    plugin_venv.remove_plugins()


def test_install_refuses_to_downgrade_a_dependency_of_the_host(venv: ManagedVenv) -> None:
    before = venv.installed()
    done = venv.ksi("install", "ksi-plugin-oldpluggy", *venv.offline)
    assert done.returncode == 1
    assert "refusing to install ksi-plugin-oldpluggy" in done.stderr
    assert "nothing was changed" in done.stderr
    assert "pluggy 1." in done.stderr
    assert "-> 0.13.1 (ksi-host needs it as it is)" in done.stderr
    assert "because ksi-plugin-oldpluggy 1.0 requires pluggy<1" in done.stderr
    assert "--force" in done.stderr
    assert venv.installed() == before


def test_install_refuses_a_plugin_for_another_host_version(venv: ManagedVenv) -> None:
    before = venv.installed()
    done = venv.ksi("install", "ksi-plugin-future", *venv.offline)
    assert done.returncode == 1
    assert (
        "ksi-plugin-future 1.0 needs ksi-host>=99 (its Requires-Dist), but this is ksi-host"
    ) in done.stderr
    assert f"{venv.python} -m pip install --upgrade 'ksi-host>=99'" in done.stderr
    assert venv.installed() == before


@pytest.mark.parametrize(
    ("dist", "plugin"),
    [("ksi-plugin-futuremeta", "futuremeta"), ("ksi-plugin-futuremanifest", "futuremanifest")],
    ids=["declared-in-code", "declared-in-manifest"],
)
def test_install_refuses_a_plugin_that_needs_another_host_only_in_its_metadata(
    venv: ManagedVenv, dist: str, plugin: str
) -> None:
    """Its Requires-Dist says nothing: the staged plugin's own metadata (code or manifest) does.

    Beside it, a plugin that kills the interpreter importing it takes down only the
    isolated worker that describes it: the other is still described, and nothing else
    stops the install.
    """
    freeze = venv.pip("freeze", "--all")
    done = venv.ksi("install", dist, "ksi-plugin-crashy", *venv.offline)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"refusing to install {dist} ksi-plugin-crashy; nothing was changed" in done.stderr
    assert (
        f"    - plugin {plugin} ({dist} 1.0) needs ksi-host>=99 (its dependencies), but this "
        "is ksi-host"
    ) in done.stderr
    assert "crashy 1.0" not in done.stderr
    assert "Traceback" not in done.stderr
    assert f"{venv.python} -m pip install --upgrade 'ksi-host>=99'" in done.stderr
    assert f"ksi-host install '{dist}<1.0' --no-index --find-links" in done.stderr
    assert "--force" in done.stderr
    assert venv.pip("freeze", "--all") == freeze
    if plugin == "futuremeta":
        forced = venv.ksi("install", "--force", dist, "ksi-plugin-crashy", *venv.offline)
        assert forced.returncode == 0, forced.stderr
        assert forced.stdout.endswith(
            f"+ ksi-plugin-crashy 1.0 (plugins: crashy)\n+ {dist} 1.0 (plugins: {plugin})\n"
        )


def test_sync_refuses_a_lock_whose_plugin_needs_another_host(
    venv: ManagedVenv, tmp_path: Path
) -> None:
    lock = tmp_path / "ksi-plugins.lock"
    lock.write_text(
        'lock-version = 1\nksi-host = "99.0"\n\n[[plugin]]\n'
        'distribution = "ksi-plugin-futuremeta"\nversion = "1.0"\nplugins = ["futuremeta"]\n'
    )
    freeze = venv.pip("freeze", "--all")
    done = venv.ksi("sync", str(lock), *venv.offline)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"refusing to sync {lock}; nothing was changed" in done.stderr
    assert "plugin futuremeta (ksi-plugin-futuremeta 1.0) needs ksi-host>=99" in done.stderr
    assert venv.pip("freeze", "--all") == freeze


def test_install_refuses_an_upgrade_that_breaks_an_installed_plugin(venv: ManagedVenv) -> None:
    venv.pip("install", "-q", *venv.offline, "ksi-plugin-needsbase")
    assert venv.installed()["ksi-plugin-base"] == "1.0"
    before = venv.installed()
    done = venv.ksi("install", "ksi-plugin-base==2.0", *venv.offline)
    assert done.returncode == 1, done.stdout
    assert (
        "ksi-plugin-base 1.0 -> 2.0 would break ksi-plugin-needsbase 1.0, which requires "
        "ksi-plugin-base<2"
    ) in done.stderr
    assert venv.installed() == before
    forced = venv.ksi("install", "--force", "ksi-plugin-base==2.0", *venv.offline)
    assert forced.returncode == 0, forced.stderr
    assert "~ ksi-plugin-base 1.0 -> 2.0 (plugins: base)" in forced.stdout


def test_uninstall_refuses_a_dependency_of_another_plugin(venv: ManagedVenv) -> None:
    venv.pip("install", "-q", "--no-deps", *venv.offline, "ksi-plugin-base==1.0")
    venv.pip(
        "install", "-q", "--no-deps", *venv.offline, "ksi-plugin-needsbase", "ksi-plugin-baseuser"
    )
    before = venv.installed()
    done = venv.ksi("uninstall", "ksi-plugin-nope")
    assert done.returncode == 1
    assert "not installed: ksi-plugin-nope" in done.stderr
    assert "ksi-plugin-needsbase" in done.stderr
    done = venv.ksi("uninstall", "ksi-plugin-base")
    assert done.returncode == 1
    assert "would break ksi-plugin-needsbase 1.0, which requires ksi-plugin-base<2" in done.stderr
    assert "would break plugin baseuser" in done.stderr
    assert (
        "ksi-host uninstall ksi-plugin-base ksi-plugin-baseuser ksi-plugin-needsbase"
    ) in done.stderr
    assert venv.installed() == before
    done = venv.ksi("uninstall", "ksi-plugin-base", "ksi-plugin-baseuser", "ksi-plugin-needsbase")
    assert done.returncode == 0, done.stderr
    assert venv.installed() == {}


def test_uninstall_never_removes_the_host_or_what_it_needs(venv: ManagedVenv) -> None:
    done = venv.ksi("uninstall", "--force", "Pydantic_Core")
    assert done.returncode == 1
    assert "refusing to uninstall Pydantic_Core: ksi-host needs it" in done.stderr
    assert "requires pydantic-core" in done.stderr
    done = venv.ksi("uninstall", "--force", "ksi-host")
    assert done.returncode == 1
    assert "refusing to uninstall ksi-host: it is ksi-host itself" in done.stderr
    assert venv.python.parent.parent.joinpath("pyvenv.cfg").is_file()


def test_install_then_reload_starts_the_plugin_in_the_same_daemon_for_connected_clients(
    venv: ManagedVenv, short_dir: Path
) -> None:
    sock = short_dir / "ksi.sock"
    log = short_dir / "daemon.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [str(venv.python), "-m", "ksi_host", "run", "--socket", str(sock)],
            stdout=out,
            stderr=out,
            env=pip_env(venv.home),
            cwd=venv.home,
        )
    try:
        deadline = time.monotonic() + 60
        while "ready: pid" not in log.read_text() and time.monotonic() < deadline:
            assert daemon.poll() is None, log.read_text()
            time.sleep(0.05)
        client = LineSocket(sock)
        assert client.ask("system:health")["status"] == "healthy"

        installed = venv.ksi("install", "ksi-plugin-hello", *venv.offline)
        assert installed.returncode == 0, installed.stderr
        assert installed.stdout.endswith("+ ksi-plugin-hello 1.0 (plugins: hello)\n")
        not_yet = client.ask("hello:ping")
        assert not_yet["error"]["code"] == "NO_HANDLER"
        assert "plugin 'hello' (ksi-plugin-hello 1.0)" in not_yet["error"]["message"]
        assert "run `ksi-host reload`" in not_yet["error"]["message"]

        reloaded = venv.ksi("reload", "--socket", str(sock))
        assert reloaded.returncode == 0, reloaded.stderr
        assert reloaded.stdout == "daemon reloaded:\n  started: hello\n"
        answer = client.ask("hello:ping")
        assert answer == {"plugin": "hello", "version": "1.0", "pid": daemon.pid}

        removed = venv.ksi("uninstall", "ksi-plugin-hello", "--reload", "--socket", str(sock))
        assert removed.returncode == 0, removed.stderr
        assert "daemon reloaded:\n  stopped: hello" in removed.stdout
        assert client.ask("hello:ping")["error"]["code"] == "NO_HANDLER"

        daemon.send_signal(signal.SIGHUP)
        while "reloaded: no plugin changed" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert "received SIGHUP" in log.read_text()
        assert client.ask("system:health")["status"] == "healthy"
        client.close()
    finally:
        daemon.terminate()
        daemon.wait(30)
    assert daemon.returncode == 0, log.read_text()


def test_lock_then_sync_reproduces_the_plugin_set_in_a_fresh_venv(
    venv: ManagedVenv, tmp_path: Path
) -> None:
    venv.pip("install", "-q", *venv.offline, "ksi-plugin-hello", "ksi-plugin-needsbase")
    locked = venv.ksi("lock", "-o", str(tmp_path / "ksi-plugins.lock"))
    assert locked.returncode == 0, locked.stderr
    assert locked.stdout == f"wrote {tmp_path / 'ksi-plugins.lock'}: 3 plugin distributions\n"
    other = managed_venv(tmp_path / "other", venv.wheelhouse)
    other.pip("install", "-q", *other.offline, "ksi-plugin-base==2.0", "ksi-plugin-baseuser")
    synced = other.ksi("sync", str(tmp_path / "ksi-plugins.lock"), *other.offline)
    assert synced.returncode == 0, synced.stderr
    assert "- ksi-plugin-baseuser 1.0 (plugins: baseuser)" in synced.stdout
    assert "~ ksi-plugin-base 2.0 -> 1.0 (plugins: base)" in synced.stdout
    assert other.ksi("lock", "-o", "-").stdout == (tmp_path / "ksi-plugins.lock").read_text()
    assert other.installed() == venv.installed()
    again = other.ksi("sync", str(tmp_path / "ksi-plugins.lock"), *other.offline)
    assert again.stdout == "no plugin distribution changed\n", again.stderr
