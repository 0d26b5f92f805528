"""Discovery against real files and real installed distributions on sys.path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ksi_host._discover import BUILTIN_PACKAGE, disabled_names, discover, plugin_modules
from ksi_host.errors import ConfigError
from ksi_plugins_builtin import PLUGIN_MODULES
from tests.dists import install_dist, plugin_source


def _hints(found: tuple[object, ...], kind: str) -> list[str]:
    return [c.name_hint for c in found if c.origin.kind == kind]  # type: ignore[attr-defined]


def test_folder_offers_py_files_and_packages_but_not_private_ones(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    (folder / "pkg_plugin").mkdir(parents=True)
    (folder / "pkg_plugin" / "__init__.py").write_text(plugin_source("pkg"))
    (folder / "not_a_package").mkdir()
    (folder / "one.py").write_text(plugin_source("one"))
    (folder / "_helper.py").write_text("")
    (folder / ".hidden.py").write_text("")
    (folder / "notes.txt").write_text("")

    found = discover(paths=[folder], env={"KSI_HOME": str(tmp_path / "h")}, builtin_package=None)

    assert _hints(found, "path") == ["one", "pkg_plugin"]
    assert found[1].file == folder / "pkg_plugin" / "__init__.py"
    assert found[0].origin.location == str(folder / "one.py")


def test_explicit_paths_may_be_files_packages_or_dotted_modules(tmp_path: Path) -> None:
    (tmp_path / "solo.py").write_text(plugin_source("solo"))
    (tmp_path / "pack").mkdir()
    (tmp_path / "pack" / "__init__.py").write_text(plugin_source("pack"))

    found = discover(
        paths=[str(tmp_path / "solo.py"), tmp_path / "pack", "some.dotted.module"],
        env={"KSI_HOME": str(tmp_path / "h")},
        builtin_package=None,
    )

    assert [(c.name_hint, c.file, c.module) for c in found] == [
        ("solo", tmp_path / "solo.py", None),
        ("pack", tmp_path / "pack" / "__init__.py", None),
        ("module", None, "some.dotted.module"),
    ]
    assert {c.origin.kind for c in found} == {"path"}


def test_plugin_path_folders_in_order_then_user_dir(
    tmp_path: Path, ksi_env: dict[str, str]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, name in ((first, "b_first"), (second, "a_second")):
        folder.mkdir()
        (folder / f"{name}.py").write_text(plugin_source(name))
    user = Path(ksi_env["KSI_HOME"]) / "plugins"
    (user / "mine.py").write_text(plugin_source("mine"))
    env = {**ksi_env, "KSI_PLUGIN_PATH": os.pathsep.join([str(first), "", str(second)])}

    found = discover(env=env, builtin_package=None)

    assert [(c.origin.kind, c.name_hint) for c in found if c.origin.kind != "entry-point"] == [
        ("folder", "b_first"),
        ("folder", "a_second"),
        ("user", "mine"),
    ]


def test_missing_folders_offer_nothing(tmp_path: Path) -> None:
    env = {"KSI_HOME": str(tmp_path / "absent"), "KSI_PLUGIN_PATH": str(tmp_path / "nope")}
    found = discover(env=env, builtin_package=None)
    assert [c for c in found if c.origin.kind != "entry-point"] == []


def test_the_same_file_reached_twice_is_one_candidate(
    tmp_path: Path, ksi_env: dict[str, str]
) -> None:
    user = Path(ksi_env["KSI_HOME"]) / "plugins"
    (user / "twice.py").write_text(plugin_source("twice"))
    env = {**ksi_env, "KSI_PLUGIN_PATH": str(user)}

    found = discover(paths=[user / "twice.py"], env=env, builtin_package=None)

    assert [(c.origin.kind, c.name_hint) for c in found if c.origin.kind != "entry-point"] == [
        ("path", "twice")
    ]


def test_entry_points_carry_distribution_version_and_name(
    site_dir: Path, ksi_env: dict[str, str]
) -> None:
    install_dist(
        site_dir,
        dist="ksi-disc-ep",
        version="1.2.3",
        files={"disc_ep_mod.py": plugin_source("disc_ep")},
        entry_points={"disc_ep": "disc_ep_mod", "disc_ep_obj": "disc_ep_mod:plugin"},
    )

    found = [
        c for c in discover(env=ksi_env, builtin_package=None) if c.name_hint.startswith("disc_ep")
    ]

    assert [(c.name_hint, c.entry_point, c.origin.kind) for c in found] == [
        ("disc_ep", "disc_ep_mod", "entry-point"),
        ("disc_ep_obj", "disc_ep_mod:plugin", "entry-point"),
    ]
    assert str(found[0].origin) == "ksi-disc-ep 1.2.3, entry point 'disc_ep'"


def test_name_and_version_come_from_the_headers_not_the_description(
    site_dir: Path, ksi_env: dict[str, str]
) -> None:
    info = install_dist(
        site_dir,
        dist="Ksi.Disc-Head",
        version="4.0",
        files={"disc_head_mod.py": plugin_source("disc_head")},
        entry_points={"disc_head": "disc_head_mod"},
    )
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\r\nName: Ksi.Disc-Head\r\nSummary: x\r\nVersion: 4.0.post1\r\n"
        "\r\nName: not-this\r\nVersion: 9\r\n"
    )

    found = [c for c in discover(env=ksi_env, builtin_package=None) if c.name_hint == "disc_head"]

    assert [(c.origin.distribution, c.origin.dist_version) for c in found] == [
        ("Ksi.Disc-Head", "4.0.post1")
    ]


def test_a_distribution_seen_twice_on_sys_path_is_offered_once(
    tmp_path: Path, site_dir: Path, ksi_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"disc_dup_mod.py": plugin_source("disc_dup")}
    eps = {"disc_dup": "disc_dup_mod"}
    install_dist(site_dir, dist="Disc_Dup", version="2.0", files=files, entry_points=eps)
    other = tmp_path / "other-site"
    install_dist(
        other, dist="disc-dup", version="1.0", files=files, entry_points=eps, info_name="disc.dup"
    )
    monkeypatch.setattr(sys, "path", [*sys.path, str(other)])

    found = [c for c in discover(env=ksi_env, builtin_package=None) if c.name_hint == "disc_dup"]

    assert [c.origin.dist_version for c in found] == ["2.0"]


def test_autoload_off_skips_entry_points(site_dir: Path, ksi_env: dict[str, str]) -> None:
    install_dist(
        site_dir,
        dist="ksi-disc-off",
        version="1.0",
        files={"disc_off_mod.py": plugin_source("disc_off")},
        entry_points={"disc_off": "disc_off_mod"},
    )
    on = discover(env=ksi_env, builtin_package=None)
    off = discover(env={**ksi_env, "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}, builtin_package=None)

    assert "disc_off" in _hints(on, "entry-point")
    assert _hints(off, "entry-point") == []


def test_disabled_names_come_from_config_and_env_canonically() -> None:
    names = disabled_names(["My_Plugin"], {"KSI_DISABLE_PLUGINS": " other.one , ,my-plugin"})
    assert names == {
        "my-plugin": "[host] disabled (config file or KSI_HOST__DISABLED)",
        "other-one": "KSI_DISABLE_PLUGINS",
    }


def test_disabled_candidates_are_marked_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "Noisy_One.py").write_text("raise SystemExit('never imported')\n")
    found = discover(
        paths=[tmp_path],
        env={"KSI_HOME": str(tmp_path / "h"), "KSI_DISABLE_PLUGINS": "noisy-one"},
        builtin_package=None,
    )
    assert [(c.name_hint, c.disabled_by) for c in found] == [("Noisy_One", "KSI_DISABLE_PLUGINS")]


def test_a_bad_disabled_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        disabled_names((), {"KSI_DISABLE_PLUGINS": "good,bad name"})
    assert info.value.render() == (
        "error[config-error]: KSI_DISABLE_PLUGINS names 'bad name', which is not a plugin name: "
        "a name must be ASCII letters, digits, '.', '_' or '-', starting and ending with a "
        "letter or digit\n"
        "  where: KSI_DISABLE_PLUGINS\n"
        "  hint: list plugin names as `ksi-host plugins` shows them, e.g. 'my_plugin'"
    )


def test_builtins_are_every_module_that_binds_plugin(
    site_dir: Path, ksi_env: dict[str, str]
) -> None:
    package = site_dir / "disc_builtins"
    files = {
        "__init__.py": '"""Built-ins."""\n',
        "health.py": plugin_source("health"),
        "_private.py": plugin_source("private"),
        "helpers.py": "def plugin_helper():\n    return 1\n",
        "imported.py": "from disc_builtins.health import plugin\n",
        "annotated.py": "plugin: object = None\n",
        "transport/__init__.py": "",
        "transport/unix_socket.py": plugin_source("unix_socket"),
        "bundle/__init__.py": plugin_source("bundle"),
    }
    for relative, text in files.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)

    found = discover(env=ksi_env, builtin_package="disc_builtins")

    assert [c.module for c in found if c.origin.kind == "builtin"] == [
        "disc_builtins.annotated",
        "disc_builtins.bundle",
        "disc_builtins.health",
        "disc_builtins.imported",
        "disc_builtins.transport.unix_socket",
    ]
    assert "disc_builtins" not in sys.modules


def test_the_real_builtin_package_offers_what_it_declares(ksi_env: dict[str, str]) -> None:
    found = discover(env={**ksi_env, "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert [(c.origin.kind, c.module) for c in found] == [("builtin", m) for m in PLUGIN_MODULES]


def test_the_declared_builtins_are_the_modules_that_bind_plugin() -> None:
    walked = tuple(plugin_modules(BUILTIN_PACKAGE))
    assert walked == PLUGIN_MODULES, (
        f"ksi_plugins_builtin.PLUGIN_MODULES must list, in this order, {walked}"
    )


def test_sources_come_in_precedence_order(
    tmp_path: Path, site_dir: Path, ksi_env: dict[str, str]
) -> None:
    for folder in ("explicit", "env"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{folder}_plugin.py").write_text(plugin_source(folder))
    (Path(ksi_env["KSI_HOME"]) / "plugins" / "user_plugin.py").write_text(plugin_source("user"))
    install_dist(
        site_dir,
        dist="ksi-disc-order",
        version="1.0",
        files={"disc_order_mod.py": plugin_source("ep"), "disc_order_b/__init__.py": ""},
        entry_points={"ep_plugin": "disc_order_mod"},
    )
    (site_dir / "disc_order_b" / "builtin_plugin.py").write_text(plugin_source("builtin"))
    env = {**ksi_env, "KSI_PLUGIN_PATH": str(tmp_path / "env")}

    found = discover(paths=[tmp_path / "explicit"], env=env, builtin_package="disc_order_b")

    assert [(c.origin.kind, c.name_hint) for c in found if c.name_hint.endswith("_plugin")] == [
        ("path", "explicit_plugin"),
        ("folder", "env_plugin"),
        ("user", "user_plugin"),
        ("entry-point", "ep_plugin"),
        ("builtin", "builtin_plugin"),
    ]


def test_the_user_folder_is_dot_ksi_plugins_in_home_without_ksi_home(tmp_path: Path) -> None:
    user = tmp_path / ".ksi" / "plugins"
    user.mkdir(parents=True)
    (user / "mine.py").write_text(plugin_source("mine"))

    found = discover(env={"HOME": str(tmp_path)}, builtin_package=None)

    assert [(c.origin.kind, c.file) for c in found if c.origin.kind != "entry-point"] == [
        ("user", user / "mine.py")
    ]
