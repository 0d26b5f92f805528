"""The whole answer of ``ksi-host plugins``, kept and printed again while nothing it read changed.

With every plugin described by its manifest, what listing a thousand plugins costs is
no longer the plugins but the host: python, click, pydantic and ksi-host's own models
cost more than a bare scan of the entry points does. So a command line's output and
exit code are kept (in ``$KSI_HOME/cache/answers.json``) with a digest of every input
of the plan, and the entry point (:mod:`ksi_host._entry`) prints them again, before it
imports anything but the standard library, while the digest is the same. The inputs:

- the command line, the working directory, the effective user and group, and every
  environment variable (but the shell's own ``PWD``, ``OLDPWD``, ``SHLVL`` and ``_``);
- ``sys.path``'s distributions, dated as the scan cache dates them
  (:func:`ksi_host._scan_cache.sys_path_key`: it covers every ``pip install`` and
  ``uninstall``, the interpreter and ksi-host's version);
- the rules: every file of the ``ksi_host`` and ``ksi_plugins_builtin`` packages
  (inode, size, times), so an edited or upgraded ksi-host answers afresh, and the file
  of every module the command imported (pydantic's, click's, the standard library's...:
  a library edited in place, or kept elsewhere by an editable install, counts too);
- each manifest the plan read, by its identity (as :mod:`ksi_host._manifest_cache`),
  and the files that date each kept description it read instead of importing a plugin
  (:mod:`ksi_host._described_cache`: the ``RECORD``, each file and folder of the package);
- the config file and the quarantine file: their bytes (a digest), where they resolve
  to, their owner and mode and those of every folder above them (the config's trust
  check), or that there was none;
- each plugin folder listed (``KSI_PLUGIN_PATH``'s and ``$KSI_HOME/plugins``): its
  entries, each dated, and each package's ``__init__.py``;
- the daemon's socket: an answer is printed again only while nothing is there (a
  running daemon's view is merged into the answer, so it is asked every time).

An answer is kept only when its plan depended on no plugin code it did not date
(every plugin described by its manifest or kept description, or disabled; the built-ins
are ksi-host's own code, dated above) and loaded no pydantic plugin, with no
``--plugin-path``, ``[host] plugin_paths`` or ``[host] isolated``, when the command
wrote nothing on stderr, and when everything dated settled before the command started
(:data:`ksi_host._stamps.SETTLE_SECONDS`); anything that cannot be dated (a finder
other than the standard path finder, an unreadable folder) means nothing is kept or
served. ``KSI_ANSWER_CACHE=0`` turns it off (neither kept nor served); deleting the
file is always safe.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO, cast

import ksi_plugins_builtin
from ksi_host import __version__
from ksi_host._cache_file import read_cache, write_cache
from ksi_host._paths import KsiPaths
from ksi_host._scan_cache import sys_path_key
from ksi_host._stamps import HOT, SETTLE_SECONDS, Stamp, stamp
from ksi_host._switches import switched_off

if TYPE_CHECKING:
    from ksi_host._config import HostConfig
    from ksi_host._plan import Candidate, Exclusion, PluginSpec

__all__ = [
    "CACHE_FILE",
    "SWITCH",
    "Inputs",
    "PlanWatch",
    "Recording",
    "current",
    "keep_plan_answer",
    "recording",
    "serve",
]

CACHE_FILE: Final = "answers.json"
SWITCH: Final = "KSI_ANSWER_CACHE"
"""``0`` (or ``off``, ``false``, ``no``) turns kept answers off: none is printed or kept."""
_FORMAT: Final = 1
_KEPT: Final = 4
"""Answers kept per ``KSI_HOME``, the latest first: one per command line."""
_SHELL_VARIABLES: Final = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})


@dataclass(frozen=True)
class Inputs:
    """The files and folders one plan read, and where a daemon would answer."""

    contents: tuple[str, ...] = ()
    """Files read whole: dated by their bytes, where they resolve to, owner and mode."""
    files: tuple[str, ...] = ()
    """Files and folders dated by their identity: manifests, what dates kept descriptions,
    and the file of every module the command ran."""
    folders: tuple[str, ...] = ()
    """Folders listed for plugins."""
    socket: str | None = None

    def as_data(self) -> dict[str, Any]:
        return {
            "contents": list(self.contents),
            "files": list(self.files),
            "folders": list(self.folders),
            "socket": self.socket,
        }

    @classmethod
    def from_data(cls, data: object) -> Inputs:
        """Raises :class:`TypeError` or :class:`KeyError` for data that is not an ``Inputs``."""
        if not isinstance(data, dict):
            raise TypeError(data)
        lists = [data[name] for name in ("contents", "files", "folders")]
        if not all(isinstance(paths, list) for paths in lists):
            raise TypeError(data)
        if not all(type(path) is str for paths in lists for path in paths):
            raise TypeError(data)
        socket = data["socket"]
        if socket is not None and type(socket) is not str:
            raise TypeError(data)
        contents, files, folders = (tuple(paths) for paths in lists)
        return cls(contents, files, folders, socket)


def _cache_path() -> Path:
    return KsiPaths.from_env().cache_dir / CACHE_FILE


def _enabled() -> bool:
    return not switched_off(os.environ, SWITCH)


def serve(argv: Sequence[str]) -> int | None:
    """Print the kept answer to ``ksi-host ARGV`` and return its exit code; None: none is valid.

    Only ``ksi-host plugins`` keeps answers (:data:`ksi_host._entry.KEPT_COMMAND`).
    """
    if not _enabled():
        return None
    answer = _kept(read_cache(_cache_path(), stdlib_only=True), argv)
    if answer is None:
        return None
    inputs, key, stdout, code = answer
    if inputs.socket is not None and os.path.exists(inputs.socket):  # noqa: PTH110
        return None
    if _key(argv, inputs, time.time()) != key:
        return None
    sys.stdout.write(stdout)
    sys.stdout.flush()
    return code


def _answers(raw: object) -> list[Any]:
    if isinstance(raw, dict) and raw.get("format") == _FORMAT:
        answers = raw.get("answers")
        if isinstance(answers, list):
            return answers
    return []


def _kept(raw: object, argv: Sequence[str]) -> tuple[Inputs, str, str, int] | None:
    for answer in _answers(raw):
        if not isinstance(answer, dict) or answer.get("argv") != list(argv):
            continue
        try:
            inputs = Inputs.from_data(answer["inputs"])
            key, stdout, code = answer["key"], answer["stdout"], answer["exit"]
        except (KeyError, TypeError):
            return None
        if type(key) is str and type(stdout) is str and type(code) is int:
            return inputs, key, stdout, code
        return None
    return None


def _key(argv: Sequence[str], inputs: Inputs, now: float) -> str | None:
    """Every input of the answer, dated at ``now``; None when any cannot be (see above)."""
    scan = sys_path_key(now)
    if scan is None:
        return None
    dating = _Dating(int((now - SETTLE_SECONDS) * 1e9))
    try:
        environment = sorted(
            (name, value) for name, value in os.environ.items() if name not in _SHELL_VARIABLES
        )
        stamps: list[object] = [
            _FORMAT,
            __version__,
            list(argv),
            os.getcwd(),  # noqa: PTH109
            os.geteuid(),
            os.getegid(),
            environment,
            scan,
            _rules(dating),
            [_content(path, dating) for path in inputs.contents],
            [_dated(path, dating) for path in inputs.files],
            [_folder(path, dating) for path in inputs.folders],
        ]
    except OSError:
        return None
    if dating.hot:
        return None
    return hashlib.sha256(repr(stamps).encode()).hexdigest()


@dataclass
class _Dating:
    """Stamps taken for one key, ``settled`` ns since the epoch; ``hot`` once any is :data:`HOT`."""

    settled: int
    hot: bool = False

    def stamp(self, info: os.stat_result) -> Stamp:
        found = stamp(info, self.settled)
        self.hot = self.hot or found == HOT
        return found


def _dated(path: str, dating: _Dating) -> tuple[str, Stamp | None]:
    try:
        return path, dating.stamp(os.stat(path))  # noqa: PTH116
    except FileNotFoundError:
        return path, None


def _rules(dating: _Dating) -> list[tuple[str, Stamp | None]]:
    """Every file of ksi-host's own packages: its rules, its models, its built-in plugins."""
    files = []
    roots = [os.path.dirname(str(sys.modules["ksi_host"].__file__))]  # noqa: PTH120
    roots += list(ksi_plugins_builtin.__path__)
    for root in roots:
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
            files += [os.path.join(folder, name) for name in sorted(names)]  # noqa: PTH118
    return [_dated(file, dating) for file in files]


def _content(path: str, dating: _Dating) -> object:
    """A file read whole, and what its trust check sees; None for its stamp when missing."""
    try:
        info = os.stat(path)  # noqa: PTH116
    except FileNotFoundError:
        return path, None
    with open(path, "rb") as file:  # noqa: PTH123
        digest = hashlib.sha256(file.read()).hexdigest()
    owners = _owners(path) + _owners(os.path.dirname(os.path.abspath(path)))  # noqa: PTH100, PTH120
    return path, dating.stamp(info), digest, owners


def _owners(path: str) -> list[tuple[str, int, int, int]]:
    """Owner, group and mode of ``path`` (symlinks resolved) and of every folder above it."""
    owners = []
    here = os.path.realpath(path)
    while True:
        info = os.stat(here)  # noqa: PTH116
        owners.append((here, info.st_uid, info.st_gid, info.st_mode))
        parent = os.path.dirname(here)  # noqa: PTH120
        if parent == here:
            return owners
        here = parent


def _folder(path: str, dating: _Dating) -> object:
    """A plugin folder: each entry dated, and each package's ``__init__.py``."""
    found = _dated(path, dating)
    if found[1] is None or not os.path.isdir(path):  # noqa: PTH112
        return found
    with os.scandir(path) as scanned:
        names = sorted(entry.name for entry in scanned)
    entries = []
    for name in names:
        entry = os.path.join(path, name)  # noqa: PTH118
        dated = _dated(entry, dating)
        package = _dated(os.path.join(entry, "__init__.py"), dating)[1] if _is_dir(entry) else None  # noqa: PTH118
        entries.append((name, dated[1], package))
    return found, entries


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)  # noqa: PTH116
    except FileNotFoundError:
        return False


class _Watched:
    """``sys.stderr`` as it was, noting whether anything was written to it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream: Final = stream
        self.written = False

    def write(self, text: str) -> int:
        self.written = self.written or bool(text)
        return self.stream.write(text)

    def writelines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@dataclass
class Recording:
    """One ``plugins`` command on its way to an answer: when it started, what it said on stderr."""

    argv: tuple[str, ...]
    started: float
    stderr: _Watched

    def keep(self, stdout: str, code: int, inputs: Inputs) -> None:
        """Keep ``stdout`` and ``code`` as the answer, if nothing but ``inputs`` decided them."""
        if self.stderr.written:
            return
        key = _key(self.argv, inputs, self.started)
        if key is None:
            return
        path = _cache_path()
        answer = {
            "argv": list(self.argv),
            "key": key,
            "inputs": inputs.as_data(),
            "stdout": stdout,
            "exit": code,
        }
        others = [
            a
            for a in _answers(read_cache(path, stdlib_only=True))
            if a.get("argv") != answer["argv"]
        ]
        write_cache(path, {"format": _FORMAT, "answers": [answer, *others][:_KEPT]})


_CURRENT: list[Recording] = []


@contextmanager
def recording(argv: Sequence[str]) -> Iterator[None]:
    """Watch this ``ksi-host ARGV`` from its start, so that its answer can be kept."""
    if not _enabled():
        yield
        return
    watched = _Watched(sys.stderr)
    _CURRENT.append(Recording(tuple(argv), time.time(), watched))
    sys.stderr = cast(TextIO, watched)
    try:
        yield
    finally:
        sys.stderr = watched.stream
        _CURRENT.clear()


def current() -> Recording | None:
    """The recording of this process's command, when its entry point started one."""
    return _CURRENT[-1] if _CURRENT else None


@dataclass
class PlanWatch:
    """A reporter for one plan: the manifests it read, and whether code it did not date counted.

    A plugin file or module that is not disabled counts as undated: it is imported, or,
    when quarantined, recognised by the stats of its files
    (:func:`ksi_host._quarantine.fingerprint`). So does every import of a plugin but a
    built-in (ksi-host's own code, dated). An installed plugin without a manifest that
    is not disabled and was not imported was described from its kept description
    (:mod:`ksi_host._described_cache`), or is quarantined: it is ``described_by_code``,
    and its answer is kept only with the files that date its kept description.
    """

    manifests: list[str] = field(default_factory=list)
    described_by_code: list[Candidate] = field(default_factory=list)
    undated: bool = False

    def found(self, candidate: Candidate) -> None:
        if candidate.manifest is not None:
            self.manifests.append(str(candidate.manifest))
        elif candidate.disabled_by is not None or candidate.origin.kind == "builtin":
            return
        elif candidate.origin.kind == "entry-point":
            self.described_by_code.append(candidate)
        else:
            self.undated = True

    def importing(self, candidate: Candidate) -> None:
        if candidate.origin.kind != "builtin":
            self.undated = True

    def described(self, spec: PluginSpec) -> None:
        """Nothing to note."""

    def excluded(self, exclusion: Exclusion) -> None:
        """Nothing to note."""


def keep_plan_answer(
    stdout: str,
    code: int,
    *,
    config: HostConfig,
    config_file: Path | None,
    paths: Sequence[str],
    watch: PlanWatch,
    socket: Path | None,
    daemon: str | None,
) -> None:
    """Keep what ``plugins`` printed for ``config``'s plan, if only dated inputs decided it.

    ``watch`` reported on the plan, ``paths`` are its ``--plugin-path`` items, ``socket``
    is where its daemon was asked, and ``daemon`` names the one that answered.
    """
    kept = current()
    host = config.host
    if kept is None or daemon is not None or watch.undated or _pydantic_ran_plugins():
        return
    if paths or host.plugin_paths or host.isolated:
        return
    from ksi_host._discover import env_plugin_folders
    from ksi_host._quarantine import Quarantine

    described = _described_files(watch.described_by_code)
    if described is None:
        return
    where = KsiPaths.from_env()
    config_read = Path(config_file).expanduser() if config_file is not None else where.config_file
    inputs = Inputs(
        contents=(str(config_read), str(Quarantine.from_env().path)),
        files=(*watch.manifests, *described, *_code_ran()),
        folders=(*map(str, env_plugin_folders(os.environ)), str(where.plugins_dir)),
        socket=str(socket) if socket is not None else None,
    )
    kept.keep(stdout, code, inputs)


def _code_ran() -> list[str]:
    """The file of every module this process imported: ksi-host's and every library's.

    A library is dated by its installed metadata too (the ``sys.path`` key), but not
    a file of it edited in place, nor one an editable install keeps elsewhere.
    """
    found = (getattr(module, "__file__", None) for module in list(sys.modules.values()))
    return sorted({file for file in found if isinstance(file, str)})


def _described_files(candidates: Sequence[Candidate]) -> list[str] | None:
    """The files that date the kept description of each of ``candidates``; None if one has none."""
    if not candidates:
        return []
    from ksi_host._described_cache import DescribedCache

    known = DescribedCache.load()
    files = []
    for candidate in candidates:
        found = known.kept_files(candidate)
        if found is None:
            return None
        files += found
    return files


def _pydantic_ran_plugins() -> bool:
    """Whether pydantic loaded plugins of its own (code the answer did not date), or may have.

    Only pydantic's private table can say it loaded none; without it, it may have.
    """
    loader = sys.modules.get("pydantic.plugin._loader")
    return getattr(loader, "_plugins", None) != {}
