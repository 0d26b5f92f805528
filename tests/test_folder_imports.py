"""Plugin folders hold real plugins: packages import their own modules, files their helpers.

Nothing in a folder ever shadows the standard library or an installed package.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pluggy
from conftest import BakedPlugin

from ksi_host._pipeline import build_plan
from ksi_host._plan import LoadPlan
from tests.dists import plugin_source

HEADER = "from ksi_host import BasePlugin, PluginMetadata, hookimpl\n"


def _write(folder: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def _plan(folder: Path, tmp_path: Path) -> LoadPlan:
    env = {"KSI_HOME": str(tmp_path / "home"), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return build_plan(paths=[folder], env=env, builtin_package=None)


def _loaded(plan: LoadPlan) -> dict[str, object]:
    return {spec.name: spec.plugin for spec in plan.order}


def test_a_package_imports_its_submodules_relatively_and_absolutely(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "plugins",
        {
            "fip_pkg/__init__.py": "from .plugin_impl import plugin\n",
            "fip_pkg/plugin_impl.py": HEADER
            + "from fip_pkg.settings import GREETING\n"
            + "from . import settings\n"
            + "class P(BasePlugin):\n"
            + "    greeting = GREETING + settings.GREETING\n"
            + "    @hookimpl\n"
            + "    def ksi_startup(self):\n"
            + "        pass\n"
            + "plugin = P(PluginMetadata(name='fip_pkg'))\n",
            "fip_pkg/settings.py": "GREETING = 'hi'\n",
        },
    )
    plan = _plan(folder, tmp_path)
    assert plan.excluded == ()
    assert _loaded(plan)["fip_pkg"].greeting == "hihi"  # type: ignore[attr-defined]
    assert sys.modules["fip_pkg.settings"].GREETING == "hi"


def test_a_file_imports_a_helper_beside_it_and_the_helper_is_no_plugin(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "plugins",
        {
            "fip_user.py": "import fip_helpers\n" + plugin_source("fip_user"),
            "fip_helpers.py": "ANSWER = 42\n",
        },
    )
    plan = _plan(folder, tmp_path)
    assert [spec.name for spec in plan.order] == ["fip_user"]
    assert plan.excluded == ()
    assert sys.modules["fip_helpers"].ANSWER == 42


def test_a_folder_never_shadows_the_standard_library_or_an_installed_package(
    tmp_path: Path,
) -> None:
    folder = _write(
        tmp_path / "plugins",
        {
            "json.py": "FROM_THE_FOLDER = True\n",
            "pluggy/__init__.py": "FROM_THE_FOLDER = True\n",
            "fip_std.py": "import json, pluggy\nJSON, PLUGGY = json, pluggy\n"
            + plugin_source("fip_std"),
        },
    )
    plan = _plan(folder, tmp_path)
    assert [spec.name for spec in plan.order] == ["fip_std"]
    module = sys.modules[type(_loaded(plan)["fip_std"]).__module__]
    assert module.JSON is json
    assert module.PLUGGY is pluggy
    assert not hasattr(json, "FROM_THE_FOLDER")
    assert not hasattr(pluggy, "FROM_THE_FOLDER")
    assert not str(json.__file__).startswith(str(folder))


def test_a_package_whose_name_is_taken_still_loads_under_a_private_name(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "plugins",
        {
            "click/__init__.py": "from .impl import plugin\n",
            "click/impl.py": plugin_source("not_click"),
        },
    )
    plan = _plan(folder, tmp_path)
    assert [spec.name for spec in plan.order] == ["not_click"]
    import click

    assert not str(click.__file__).startswith(str(folder))


def test_a_module_with_hooks_but_no_plugin_is_reported_not_skipped(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "plugins",
        {
            "fip_forgot.py": HEADER
            + "class P(BasePlugin):\n    @hookimpl\n    def ksi_startup(self):\n        pass\n"
        },
    )
    [exclusion] = _plan(folder, tmp_path).excluded
    assert (exclusion.name, exclusion.reason.code) == ("fip_forgot", "not-a-plugin")


def test_a_helper_others_can_write_is_not_imported(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "plugins",
        {
            "fip_risky.py": "import fip_shared_helper\n" + plugin_source("fip_risky"),
            "fip_shared_helper.py": "X = 1\n",
        },
    )
    (folder / "fip_shared_helper.py").chmod(0o666)
    reasons = {e.name: e.reason for e in _plan(folder, tmp_path).excluded}
    assert reasons["fip_shared_helper"].code == "untrusted"
    assert reasons["fip_risky"].code == "import-error"
    assert "module 'fip_shared_helper'" in reasons["fip_risky"].message
    assert "writable by its group and all users" in reasons["fip_risky"].message
    assert "fip_shared_helper" not in sys.modules
    json.dumps({})  # the standard library is untouched


def test_the_templates_package_copied_into_a_folder_loads(
    baked_default: BakedPlugin, tmp_path: Path
) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    package = baked_default.path / baked_default.module_name
    shutil.copytree(package, folder / baked_default.module_name)
    plan = _plan(folder, tmp_path)
    assert plan.excluded == ()
    [spec] = plan.order
    assert spec.name == baked_default.plugin_name
    assert spec.origin.kind == "path"
