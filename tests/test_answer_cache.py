"""``ksi-host plugins`` prints a kept answer only while every input of its plan is unchanged.

Each test keeps an answer (a real ``python -m ksi_host`` process), sees the next command
print it again without planning (byte for byte), changes one kind of input, and shows
that the command after the change plans afresh, with an answer that differs from the
kept one. Served or planned is told apart by ``-X importtime``, which says whether the
command line module was imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import packaging.requirements
import pytest

from ksi_host import _answer_cache
from ksi_host._answer_cache import CACHE_FILE, SWITCH
from ksi_host._stamps import SETTLE_SECONDS
from ksi_host._toml import tomllib
from tests.conftest import ManagedVenv, pip_env, subprocess_env
from tests.dists import install_dist, plugin_source

_NAMES = (
    "same",
    "install",
    "uninstall",
    "manifest",
    "config",
    "new_config",
    "variable",
    "folder",
    "rules",
    "corrupt",
    "socket",
    "imported",
    "quarantine",
    "script",
    "described",
    "stderr",
    "pydantic",
    "finder",
    "library",
)


_PYDANTIC_PLUGIN = """\
class _Plugin:
    def new_schema_validator(self, *args, **kwargs):
        return None, None, None


plugin = _Plugin()
"""


_FINDER = """\
import sys


class _Finder:
    \"\"\"Lists distributions from somewhere no stat can date (as a zip importer might).\"\"\"

    @classmethod
    def find_spec(cls, *args, **kwargs):
        return None

    @classmethod
    def find_distributions(cls, *args, **kwargs):
        return iter(())


sys.meta_path.append(_Finder)
"""


def _manifest(name: str, *, description: str = "", dependencies: tuple[str, ...] = ()) -> str:
    return (
        f'name = "{name}"\nversion = "1.0"\nactivation = "lazy"\n'
        f'description = "{description}"\n'
        f"dependencies = {json.dumps(list(dependencies))}\n"
        f'event_namespaces = ["{name}"]\nhooks = ["ksi_handle_event"]\n'
    )


def _install(
    site: Path, name: str, *, dependencies: tuple[str, ...] = (), plain: bool = False
) -> None:
    package = f"{name}_pkg"
    files = {f"{package}/__init__.py": plugin_source(name, dependencies=dependencies)}
    if not plain:
        files[f"{package}/ksi-plugin.toml"] = _manifest(name, dependencies=dependencies)
    install_dist(site, dist=f"ac-{name}", version="1.0", files=files, entry_points={name: package})


@dataclass(frozen=True)
class Place:
    """One test's own installed plugins, ``KSI_HOME`` and environment."""

    site: Path
    home: Path
    cwd: Path
    env: dict[str, str]

    @property
    def ksi_home(self) -> Path:
        return self.home / ".ksi"


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Place]:
    """A site, home and working folder per test, all settled before the first test runs."""
    root = tmp_path_factory.mktemp("answers")
    base = root / "base-site"
    _install(base, "ac_one")
    _install(base, "ac_two", dependencies=("ac_one>=1",))
    _install(base, "ac_three", dependencies=("ac_absent",))  # excluded: the command exits 1
    found = {}
    for name in _NAMES:
        site, home, cwd = root / f"{name}-site", root / f"{name}-home", root / f"{name}-cwd"
        shutil.copytree(base, site)
        cwd.mkdir()
        (home / ".ksi").mkdir(parents=True)
        env = subprocess_env(home)
        env["PYTHONPATH"] = str(site)
        found[name] = Place(site, home, cwd, env)
    _install(found["imported"].site, "ac_plain", plain=True)
    _install(found["described"].site, "ac_plain", plain=True)
    install_dist(  # a pydantic plugin: code pydantic runs that no answer dates
        found["pydantic"].site,
        dist="ac-pydantic-plugin",
        version="1.0",
        files={"ac_pydantic_plugin/__init__.py": _PYDANTIC_PLUGIN},
        entry_points={},
        other_entry_points={"pydantic": {"ac_marker": "ac_pydantic_plugin:plugin"}},
    )
    (found["finder"].site / "sitecustomize.py").write_text(_FINDER)
    untrusted = found["stderr"].ksi_home / "cache" / "entry-points.json"
    untrusted.parent.mkdir(mode=0o700)
    untrusted.write_text("{}")
    untrusted.chmod(0o666)  # any user could write it: ignored, with a warning on stderr
    (found["config"].ksi_home / "config.toml").write_text('[host]\ndisabled = ["ac_two"]\n')
    (found["folder"].ksi_home / "plugins").mkdir()
    time.sleep(SETTLE_SECONDS + 0.1)  # what the first command reads settled before it
    return found


_CONSOLE_SCRIPT = "from ksi_host._entry import main; main()"


@dataclass(frozen=True)
class Answer:
    stdout: str
    stderr: str
    code: int
    served: bool


def _ksi(place: Place, *args: str, env: dict[str, str] | None = None, entry: str = "-m") -> Answer:
    """``python -m ksi_host ARGS``; with ``entry="-c"``, the console script's function."""
    command = ["-m", "ksi_host"] if entry == "-m" else ["-c", _CONSOLE_SCRIPT]
    argv = [sys.executable, "-X", "importtime", *command, *args]
    done = subprocess.run(
        argv, env=env or place.env, cwd=place.cwd, capture_output=True, text=True, check=False
    )
    lines = done.stderr.splitlines()
    own = [line for line in lines if not line.startswith("import time:")]
    served = not any(line.endswith(" ksi_host._cli") for line in lines)
    return Answer(done.stdout, "\n".join(own), done.returncode, served)


def _uncached(place: Place, *args: str) -> Answer:
    return _ksi(place, *args, env={**place.env, SWITCH: "off"})


def _kept(place: Place, *args: str) -> Answer:
    """Plan once (kept), then check the next command prints the same without planning."""
    first = _ksi(place, *args)
    assert not first.served
    again = _ksi(place, *args)
    assert again.served, again.stderr
    assert (again.stdout, again.stderr, again.code) == (first.stdout, first.stderr, first.code)
    return first


def _planned_afresh(place: Place, before: Answer, *args: str) -> Answer:
    """The command after a change: planned (so its answer is a cold one), and different."""
    after = _ksi(place, *args)
    assert not after.served
    assert after.stdout != before.stdout
    return after


def _statuses(answer: Answer) -> dict[str, str]:
    return {entry["name"]: entry["status"] for entry in json.loads(answer.stdout)["plugins"]}


def test_a_kept_answer_is_byte_for_byte_the_planned_one(places: dict[str, Place]) -> None:
    place = places["same"]
    for args in (("plugins", "--json"), ("plugins", "-v")):
        kept = _kept(place, *args)
        assert kept.code == 1  # ac_three needs a plugin that is not installed
        uncached = _uncached(place, *args)
        assert (uncached.stdout, uncached.code) == (kept.stdout, kept.code)
        assert not uncached.served
    assert _statuses(kept_json := _ksi(place, "plugins", "--json"))["ac_two"] == "loadable"
    assert kept_json.served


def test_the_console_script_serves_kept_answers_too(places: dict[str, Place]) -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["ksi-host"] == "ksi_host._entry:main"
    place = places["script"]
    first = _ksi(place, "plugins", entry="-c")
    again = _ksi(place, "plugins", entry="-c")
    assert (first.served, again.served) == (False, True)
    assert (again.stdout, again.code) == (first.stdout, first.code)
    assert again.stdout == _uncached(place, "plugins").stdout


def test_installing_a_plugin_is_seen(places: dict[str, Place]) -> None:
    place = places["install"]
    before = _kept(place, "plugins", "--json")
    _install(place.site, "ac_four")
    time.sleep(SETTLE_SECONDS + 0.1)  # settled: only the key can tell
    after = _planned_afresh(place, before, "plugins", "--json")
    assert "ac_four" in _statuses(after)


def test_uninstalling_a_plugin_is_seen(places: dict[str, Place]) -> None:
    place = places["uninstall"]
    before = _kept(place, "plugins", "--json")
    shutil.rmtree(place.site / "ac_ac_one-1.0.dist-info")
    shutil.rmtree(place.site / "ac_one_pkg")
    after = _planned_afresh(place, before, "plugins", "--json")
    assert "ac_one" not in _statuses(after)
    assert _statuses(after)["ac_two"] == "excluded"


def test_a_manifest_edited_in_place_is_seen(places: dict[str, Place]) -> None:
    place = places["manifest"]
    before = _kept(place, "plugins", "--json")
    manifest = place.site / "ac_one_pkg" / "ksi-plugin.toml"
    inode = manifest.stat().st_ino
    with manifest.open("r+") as file:  # the same file, rewritten
        file.truncate(0)
        file.write(_manifest("ac_one", dependencies=("ac_absent",)))
    assert manifest.stat().st_ino == inode
    after = _planned_afresh(place, before, "plugins", "--json")
    assert _statuses(after)["ac_one"] == "excluded"


def test_a_config_value_changed_is_seen(places: dict[str, Place]) -> None:
    place = places["config"]
    before = _kept(place, "plugins", "--json")
    assert _statuses(before)["ac_two"] == "disabled"
    (place.ksi_home / "config.toml").write_text('[host]\ndisabled = ["ac_one"]\n')
    after = _planned_afresh(place, before, "plugins", "--json")
    assert _statuses(after)["ac_one"] == "disabled"


def test_a_config_file_created_where_none_was_is_seen(places: dict[str, Place]) -> None:
    place = places["new_config"]
    before = _kept(place, "plugins", "--json")
    (place.ksi_home / "config.toml").write_text('[host]\ndisabled = ["ac_one"]\n')
    after = _planned_afresh(place, before, "plugins", "--json")
    assert _statuses(after)["ac_one"] == "disabled"


def test_a_ksi_variable_set_is_seen(places: dict[str, Place]) -> None:
    place = places["variable"]
    before = _kept(place, "plugins", "--json")
    place.env["KSI_DISABLE_PLUGINS"] = "ac_two"
    after = _planned_afresh(place, before, "plugins", "--json")
    assert _statuses(after)["ac_two"] == "disabled"


def test_a_file_added_to_a_plugin_folder_is_seen(places: dict[str, Place]) -> None:
    place = places["folder"]
    before = _kept(place, "plugins", "--json")
    (place.ksi_home / "plugins" / "ac_local.py").write_text(plugin_source("ac_local"))
    after = _planned_afresh(place, before, "plugins", "--json")
    assert _statuses(after)["ac_local"] == "loadable"
    assert not _ksi(place, "plugins", "--json").served  # its code ran: nothing is kept


def test_the_quarantine_is_seen(places: dict[str, Place]) -> None:
    place = places["quarantine"]
    before = _kept(place, "plugins", "--json")
    entry = {
        "name": "ac_one",
        "identity": "entry-point:ac_one_pkg",
        "fingerprint": "ac-ac_one==1.0",
        "stage": "import",
        "since": "2026-01-01T00:00:00+00:00",
    }
    (place.ksi_home / "data").mkdir()
    (place.ksi_home / "data" / "quarantine.json").write_text(json.dumps({"plugins": [entry]}))
    after = _planned_afresh(place, before, "plugins", "--json")
    reasons = {e["name"]: e["reason"] for e in json.loads(after.stdout)["plugins"]}
    assert reasons["ac_one"]["code"] == "quarantined"


def test_a_corrupt_cache_file_is_planned_around(places: dict[str, Place]) -> None:
    place = places["corrupt"]
    before = _kept(place, "plugins", "--json")
    cache = place.ksi_home / "cache" / CACHE_FILE
    kept = json.loads(cache.read_text())
    for damaged in (
        "{not json",
        json.dumps({**kept, "answers": [{"argv": ["plugins", "--json"]}]}),
    ):
        cache.write_text(damaged)
        after = _ksi(place, "plugins", "--json")
        assert not after.served
        assert (after.stdout, after.stderr, after.code) == (
            before.stdout,
            before.stderr,
            before.code,
        )
    lied = kept["answers"][0] | {"stdout": "forged\n"}
    cache.write_text(json.dumps({**kept, "answers": [lied | {"key": "0" * 64}]}))
    assert _ksi(place, "plugins", "--json").stdout == before.stdout


def test_a_daemon_socket_means_the_daemon_is_asked(places: dict[str, Place]) -> None:
    place = places["socket"]
    before = _kept(place, "plugins", "--json")
    (place.ksi_home / "run").mkdir()
    (place.ksi_home / "run" / "ksi.sock").touch()  # nothing answers there
    after = _ksi(place, "plugins", "--json")
    assert not after.served
    assert after.stdout == before.stdout


def test_a_plugin_described_from_its_kept_description_is_dated_by_its_files(
    places: dict[str, Place],
) -> None:
    place = places["described"]
    assert not _ksi(place, "plugins", "--json").served  # imports ac_plain, writes __pycache__
    time.sleep(SETTLE_SECONDS + 0.1)  # so its package folder settles
    assert not _ksi(place, "plugins", "--json").served  # imports it again: keeps its description
    before = _kept(place, "plugins", "--json")  # described without importing it: kept
    assert _statuses(before)["ac_plain"] == "loadable"
    module = place.site / "ac_plain_pkg" / "__init__.py"
    module.write_text(plugin_source("ac_plain", version="2.0"))  # edited in place
    after = _planned_afresh(place, before, "plugins", "--json")
    versions = {e["name"]: e["version"] for e in json.loads(after.stdout)["plugins"]}
    assert versions["ac_plain"] == "2.0"


def test_a_plan_that_imported_a_plugin_is_not_kept(places: dict[str, Place]) -> None:
    place = places["imported"]
    first = _ksi(place, "plugins", "--json")
    assert _statuses(first)["ac_plain"] == "loadable"
    assert not _ksi(place, "plugins", "--json").served


def test_a_command_that_wrote_on_stderr_is_not_kept(places: dict[str, Place]) -> None:
    place = places["stderr"]
    for _ in range(2):
        answer = _ksi(place, "plugins", "--json")
        assert not answer.served
        assert "ignoring the cache" in answer.stderr


def test_a_finder_that_cannot_be_dated_makes_every_answer_unkept(
    places: dict[str, Place],
) -> None:
    place = places["finder"]
    for _ in range(2):
        assert not _ksi(place, "plugins", "--json").served


def test_a_pydantic_plugin_makes_every_answer_unkept(places: dict[str, Place]) -> None:
    place = places["pydantic"]
    for _ in range(2):
        assert not _ksi(place, "plugins", "--json").served


@pytest.mark.slow
def test_pip_install_and_uninstall_are_seen(plugin_venv: ManagedVenv, tmp_path: Path) -> None:
    """Real pip, into a venv of its own: a plugin with a manifest comes and goes.

    From a quiet folder (``python -m`` puts the working folder on ``sys.path``, and pip
    writes its scratch files into the home).
    """
    venv = plugin_venv
    argv = [str(venv.python), "-X", "importtime", "-m", "ksi_host", "plugins", "--json"]
    (venv.home / ".ksi" / "cache").mkdir(parents=True, exist_ok=True)

    def listed() -> tuple[set[str], bool]:
        done = subprocess.run(
            argv, env=pip_env(venv.home), cwd=tmp_path, capture_output=True, text=True
        )
        served = not any(line.endswith(" ksi_host._cli") for line in done.stderr.splitlines())
        return {entry["name"] for entry in json.loads(done.stdout)["plugins"]}, served

    try:
        venv.pip("install", "-q", *venv.offline, "ksi-plugin-futuremanifest")
        time.sleep(SETTLE_SECONDS + 0.1)  # settled: only the key can tell
        names, served = listed()  # plans, and keeps its answer
        assert not served
        assert "futuremanifest" in names
        assert listed() == (names, True)
        venv.pip("uninstall", "-y", "-q", "ksi-plugin-futuremanifest")
        names, served = listed()
        assert not served
        assert "futuremanifest" not in names
    finally:
        venv.remove_plugins()


@pytest.fixture
def touched_library() -> Iterator[Path]:
    """A module of a library the plan runs, with new times (its text unchanged), restored."""
    module = Path(packaging.requirements.__file__)
    before = module.stat()
    yield module
    os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
    time.sleep(SETTLE_SECONDS + 0.1)  # its change time stays new: let it settle


def test_a_library_file_edited_in_place_is_seen(
    places: dict[str, Place], touched_library: Path
) -> None:
    place = places["library"]
    before = _kept(place, "plugins", "--json")
    time.sleep(0.01)
    touched_library.touch()
    after = _ksi(place, "plugins", "--json")
    assert not after.served
    assert (after.stdout, after.code) == (before.stdout, before.code)


@pytest.fixture
def touched_rules() -> Iterator[Path]:
    """One of ksi-host's own modules with new times (its text unchanged), restored afterwards."""
    module = Path(_answer_cache.__file__).with_name("_plans_report.py")
    before = module.stat()
    yield module
    os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))


# Last: for SETTLE_SECONDS after it, ksi-host's own files count as changing, and no
# answer is kept.
def test_changed_rules_of_ksi_host_are_seen(places: dict[str, Place], touched_rules: Path) -> None:
    place = places["rules"]
    before = _kept(place, "plugins")
    time.sleep(0.01)
    touched_rules.touch()
    after = _ksi(place, "plugins")
    assert not after.served
    assert (after.stdout, after.code) == (before.stdout, before.code)
