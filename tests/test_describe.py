"""Describe imports real plugin files and installed distributions; failures become exclusions."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from ksi_host import _describe
from ksi_host._describe import describe, file_module_name
from ksi_host._discover import discover
from ksi_host._plan import Candidate, Origin
from tests.dists import install_dist, plugin_source


def _describe_folder(folder: Path, **env: str):  # type: ignore[no-untyped-def]
    environ = {"KSI_HOME": str(folder.parent / "no-home"), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return describe(discover(paths=[folder], env={**environ, **env}, builtin_package=None))


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder


BROKEN = {
    "a_import.py": "import ksi_no_such_module\n",
    "b_syntax.py": "def broken(:\n",
    "c_runtime.py": "raise RuntimeError('boom at import')\n",
    "d_exit.py": "raise SystemExit(3)\n",
}


@pytest.mark.usefixtures("site_dir")
def test_a_plugin_failing_to_import_never_stops_the_healthy_ones(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "plugins",
        {**BROKEN, "healthy.py": plugin_source("healthy"), "zz_last.py": plugin_source("zz_last")},
    )

    described = _describe_folder(folder)

    assert [s.name for s in described.specs] == ["healthy", "zz_last"]
    assert [(e.name, e.reason.code) for e in described.excluded] == [
        ("a_import", "import-error"),
        ("b_syntax", "import-error"),
        ("c_runtime", "import-error"),
        ("d_exit", "import-error"),
    ]
    runtime = described.excluded[2].reason
    assert runtime.message == (
        f"c_runtime from path {folder / 'c_runtime.py'} failed to import: "
        "RuntimeError: boom at import"
    )
    assert runtime.hint == (
        "fix the error in the traceback, or set KSI_DISABLE_PLUGINS=c_runtime to skip it"
    )
    assert runtime.traceback is not None
    assert str(folder / "c_runtime.py") in runtime.traceback
    assert "SyntaxError" in str(described.excluded[1].reason.traceback)
    assert not [name for name in sys.modules if name.startswith("ksi_no_such")]


@pytest.mark.usefixtures("site_dir")
def test_things_that_are_not_plugins_say_what_they_are(tmp_path: Path) -> None:
    header = "from ksi_host import BasePlugin, PluginMetadata, hookimpl\n"
    folder = _write(
        tmp_path / "plugins",
        {
            "a_no_plugin.py": header
            + "class P(BasePlugin):\n    @hookimpl\n    def ksi_startup(self):\n        pass\n",
            "helper.py": "x = 1\n",
            "b_class.py": header + "class plugin(BasePlugin):\n    pass\n",
            "c_no_metadata.py": "plugin = object()\n",
            "d_no_hooks.py": header + "plugin = BasePlugin(PluginMetadata(name='d'))\n",
            "e_bad_meta_type.py": header
            + "class P:\n    metadata = {'name': 'e'}\n\n    @hookimpl\n"
            + "    def ksi_startup(self):\n        pass\n\nplugin = P()\n",
            "f_invalid.py": header
            + "plugin = BasePlugin(PluginMetadata(name='f', version='x.y'))\n",
        },
    )

    excluded = _describe_folder(folder).excluded

    assert [(e.name, e.reason.code) for e in excluded] == [
        ("a_no_plugin", "not-a-plugin"),
        ("b_class", "not-a-plugin"),
        ("c_no_metadata", "not-a-plugin"),
        ("d_no_hooks", "not-a-plugin"),
        ("e_bad_meta_type", "invalid-metadata"),
        ("f_invalid", "invalid-metadata"),
    ]
    a, b, c, d, e, f = (exclusion.reason for exclusion in excluded)
    assert a.message == f"{folder / 'a_no_plugin.py'} has no `plugin`"
    assert a.hint == (
        "expose the instance: plugin = MyPlugin()  # MyPlugin subclasses ksi_host.BasePlugin"
    )
    assert b.message == f"{folder / 'b_class.py'} is the class plugin, not a plugin instance"
    assert b.hint == "create the instance: plugin = plugin()"
    assert c.message == f"{folder / 'c_no_metadata.py'} is a object with no `metadata`"
    assert d.message == f"{folder / 'd_no_hooks.py'} (BasePlugin) has no @hookimpl methods"
    assert e.message == f"{folder / 'e_bad_meta_type.py'}.metadata is a dict, not a PluginMetadata"
    assert f.message.startswith("plugin 'f' has invalid PluginMetadata (1 problem)\n")
    assert "version = 'x.y': not a valid PEP 440 version" in f.message
    assert f.traceback is not None


@pytest.mark.usefixtures("site_dir")
def test_same_named_files_in_two_folders_get_their_own_modules(tmp_path: Path) -> None:
    one = _write(tmp_path / "one", {"plugin.py": plugin_source("first")})
    two = _write(tmp_path / "two", {"plugin.py": plugin_source("second")})

    described = describe(
        discover(paths=[one, two], env={"KSI_HOME": str(tmp_path)}, builtin_package=None)
    )

    assert [s.name for s in described.specs if s.origin.kind == "path"] == ["first", "second"]
    first, second = (sys.modules[type(s.plugin).__module__] for s in described.specs[:2])
    assert first is not second
    assert Path(str(first.__file__)) == one / "plugin.py"
    assert Path(str(second.__file__)) == two / "plugin.py"
    assert file_module_name(one / "plugin.py") != file_module_name(two / "plugin.py")


@pytest.mark.usefixtures("site_dir")
def test_a_package_plugin_may_import_its_own_submodules(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "plugins",
        {
            "pkg/__init__.py": "from .impl import plugin\n",
            "pkg/impl.py": plugin_source("pkg_plugin"),
        },
    )
    assert [s.name for s in _describe_folder(folder).specs] == ["pkg_plugin"]


@pytest.mark.usefixtures("site_dir")
def test_the_first_source_wins_and_the_other_is_shadowed(
    tmp_path: Path, ksi_env: dict[str, str]
) -> None:
    env_folder = _write(tmp_path / "env", {"dup.py": plugin_source("Dup_Plugin", version="2.0")})
    user = Path(ksi_env["KSI_HOME"]) / "plugins"
    _write(user, {"other_name.py": plugin_source("dup-plugin", version="1.0")})
    env = {**ksi_env, "KSI_PLUGIN_PATH": str(env_folder), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}

    described = describe(discover(env=env, builtin_package=None))

    assert [(s.name, s.version) for s in described.specs] == [("Dup_Plugin", "2.0")]
    [shadowed] = described.excluded
    assert shadowed.spec is not None
    assert shadowed.reason.code == "shadowed"
    assert shadowed.reason.message == (
        f"dup-plugin from user {user / 'other_name.py'} is shadowed by "
        f"Dup_Plugin from folder {env_folder / 'dup.py'}"
    )


def test_disabled_plugins_are_reported_and_never_imported(
    tmp_path: Path, site_dir: Path, ksi_env: dict[str, str]
) -> None:
    folder = _write(
        tmp_path / "plugins",
        {"explodes.py": "raise RuntimeError('imported')\n", "renamed.py": plugin_source("Real")},
    )
    described = describe(
        discover(paths=[folder], env=ksi_env, disabled=["explodes"], builtin_package=None),
        disabled={"real": "KSI_DISABLE_PLUGINS"},
    )

    assert [(e.name, e.reason.code, e.spec is None) for e in described.excluded] == [
        ("explodes", "disabled", True),
        ("Real", "disabled", False),
    ]
    assert described.excluded[0].reason.message == (
        "explodes is disabled by [host] disabled (config file or KSI_HOST__DISABLED)"
    )
    assert described.excluded[0].reason.hint == (
        "remove 'explodes' from [host] disabled (config file or KSI_HOST__DISABLED) to load it"
    )
    assert described.excluded[1].reason.hint == (
        "remove 'Real' from KSI_DISABLE_PLUGINS to load it; it was imported to learn that name, "
        "so to keep it from being imported at all, disable it as 'renamed'"
    )


def test_entry_points_load_modules_or_objects_and_take_the_dist_version(
    site_dir: Path, ksi_env: dict[str, str]
) -> None:
    source = plugin_source("desc_unversioned") + textwrap.dedent(
        """
        other = FixturePlugin(PluginMetadata(name="desc_versioned", version="9.0"))
        """
    )
    install_dist(
        site_dir,
        dist="ksi-desc-ep",
        version="1.5",
        files={"desc_ep_mod.py": source},
        entry_points={"desc_a": "desc_ep_mod", "desc_b": "desc_ep_mod:other"},
    )

    described = describe(
        c for c in discover(env=ksi_env, builtin_package=None) if c.name_hint.startswith("desc_")
    )

    assert [(s.name, s.version) for s in described.specs] == [
        ("desc_unversioned", "1.5"),
        ("desc_versioned", "9.0"),
    ]
    assert [(w.code, str(w), w.plugins) for w in described.warnings] == [
        (
            "version-mismatch",
            "desc_versioned says it is version 9.0 but its distribution ksi-desc-ep is 1.5; "
            "using 9.0",
            ("desc_versioned",),
        )
    ]


def test_a_missing_file_or_module_is_an_import_error(tmp_path: Path) -> None:
    candidates = [
        Candidate("gone", Origin("path", "gone.py"), file=tmp_path / "gone.py"),
        Candidate("nomod", Origin("path", "ksi_desc_nomod"), module="ksi_desc_nomod"),
    ]
    described = describe(candidates)
    assert [(e.reason.code, e.reason.message) for e in described.excluded] == [
        ("import-error", "gone: there is no plugin file or folder at gone.py"),
        (
            "import-error",
            "nomod from path ksi_desc_nomod failed to import: "
            "ModuleNotFoundError: No module named 'ksi_desc_nomod'",
        ),
    ]
    assert described.excluded[0].reason.hint == (
        "check the path given with --plugin-path or in the config's [host] plugin_paths "
        "(a relative path is relative to the current directory)"
    )


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def found(self, candidate: Candidate) -> None:
        self.events.append(("found", candidate.name_hint))

    def importing(self, candidate: Candidate) -> None:
        self.events.append(("importing", candidate.name_hint))

    def described(self, spec: object) -> None:
        self.events.append(("described", spec.name))  # type: ignore[attr-defined]

    def excluded(self, exclusion: object) -> None:
        self.events.append(("excluded", exclusion.name))  # type: ignore[attr-defined]


@pytest.mark.usefixtures("site_dir")
def test_the_reporter_hears_each_stage(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", {"bad.py": "raise ValueError\n", "good.py": plugin_source("g")})
    recorder = _Recorder()
    env = {"KSI_HOME": str(tmp_path), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    describe(discover(paths=[folder], env=env, builtin_package=None, reporter=recorder), recorder)
    assert recorder.events == [
        ("found", "bad"),
        ("found", "good"),
        ("importing", "bad"),
        ("excluded", "bad"),
        ("importing", "good"),
        ("described", "g"),
    ]


def test_an_explicit_dotted_module_is_imported_by_name(
    site_dir: Path, ksi_env: dict[str, str]
) -> None:
    _write(site_dir, {"desc_pkg/__init__.py": "", "desc_pkg/impl.py": plugin_source("dotted")})
    env = {**ksi_env, "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}

    described = describe(discover(paths=["desc_pkg.impl"], env=env, builtin_package=None))

    [spec] = described.specs
    assert (spec.name, str(spec.origin)) == ("dotted", "path desc_pkg.impl")
    assert spec.plugin is sys.modules["desc_pkg.impl"].plugin


@pytest.mark.usefixtures("site_dir")
def test_a_slow_import_is_logged_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_describe, "SLOW_IMPORT_SECONDS", 0.05)
    monkeypatch.setattr(_describe, "_WATCH", _describe._ImportWatch())
    folder = _write(tmp_path / "plugins", {"sleepy.py": "import time\ntime.sleep(0.3)\n"})
    _write(folder, {"quick.py": plugin_source("quick")})
    with caplog.at_level("WARNING", logger="ksi_host.describe"):
        _describe_folder(folder)
    assert [r.getMessage() for r in caplog.records] == [
        f"still importing plugin sleepy from path {folder / 'sleepy.py'} after 0.05s; if it "
        "hangs, `ksi-host doctor` imports each plugin in a separate process with a timeout"
    ]
