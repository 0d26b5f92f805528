"""Single instance: the private dir, the pid lock, stale and live sockets."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ksi_host._client import request_sync
from ksi_host._instance import Instance, default_socket_path
from ksi_host._server_config import ServerConfig
from ksi_host.errors import AlreadyRunning, DaemonNotRunning, SocketPathUnusable, UnsafeRunDir


def test_claim_makes_a_private_dir_a_0600_socket_and_a_pid_lock(sock_path):
    instance = Instance.claim(sock_path)
    try:
        assert stat.S_IMODE(sock_path.parent.stat().st_mode) == 0o700
        assert stat.S_ISSOCK(sock_path.stat().st_mode)
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
        assert instance.lock_path.read_text() == f"{os.getpid()}\n"
    finally:
        instance.release()
    assert not sock_path.exists()
    assert not instance.lock_path.exists()
    instance.release()


def test_a_second_claim_says_who_is_running_and_leaves_the_socket_alone(sock_path):
    first = Instance.claim(sock_path)
    try:
        inode = sock_path.stat().st_ino
        with pytest.raises(AlreadyRunning) as info:
            Instance.claim(sock_path)
        assert info.value.pid == os.getpid()
        assert f"already running (pid {os.getpid()})" in info.value.render()
        assert info.value.hint == (
            f"stop it first (kill -TERM {os.getpid()}), or give this one another --socket"
        )
        assert sock_path.stat().st_ino == inode
    finally:
        first.release()


def test_a_stale_socket_from_a_killed_daemon_is_replaced(sock_path):
    sock_path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(sock_path))
    dead.close()
    assert sock_path.exists()
    instance = Instance.claim(sock_path)
    try:
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
    finally:
        instance.release()


def test_a_live_socket_without_a_lock_is_never_unlinked(sock_path):
    sock_path.parent.mkdir(mode=0o700)
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(sock_path))
    live.listen()
    try:
        with pytest.raises(AlreadyRunning) as info:
            Instance.claim(sock_path)
        assert info.value.pid == os.getpid()
        assert sock_path.exists()
        assert not sock_path.with_name("ksi.sock.lock").exists()
    finally:
        live.close()


def test_a_file_that_is_not_a_socket_is_not_replaced(sock_path):
    sock_path.parent.mkdir(mode=0o700)
    sock_path.write_text("precious")
    with pytest.raises(SocketPathUnusable, match="not a socket"):
        Instance.claim(sock_path)
    assert sock_path.read_text() == "precious"


def test_a_dir_others_can_enter_is_refused(short_dir):
    run_dir = short_dir / "open"
    run_dir.mkdir(mode=0o755)
    run_dir.chmod(0o755)
    with pytest.raises(UnsafeRunDir) as info:
        Instance.claim(run_dir / "ksi.sock")
    assert "mode 0755" in info.value.render()
    assert "0700" in info.value.render()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_a_dir_owned_by_someone_else_is_refused(short_dir):
    run_dir = short_dir / "theirs"
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, 65534, 65534)
    with pytest.raises(UnsafeRunDir, match="belongs to uid 65534"):
        Instance.claim(run_dir / "ksi.sock")


def test_a_path_over_the_kernel_limit_is_refused(short_dir):
    with pytest.raises(SocketPathUnusable, match="longer than 107 bytes"):
        Instance.claim(short_dir / ("x" * 120))


def test_the_socket_is_chosen_in_one_place_flag_then_env_then_section_then_run_dir(tmp_path):
    home = {"KSI_HOME": str(tmp_path)}
    section = {"socket_path": "/c/k.sock"}

    def chosen(env, section, flag=None):
        config = ServerConfig.from_section(section, where="[server]", socket_path=flag, env=env)
        return str(config.socket_path)

    with_env = {**home, "KSI_SOCKET": "/e/k.sock"}
    assert chosen(with_env, section, Path("/f/k.sock")) == "/f/k.sock"
    assert chosen(with_env, section) == "/e/k.sock"
    assert chosen(home, section) == "/c/k.sock"
    assert chosen(home, {}) == f"{tmp_path}/run/ksi.sock"
    assert default_socket_path(with_env) == default_socket_path(home)  # only the run dir


@pytest.mark.slow
def test_a_second_daemon_refuses_to_start_and_the_first_keeps_serving(daemon_factory):
    first = daemon_factory()
    proc = first.start()
    inode = first.socket_path.stat().st_ino
    second = daemon_factory()
    assert second.start(wait=False).wait(timeout=30) == 1
    assert f"already running (pid {proc.pid})" in second.log()
    assert "running health" not in second.log()
    assert first.socket_path.stat().st_ino == inode
    assert request_sync(first.socket_path, "system:health")["status"] == "healthy"


@pytest.mark.slow
def test_a_daemon_killed_with_sigkill_leaves_a_stale_socket_that_the_next_replaces(
    daemon_factory,
):
    first = daemon_factory()
    first.start().send_signal(signal.SIGKILL)
    first.proc.wait()
    assert first.socket_path.exists()
    assert first.socket_path.with_name("ksi.sock.lock").exists()
    with pytest.raises(DaemonNotRunning):
        request_sync(first.socket_path, "system:health")
    second = daemon_factory()
    second.start()
    assert f"ready: pid {second.proc.pid}" in second.log()
    assert request_sync(first.socket_path, "system:health")["status"] == "healthy"


def test_the_lock_is_released_when_the_holder_dies(sock_path):
    code = (
        "import sys, os; from pathlib import Path; from ksi_host._instance import Instance; "
        "Instance.claim(Path(sys.argv[1])); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(sock_path)], check=True)
    Instance.claim(sock_path).release()
