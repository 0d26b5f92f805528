from __future__ import annotations

from pathlib import Path

from ksi_host._paths import KsiPaths


def test_defaults_live_under_the_users_home():
    paths = KsiPaths.from_env({"HOME": "/home/u"})
    assert paths.home == Path("/home/u/.ksi")
    assert paths.plugins_dir == Path("/home/u/.ksi/plugins")
    assert paths.data_dir == Path("/home/u/.ksi/data")
    assert paths.run_dir == Path("/home/u/.ksi/run")
    assert paths.config_file == Path("/home/u/.config/ksi/config.toml")


def test_xdg_dirs_are_honoured_without_ksi_home():
    paths = KsiPaths.from_env(
        {"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1", "XDG_CONFIG_HOME": "/cfg"}
    )
    assert paths.run_dir == Path("/run/user/1/ksi")
    assert paths.config_file == Path("/cfg/ksi/config.toml")


def test_ksi_home_roots_everything_so_tests_never_touch_the_real_home(tmp_path: Path):
    env = {"HOME": "/home/u", "KSI_HOME": str(tmp_path), "XDG_RUNTIME_DIR": "/run/user/1"}
    paths = KsiPaths.from_env(env)
    assert {paths.plugins_dir, paths.data_dir, paths.run_dir, paths.config_file} == {
        tmp_path / "plugins",
        tmp_path / "data",
        tmp_path / "run",
        tmp_path / "config.toml",
    }


def test_ksi_config_wins(tmp_path: Path):
    paths = KsiPaths.from_env({"KSI_HOME": str(tmp_path), "KSI_CONFIG": "/etc/ksi.toml"})
    assert paths.config_file == Path("/etc/ksi.toml")
