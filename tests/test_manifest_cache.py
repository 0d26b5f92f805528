"""The manifest cache: a manifest is parsed once per change, and the plan is the same either way."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ksi_host import _manifest_cache
from ksi_host._manifest import PluginManifest
from ksi_host._manifest_cache import CACHE_FILE
from ksi_host._paths import KsiPaths
from ksi_host._pipeline import build_plan
from ksi_host._plan import LoadPlan
from tests.dists import install_recorded, recorded_manifest


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The manifest files the cache had to parse and validate (the real reader still runs)."""
    seen: list[str] = []
    real = PluginManifest.read

    def counted(text: str, *, where: str) -> object:
        seen.append(Path(where).parent.name)
        return real(text, where=where)

    monkeypatch.setattr(_manifest_cache.PluginManifest, "read", counted)
    return seen


def _plan(env: dict[str, str]) -> LoadPlan:
    return build_plan(env=env, builtin_package=None)


def _seen(plan: LoadPlan) -> list[tuple[str, str | None, tuple[str, ...], tuple[str, ...]]]:
    return [
        (s.name, s.version, s.metadata.dependencies, s.capabilities.event_namespaces)
        for s in plan.order
    ]


def test_a_second_plan_reads_no_manifest_and_is_the_same_plan(
    site_dir: Path, ksi_env: dict[str, str], imports: Path, reads: list[str]
) -> None:
    install_recorded(site_dir, "mca", manifest=recorded_manifest("mca"))
    needs = recorded_manifest("mcb", dependencies=("mca>=1",), after_dependencies=("mca",))
    install_recorded(site_dir, "mcb", manifest=needs)
    first = _plan(ksi_env)
    assert sorted(reads) == ["mca_pkg", "mcb_pkg"]
    cache = KsiPaths.from_env(ksi_env).cache_dir / CACHE_FILE
    written = cache.stat().st_mtime_ns

    second = _plan(ksi_env)
    assert sorted(reads) == ["mca_pkg", "mcb_pkg"]  # nothing parsed again
    assert (
        _seen(second)
        == _seen(first)
        == [
            ("mca", "1.0", (), ("mca",)),
            ("mcb", "1.0", ("mca>=1",), ("mcb",)),
        ]
    )
    assert [s.metadata for s in second.order] == [s.metadata for s in first.order]
    assert [s.manifest for s in second.order] == [s.manifest for s in first.order]
    assert cache.stat().st_mtime_ns == written  # nothing new: not rewritten
    assert imports.read_text() == ""


def test_an_edit_that_keeps_size_and_mtime_is_read_again(
    site_dir: Path, ksi_env: dict[str, str], imports: Path, reads: list[str]
) -> None:
    install_recorded(site_dir, "mce", manifest=recorded_manifest("mce", version="1.0"))
    file = site_dir / "mce_pkg" / "ksi-plugin.toml"
    assert _seen(_plan(ksi_env))[0][1] == "1.0"
    before = file.stat()
    file.write_text(file.read_text().replace('version = "1.0"', 'version = "2.0"'))
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file.stat().st_size == before.st_size

    assert _seen(_plan(ksi_env))[0][1] == "2.0"
    assert reads == ["mce_pkg", "mce_pkg"]


def test_a_damaged_or_foreign_cache_is_ignored_and_rewritten(
    site_dir: Path, ksi_env: dict[str, str], imports: Path, reads: list[str]
) -> None:
    install_recorded(site_dir, "mcd", manifest=recorded_manifest("mcd"))
    expected = _seen(_plan(ksi_env))
    cache = KsiPaths.from_env(ksi_env).cache_dir / CACHE_FILE
    kept = json.loads(cache.read_text())

    cache.write_text("{not json")
    assert _seen(_plan(ksi_env)) == expected
    assert json.loads(cache.read_text()) == kept

    key = next(iter(kept["entries"]))
    damaged = {**kept, "entries": {key: {**kept["entries"][key], "metadata": 7}}}
    cache.write_text(json.dumps(damaged))
    assert _seen(_plan(ksi_env)) == expected

    foreign = {**kept["entries"][key], "metadata": {"not_a_field": 1}}
    cache.write_text(json.dumps({**kept, "entries": {key: foreign}}))
    assert _seen(_plan(ksi_env)) == expected

    cache.write_text(json.dumps({**kept, "rules": "another ksi-host"}))
    assert _seen(_plan(ksi_env)) == expected
    assert reads == ["mcd_pkg"] * 5


def test_kept_fields_rebuild_the_models_that_validating_made() -> None:
    """Values the metadata normalises (version, whitespace) are kept beside the manifest's."""
    text = (
        'name = "norm"\nversion = "01.0"\ndescription = "  spaced  "\n'
        'dependencies = ["a >= 1"]\nevent_namespaces = ["norm"]\nhooks = ["ksi_handle_event"]\n'
    )
    read = PluginManifest.read(text, where="ksi-plugin.toml")
    kept = json.loads(json.dumps(_manifest_cache.as_data(*read)))
    assert kept["metadata"] == {"version": "1.0", "description": "spaced"}
    rebuilt = _manifest_cache.from_data(kept)
    for model, again in zip(read, rebuilt, strict=True):
        assert again == model
        assert repr(again) == repr(model)
    assert rebuilt[1].key == "norm"
    assert [str(r) for r in rebuilt[1].requirements] == ["a>=1"]


def test_an_invalid_manifest_is_never_kept(
    site_dir: Path, ksi_env: dict[str, str], imports: Path, reads: list[str]
) -> None:
    install_recorded(site_dir, "mci", manifest='name = "mci"\nhooks = ["ksi_nope"]\n')
    for _ in range(2):
        [exclusion] = _plan(ksi_env).excluded
        assert exclusion.reason.code == "invalid-metadata"
        assert "ksi_nope" in exclusion.reason.message
    assert reads == ["mci_pkg", "mci_pkg"]


@pytest.mark.parametrize("exposed", [False, True])
def test_a_manifest_cache_another_user_can_change_is_ignored(
    site_dir: Path, ksi_env: dict[str, str], imports: Path, exposed: bool
) -> None:
    """A cached manifest is served only while nobody else can write the cache (see _cache_file)."""
    install_recorded(site_dir, "mct", manifest=recorded_manifest("mct", version="1.0"))
    assert _seen(_plan(ksi_env))[0][1] == "1.0"
    cache = KsiPaths.from_env(ksi_env).cache_dir / CACHE_FILE
    kept = json.loads(cache.read_text())
    for entry in kept["entries"].values():
        entry["metadata"]["version"] = "6.6.6"
    cache.write_text(json.dumps(kept))
    if exposed:
        cache.chmod(0o666)
    assert _seen(_plan(ksi_env))[0][1] == ("1.0" if exposed else "6.6.6")
