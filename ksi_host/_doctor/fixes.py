"""Each reason a plugin will not load, as a :class:`Problem` whose ``fix`` can be pasted.

Commands are chosen from what is known about the plugin: a distribution gets a
``pip`` command, a plugin file gets ``${EDITOR:-vi} +LINE FILE`` at the line the
traceback blames, and anything else can at least be skipped with
``export KSI_DISABLE_PLUGINS=...``. A guessed command says it is a guess.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ksi_host._discover import env_disabled
from ksi_host._doctor.outcome import Outcome
from ksi_host._doctor.report import Problem, Severity
from ksi_host._host_version import satisfies
from ksi_host._manifest import Activation, PluginManifest, regenerate_command
from ksi_host._plan import Candidate, Exclusion, LoadPlan, Origin, PlanWarning, PluginSpec
from ksi_host._quarantine import REENABLE
from ksi_host._schema import PluginEntry
from ksi_host._trust import TRUST_SETTING, TrustPolicy, distrust
from ksi_host.errors import InvalidManifest

__all__ = ["PIP", "Fixes", "blame", "edit"]

_GUESS_PREFIX: Final = "ksi-plugin-"
PIP: Final = f"{shlex.quote(sys.executable)} -m pip"
"""The pip of the interpreter running ksi-host, so a pasted fix installs where it is needed."""


def edit(file: str | Path, line: int | None = None) -> str:
    """The command that opens ``file`` at ``line`` in the user's editor."""
    at = f"+{line} " if line else ""
    return f"${{EDITOR:-vi}} {at}{shlex.quote(str(file))}"


def blame(frames: Sequence[tuple[str, int]], candidate: Candidate) -> tuple[str, int] | None:
    """The innermost frame (of a traceback or faulthandler dump) inside the plugin's own code."""
    roots = [Path(root).resolve() for root in _own_roots(candidate)]
    mine = [f for f in frames if any(Path(f[0]).resolve().is_relative_to(r) for r in roots)]
    return mine[-1] if mine else None


def _own_roots(candidate: Candidate) -> list[str]:
    if candidate.file is not None:
        is_package = candidate.file.name == "__init__.py"
        return [str(candidate.file.parent if is_package else candidate.file)]
    target = candidate.entry_point or candidate.module or ""
    top = target.partition(":")[0].partition(".")[0].strip()
    try:
        spec = importlib.util.find_spec(top) if top else None
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return list(spec.submodule_search_locations)
    return [spec.origin] if spec.origin else []


class Fixes:
    """Turns exclusions and worker findings into problems, knowing the whole plan."""

    def __init__(
        self,
        plan: LoadPlan,
        outcomes: Sequence[Outcome],
        *,
        env: Mapping[str, str],
        disabled: Mapping[str, str],
        config_path: Path,
        trust: TrustPolicy,
    ) -> None:
        self.trust = trust
        self.plan = plan
        self.env = env
        self.disabled = disabled
        self.config_path = config_path
        self.by_origin = {o.candidate.origin: o for o in outcomes}
        self.specs: dict[str, PluginSpec] = {}
        for spec in (*plan.order, *(e.spec for e in plan.excluded if e.spec is not None)):
            self.specs.setdefault(spec.key, spec)
        self.owner = {id(e.reason): e.name for e in plan.excluded}

    def problem(self, exclusion: Exclusion) -> Problem:
        """Why ``exclusion`` will not load, and the command that fixes it."""
        code = exclusion.reason.code
        outcome = self.by_origin.get(exclusion.origin)
        if outcome is not None and outcome.failure is not None:
            return self._failure(exclusion, outcome)
        builders = {
            "disabled": self._disabled,
            "shadowed": self._shadowed,
            "untrusted": self._untrusted,
            "import-error": self._import_error,
            "hook-mismatch": self._hook,
            "config-invalid": self._config_invalid,
            "host-version": self._host_version,
            "missing-dependency": self._missing,
            "version-conflict": self._conflict,
            "cycle": self._cycle,
            "ambiguous-service": self._ambiguous,
            "dependency-excluded": self._dependency_excluded,
            "quarantined": self._quarantined,
            "manifest-mismatch": self._manifest_mismatch,
        }
        return builders.get(code, self._bad_plugin)(exclusion)

    def unknown_sections(self, sections: Mapping[str, Any]) -> list[Problem]:
        """Config sections no plugin found here reads: a typo, or a plugin not installed."""
        return [
            Problem(
                code="config-unknown-section",
                severity="warning",
                what=f"the config has a [{key}] section, but no plugin named {key!r} was found",
                where=f"{self.config_path}:{self._table_line(key) or 1}",
                fix=edit(self.config_path, self._table_line(key)),
                note="fix the table's name, remove it, or install the plugin it configures",
            )
            for key in sections
            if key not in self.specs
        ]

    def warning(self, warning: PlanWarning) -> Problem:
        """A note from the plan: the plugins it names still load."""
        fix = (
            edit(self.config_path) if warning.code in ("duplicate-command", "choice-unused") else ""
        )
        return Problem(
            code=warning.code,
            severity="warning",
            plugin=warning.plugins[0] if len(warning.plugins) == 1 else None,
            what=warning.message,
            where="load plan (ksi-host plugins)",
            fix=fix,
            note=warning.hint,
        )

    def live(self, entry: PluginEntry, socket: str) -> Problem:
        """A plugin the running daemon does not run though the plan would: failed or missing."""
        reason = entry.reason
        assert reason is not None
        if reason.code == "not-running":
            fix = "ksi-host reload"
            note = "loads it into the running daemon (or restart `ksi-host run`)"
        else:
            fix = self._disable_fix(entry.name)
            note = f"{reason.hint}; the daemon runs without it until it is fixed and reloaded"
        return Problem(
            code=reason.code,
            severity="error",
            plugin=entry.name,
            what=reason.message,
            where=f"the daemon on {socket} ({entry.source})",
            fix=fix,
            note=note,
            traceback=reason.traceback,
        )

    # --- one builder per reason code ---

    def _disabled(self, exclusion: Exclusion) -> Problem:
        key = canonicalize_name(exclusion.name)
        setting = self.disabled.get(key, "")
        if setting == "KSI_DISABLE_PLUGINS":
            rest = [n for n in env_disabled(self.env) if canonicalize_name(n) != key]
            fix = (
                f"export KSI_DISABLE_PLUGINS={','.join(rest)}"
                if rest
                else ("unset KSI_DISABLE_PLUGINS")
            )
        else:
            fix = edit(self.config_path)
        return self._make(
            exclusion,
            "info",
            fix,
            note=f"to load it again, remove {exclusion.name!r} from {setting or 'that list'}",
        )

    def _shadowed(self, exclusion: Exclusion) -> Problem:
        origin = exclusion.origin
        if origin.distribution:
            fix = f"{PIP} uninstall {origin.distribution}"
        elif origin.kind in ("folder", "user", "path") and Path(origin.location).exists():
            fix = f"rm -r {shlex.quote(origin.location)}"
        else:
            fix = ""
        note = "removes the copy that is not used; " + exclusion.reason.hint
        return self._make(exclusion, "warning", fix, note=note)

    def _import_error(self, exclusion: Exclusion) -> Problem:
        reason, candidate = exclusion.reason, self._candidate(exclusion)
        dist = exclusion.origin.distribution
        missing = reason.module
        where = blame(reason.frames, candidate) if candidate else None
        if candidate and candidate.file and not candidate.file.exists():
            fix = self._missing_path_fix(candidate.file)
            note = "create it, or remove it from --plugin-path / [host] plugin_paths"
        elif missing and dist:
            module = missing.partition(".")[0]
            fix = f'{PIP} install --force-reinstall "{dist}"'
            note = (
                f"{dist} imports {module!r}, which is not installed; reinstalling installs "
                f"its declared dependencies (if it declares none: {PIP} install {module})"
            )
        elif missing:
            module = missing.partition(".")[0]
            fix = f"{PIP} install {module}"
            note = f"a guess: the distribution that provides {module!r} is usually named like it"
        elif where:
            fix, note = edit(*where), _last_line(reason.traceback)
        elif dist:
            fix, note = f'{PIP} install --force-reinstall "{dist}"', _last_line(reason.traceback)
        else:
            fix, note = self._disable_fix(exclusion.name), reason.hint
        return self._make(
            exclusion, "error", fix, note=note, where=where, traceback=reason.traceback
        )

    def _missing_path_fix(self, path: Path) -> str:
        """Edit the config line that names a missing plugin path, or create the folder."""
        for number, text in enumerate(_read_lines(self.config_path), start=1):
            if path.name in text:
                return edit(self.config_path, number)
        return edit(path) if path.suffix == ".py" else f"mkdir -p {shlex.quote(str(path))}"

    def _failure(self, exclusion: Exclusion, outcome: Outcome) -> Problem:
        assert outcome.failure is not None
        reason, failure = exclusion.reason, outcome.failure
        where = blame(reason.frames, outcome.candidate)
        dist = exclusion.origin.distribution
        skip = self._disable_fix(exclusion.name)
        if where:
            fix, note = edit(*where), f"the line it was running; to skip the plugin: {skip}"
        elif dist:
            fix = f'{PIP} install --force-reinstall "{dist}"'
            note = f"reinstall in case a file is damaged; to skip the plugin: {skip}"
        else:
            fix, note = skip, "doctor went on without it; its last output is below"
        return self._make(
            exclusion,
            "error",
            fix,
            code="import-timeout" if failure.kind == "timeout" else "import-crashed",
            note=note,
            where=where,
            traceback=reason.traceback,
        )

    def _hook(self, exclusion: Exclusion) -> Problem:
        reason = exclusion.reason
        file, line, hook = reason.path, reason.line, reason.hook
        rename = reason.suggestion
        if file and hook and rename:
            fix = f"sed -i 's/\\b{hook}\\b/{rename}/' {shlex.quote(file)}"
        else:
            fix = edit(file, line) if file else self._disable_fix(exclusion.name)
        return self._make(
            exclusion,
            "error",
            fix,
            note=reason.hint,
            where=(file, line) if file and line else None,
        )

    def _quarantined(self, exclusion: Exclusion) -> Problem:
        return self._make(
            exclusion, "error", f"{REENABLE} {exclusion.name}", note=exclusion.reason.hint
        )

    def _untrusted(self, exclusion: Exclusion) -> Problem:
        path = exclusion.reason.path
        unsafe = distrust(Path(path), self.trust) if path else None
        return self._make(
            exclusion,
            "error",
            unsafe.fix if unsafe else self._disable_fix(exclusion.name),
            note=f"or, if you trust whoever can change it, add it to {TRUST_SETTING} "
            "in the config; until then the host starts without this plugin",
        )

    def _config_invalid(self, exclusion: Exclusion) -> Problem:
        table = self._table_line(canonicalize_name(exclusion.name))
        field = exclusion.reason.key
        line = self._key_line(table, field.partition(".")[0]) if table and field else table
        return self._make(
            exclusion,
            "error",
            edit(self.config_path, line),
            note=f"correct the [{exclusion.name}] table so it matches the plugin's "
            "config_model; until then the host starts without this plugin",
            where=(str(self.config_path), line) if line else None,
        )

    def _host_version(self, exclusion: Exclusion) -> Problem:
        wanted = exclusion.reason.requirement or "ksi-host"
        return self._make(
            exclusion,
            "error",
            f'{PIP} install --upgrade "{wanted}"',
            note=f"or skip {exclusion.name}: {self._disable_fix(exclusion.name)}",
        )

    def _bad_plugin(self, exclusion: Exclusion) -> Problem:
        """``not-a-plugin`` or ``invalid-metadata``: the plugin's own code must change."""
        reason, candidate = exclusion.reason, self._candidate(exclusion)
        where = blame(reason.frames, candidate) if candidate else None
        file = where[0] if where else self._source_file(exclusion) or _origin_file(exclusion.origin)
        fix = edit(file, where[1] if where else None) if file else self._disable_fix(exclusion.name)
        return self._make(
            exclusion, "error", fix, note=reason.hint, where=where, traceback=reason.traceback
        )

    def _manifest_mismatch(self, exclusion: Exclusion) -> Problem:
        """The shipped ``ksi-plugin.toml`` says otherwise than the code: one line per field."""
        reason, candidate = exclusion.reason, self._candidate(exclusion)
        fields = "".join(f"\n    {line}" for line in reason.differences)
        return self._make(
            exclusion,
            "error",
            regenerate_command(candidate, _activation(candidate.manifest))
            if candidate
            else reason.hint,
            what=f"{exclusion.name}: {candidate.manifest if candidate else 'its manifest'} "
            f"disagrees with the code:{fields}",
            note="the host plans with the manifest and refuses a plugin whose code disagrees; "
            "regenerate the manifest from the code (then rebuild and reinstall the distribution)",
        )

    def _missing(self, exclusion: Exclusion) -> Problem:
        wanted = _requirement(exclusion)
        if wanted is None:
            return self._make(exclusion, "error", self._disable_fix(exclusion.name))
        guess = f"{_GUESS_PREFIX}{canonicalize_name(wanted.name)}"
        return self._make(
            exclusion,
            "error",
            f'{PIP} install "{guess}{wanted.specifier}"',
            note=f"a guess: no installed distribution provides {wanted.name!r}, and plugins "
            f"are usually published as {guess}; or skip {exclusion.name}: "
            f"{self._disable_fix(exclusion.name)}",
        )

    def _conflict(self, exclusion: Exclusion) -> Problem:
        requirement, found = _requirement(exclusion), exclusion.reason.providers
        provider = self.specs.get(canonicalize_name(found[0])) if found else None
        if requirement is None or provider is None:
            return self._make(exclusion, "error", self._disable_fix(exclusion.name))
        dist, installed = provider.origin.distribution, provider.origin.dist_version
        if dist and installed and satisfies(requirement, installed):
            fix = self._disable_fix(exclusion.name)
            note = (
                f"{dist} {installed} is installed and would match, but {provider.name} says it "
                f"is version {provider.version}: pip would answer 'Requirement already "
                f"satisfied'; ask its author to make PluginMetadata(version=...) match"
            )
        elif dist:
            fix = f'{PIP} install "{dist}{requirement.specifier}"'
            note = f"{provider.name} comes from the distribution {dist}"
        else:
            file = _origin_file(provider.origin)
            fix = edit(file) if file else ""
            note = (
                f"{provider.name} is a plugin file, not a distribution: replace it with "
                f"a version that matches '{requirement.specifier}'"
            )
        return self._make(exclusion, "error", fix, note=f"{note}; {exclusion.reason.hint}")

    def _cycle(self, exclusion: Exclusion) -> Problem:
        path = exclusion.reason.cycle
        after = path[1] if len(path) > 1 else ""
        file = self._source_file(exclusion) or _origin_file(exclusion.origin)
        line = _line_naming(file, after) if file else None
        fix = edit(file, line) if file else self._disable_fix(exclusion.name)
        return self._make(
            exclusion,
            "error",
            fix,
            note=f"remove {after!r} from the dependencies (or after_dependencies) of "
            f"{exclusion.name}, or from another plugin on the cycle",
            where=(file, line) if file and line else None,
        )

    def _ambiguous(self, exclusion: Exclusion) -> Problem:
        requirement, found = _requirement(exclusion), exclusion.reason.providers
        if requirement is None or len(found) < 2:
            return self._make(exclusion, "error", self._disable_fix(exclusion.name))
        keep, service = found[0], requirement.name
        return self._make(
            exclusion,
            "error",
            self._disable_fix(*found[1:]),
            note=f"keeps {keep} as the provider of {service!r}; or choose one in the config: "
            f'[host.services] {service} = "{keep}"',
        )

    def _dependency_excluded(self, exclusion: Exclusion) -> Problem:
        cause = exclusion.reason.cause
        parent = self.owner.get(id(cause)) if cause is not None else None
        root = exclusion.reason.root
        root_owner = self.owner.get(id(root), "its dependency")
        return self._make(
            exclusion,
            "error",
            self._disable_fix(exclusion.name),
            note=f"or fix the root cause ({root.code} of {root_owner}) and it loads again",
            caused_by=parent,
        )

    # --- helpers ---

    def _make(
        self,
        exclusion: Exclusion,
        severity: Severity,
        fix: str,
        *,
        code: str | None = None,
        what: str | None = None,
        note: str = "",
        where: tuple[str, int | None] | None = None,
        traceback: str | None = None,
        caused_by: str | None = None,
    ) -> Problem:
        place = f"{where[0]}:{where[1]}" if where and where[1] else (where[0] if where else "")
        origin = str(exclusion.origin)
        return Problem(
            code=code or exclusion.reason.code,
            severity=severity,
            plugin=exclusion.spec.name if exclusion.spec else exclusion.name,
            what=what or exclusion.reason.message,
            where=f"{place} (from {origin})" if place else _where(exclusion.origin),
            fix=fix,
            note=note,
            caused_by=caused_by,
            traceback=traceback,
        )

    def _candidate(self, exclusion: Exclusion) -> Candidate | None:
        outcome = self.by_origin.get(exclusion.origin)
        return outcome.candidate if outcome else None

    def _source_file(self, exclusion: Exclusion) -> str | None:
        outcome = self.by_origin.get(exclusion.origin)
        return outcome.source_file if outcome else None

    def _disable_fix(self, *names: str) -> str:
        current = env_disabled(self.env)
        keys = {canonicalize_name(n) for n in current}
        added = [n for n in names if canonicalize_name(n) not in keys]
        return f"export KSI_DISABLE_PLUGINS={','.join([*current, *added])}"

    def _key_line(self, table: int, key: str) -> int:
        """The line setting ``key`` in the table that starts at line ``table``, else the table."""
        lines = _read_lines(self.config_path)
        for number in range(table + 1, len(lines) + 1):
            text = lines[number - 1]
            if text.lstrip().startswith("["):  # the next table (or array of tables)
                break
            name = text.partition("=")[0].strip().strip("\"'")
            if "=" in text and name == key:
                return number
        return table

    def _table_line(self, key: str) -> int | None:
        """The line of the config file that opens table ``[key]`` (``["key"]`` too)."""
        for number, text in enumerate(_read_lines(self.config_path), start=1):
            header = text.strip()
            if not header.startswith("[") or header.startswith("[["):
                continue
            name = header[1:].partition("]")[0].strip().strip("\"'")
            if name and canonicalize_name(name) == key:
                return number
        return None


def _activation(file: Path | None) -> Activation:
    """What the shipped manifest asks for, so regenerating it keeps the author's choice."""
    try:
        text = file.read_text(encoding="utf-8") if file else ""
        return PluginManifest.from_toml(text, where=str(file)).activation
    except (OSError, UnicodeDecodeError, InvalidManifest):
        return "startup"


def _requirement(exclusion: Exclusion) -> Requirement | None:
    """The dependency at fault, as the resolver recorded it."""
    text = exclusion.reason.requirement
    return Requirement(text) if text else None


def _where(origin: Origin) -> str:
    if origin.distribution:
        return f"{origin} -> {origin.location}"
    return origin.location


def _origin_file(origin: Origin) -> str | None:
    path = Path(origin.location)
    if origin.kind == "entry-point" or not path.exists():
        return None
    return str(path / "__init__.py" if path.is_dir() else path)


def _line_naming(file: str, name: str) -> int | None:
    """The first line that names ``name`` in quotes, e.g. in ``dependencies=[...]``."""
    lines = _read_lines(Path(file))
    quoted = (f"'{name}", f'"{name}')
    for number, text in enumerate(lines, start=1):
        if any(q in text for q in quoted) and "depend" in text:
            return number
    for number, text in enumerate(lines, start=1):
        if any(q in text for q in quoted):
            return number
    return None


def _read_lines(file: Path) -> list[str]:
    """A file's lines, or none when it cannot be read: a fix is then less precise, not wrong."""
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []


def _last_line(traceback: str | None) -> str:
    lines = (traceback or "").strip().splitlines()
    return lines[-1] if lines else ""
