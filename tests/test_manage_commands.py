"""What ``install``/``uninstall``/``sync`` report as changed (``_manage/commands.py``)."""

from __future__ import annotations

from packaging.utils import canonicalize_name

from ksi_host._manage.commands import Change
from ksi_host._manage.environment import Environment, InstalledDist


def _env(*dists: InstalledDist) -> Environment:
    return Environment({canonicalize_name(d.name): d for d in dists})


def _plugin(name: str, version: str, record: str) -> InstalledDist:
    return InstalledDist(name, version, (), (name.rpartition("-")[2],), record)


def test_a_reinstall_of_the_same_version_with_other_files_is_a_change() -> None:
    before = _env(_plugin("ksi-plugin-a", "1.0", "r1"), _plugin("ksi-plugin-b", "1.0", "r1"))
    after = _env(_plugin("ksi-plugin-a", "1.0", "r2"), _plugin("ksi-plugin-b", "1.0", "r1"))
    change = Change.between(before, after)
    assert change.render() == "~ ksi-plugin-a 1.0 reinstalled with other files (plugins: a)"
    assert not Change.between(before, before)
    upgraded = _env(_plugin("ksi-plugin-a", "2.0", "r3"))
    assert Change.between(before, upgraded).render() == (
        "- ksi-plugin-b 1.0 (plugins: b)\n~ ksi-plugin-a 1.0 -> 2.0 (plugins: a)"
    )
