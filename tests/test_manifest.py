"""ksi-plugin.toml: the model, discovery through RECORD, describing without importing, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ksi_host._describe import describe, import_described
from ksi_host._discover import discover
from ksi_host._manifest import HOOKS, PluginManifest
from ksi_host._pipeline import build_plan
from ksi_host._plan import NOT_IMPORTED, PluginSpec, Reason
from ksi_host.errors import InvalidManifest
from tests.dists import install_dist, install_recorded, recorded_manifest
from tests.strategies import plugin_names

DOCS = Path(__file__).resolve().parents[1] / "docs"

# --- the model ---


def test_a_manifest_restates_metadata_and_capabilities():
    manifest = PluginManifest.from_toml(
        textwrap.dedent(
            """\
            name = "My_Store"
            version = "2.0"
            dependencies = ["database>=1.2,<2"]
            provides_services = ["storage"]
            commands = ["store:get"]
            hooks = ["ksi_startup", "ksi_handle_event"]
            config_model = "my_store.config:Settings"
            activation = "lazy"
            """
        ),
        where="ksi-plugin.toml",
    )
    assert manifest.metadata().key == "my-store"
    assert manifest.metadata().dependencies == ("database>=1.2,<2",)
    assert manifest.capabilities().commands == ("store:get",)
    assert manifest.hooks == ("ksi_handle_event", "ksi_startup")
    assert not manifest.starts_eagerly


def test_every_problem_of_a_manifest_is_reported_at_once():
    text = 'name = "x"\nversion = "one"\nhooks = ["ksi_handle_events"]\ncolour = "red"\n'
    with pytest.raises(InvalidManifest) as caught:
        PluginManifest.from_toml(text, where="/site/x/ksi-plugin.toml")
    error = caught.value
    assert error.file == "/site/x/ksi-plugin.toml"
    assert any(p.startswith("hooks:") and "'ksi_handle_events'" in p for p in error.problems)
    assert any(p.startswith("colour:") for p in error.problems)
    assert "ksi-host manifest MODULE -o PACKAGE/ksi-plugin.toml" in error.render()


def test_values_the_metadata_refuses_are_refused_in_the_manifest_too():
    text = 'name = "x"\ndependencies = ["not a requirement!"]\nhooks = ["ksi_startup"]\n'
    with pytest.raises(InvalidManifest) as caught:
        PluginManifest.from_toml(text, where="m.toml")
    (problem,) = caught.value.problems
    assert problem.startswith("dependencies[0] = ")
    assert "'not a requirement!' is not a requirement" in problem


def test_bad_toml_says_where():
    with pytest.raises(InvalidManifest) as caught:
        PluginManifest.from_toml('name = "x\n', where="m.toml")
    assert "not valid TOML" in caught.value.problems[0]
    assert "line 1" in caught.value.problems[0]


@pytest.mark.parametrize(
    ("changes", "eager"),
    [
        ({}, False),
        ({"activation": "startup"}, True),
        ({"event_namespaces": ()}, True),  # declares nothing: sees every event
        ({"hooks": ("ksi_filter_event", "ksi_handle_event")}, True),
        ({"hooks": ("ksi_metrics_collected", "ksi_handle_event")}, True),
        ({"hooks": ("ksi_validate_event", "ksi_startup")}, False),
    ],
)
def test_which_lazy_manifests_start_at_start_up(changes, eager):
    text = recorded_manifest("lz", **changes)
    assert PluginManifest.from_toml(text, where="m").starts_eagerly is eager


_texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)


@given(
    name=plugin_names,
    description=_texts,
    author=_texts,
    hooks=st.lists(st.sampled_from(HOOKS), min_size=1, unique=True),
    lazy=st.booleans(),
)
def test_to_toml_reads_back_as_the_same_manifest(name, description, author, hooks, lazy):
    manifest = PluginManifest(
        name=name,
        description=description.strip(),
        author=author.strip(),
        hooks=tuple(hooks),
        activation="lazy" if lazy else "startup",
    )
    assert PluginManifest.from_toml(manifest.to_toml(), where="m") == manifest


def test_the_documented_json_schema_is_the_models():
    documented = json.loads((DOCS / "ksi-plugin.schema.json").read_text())
    assert documented == PluginManifest.model_json_schema()


# --- discovery and describe ---


def test_discovery_finds_a_manifest_only_where_record_lists_it(
    site_dir: Path, ksi_env: dict[str, str]
) -> None:
    install_recorded(site_dir, "mf_listed", manifest=recorded_manifest("mf_listed"))
    install_recorded(site_dir, "mf_stray", manifest=recorded_manifest("mf_stray"), recorded=False)
    install_recorded(site_dir, "mf_none")

    found = {c.name_hint: c for c in discover(env=ksi_env, builtin_package=None)}

    assert found["mf_listed"].manifest == site_dir / "mf_listed_pkg" / "ksi-plugin.toml"
    assert found["mf_stray"].manifest is None
    assert found["mf_none"].manifest is None


def test_a_package_two_entry_points_share_has_no_manifest(
    site_dir: Path, ksi_env: dict[str, str]
) -> None:
    install_dist(
        site_dir,
        dist="ksi-mf-two",
        version="1.0",
        files={
            "mf_two/__init__.py": "",
            "mf_two/ksi-plugin.toml": recorded_manifest("mf_two_a"),
        },
        entry_points={"mf_two_a": "mf_two.a", "mf_two_b": "mf_two.b"},
    )
    found = [c for c in discover(env=ksi_env, builtin_package=None) if c.name_hint[:6] == "mf_two"]
    assert [c.manifest for c in found] == [None, None]


def test_a_manifest_describes_the_plugin_without_importing_it(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(site_dir, "mf_lazy", manifest=recorded_manifest("mf_lazy"))

    plan = build_plan(env=ksi_env, builtin_package=None)

    (spec,) = [s for s in plan.order if s.name == "mf_lazy"]
    assert spec.plugin is NOT_IMPORTED
    assert spec.lazy
    assert spec.capabilities.event_namespaces == ("mf_lazy",)
    assert spec.hooks == ("ksi_handle_event",)
    assert "mf_lazy_pkg" not in sys.modules
    assert imports.read_text() == ""


def test_an_invalid_manifest_excludes_the_plugin_and_names_the_file(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(site_dir, "mf_bad", manifest='name = "mf_bad"\nhooks = []\n')

    plan = build_plan(env=ksi_env, builtin_package=None)

    (excluded,) = [e for e in plan.excluded if e.name == "mf_bad"]
    assert excluded.reason.code == "invalid-metadata"
    assert str(site_dir / "mf_bad_pkg" / "ksi-plugin.toml") in excluded.reason.message
    assert "hooks" in excluded.reason.message
    assert imports.read_text() == ""


def test_importing_a_described_plugin_checks_the_code_field_by_field(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(
        site_dir,
        "mf_stale",
        manifest=recorded_manifest("mf_stale", version="0.9", commands=("mf_stale:go",)),
    )
    install_recorded(site_dir, "mf_fresh", manifest=recorded_manifest("mf_fresh"))
    specs = {s.name: s for s in build_plan(env=ksi_env, builtin_package=None).order}

    stale = import_described(specs["mf_stale"])
    fresh = import_described(specs["mf_fresh"])

    assert isinstance(stale, Reason)
    assert stale.code == "manifest-mismatch"
    assert stale.differences == (
        "version: manifest says '0.9', code says '1.0'",
        "commands: manifest says ['mf_stale:go'], code says []",
    )
    assert "ksi-host manifest mf_stale_pkg --lazy -o " in stale.hint
    assert isinstance(fresh, PluginSpec)
    assert fresh.imported
    assert imports.read_text().split() == ["mf_stale", "mf_fresh"]


def test_describe_can_ignore_manifests_and_import(
    site_dir: Path, ksi_env: dict[str, str], imports: Path
) -> None:
    install_recorded(site_dir, "mf_code", manifest=recorded_manifest("mf_code"))
    candidates = [
        c for c in discover(env=ksi_env, builtin_package=None) if c.name_hint == "mf_code"
    ]

    (spec,) = describe(candidates, manifests=False).specs

    assert spec.imported
    assert spec.hooks == ("ksi_handle_event",)
    assert imports.read_text().split() == ["mf_code"]


# --- the command ---


def _cli(*args: str, site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(site), "HOME": str(cwd), "KSI_HOME": str(cwd / ".ksi")}
    env["KSI_TEST_IMPORTS"] = str(cwd / "imports.log")
    return subprocess.run(
        [sys.executable, "-m", "ksi_host", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def cli_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("manifest-site")
    install_recorded(site, "mc_ok", manifest=recorded_manifest("mc_ok"))
    install_recorded(site, "mc_stale", manifest=recorded_manifest("mc_stale", version="3"))
    install_recorded(site, "mc_plain")
    return site


def test_manifest_prints_the_toml_of_the_code(cli_site: Path, tmp_path: Path) -> None:
    done = _cli("manifest", "mc_ok_pkg", site=cli_site, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = PluginManifest.from_toml(done.stdout, where="stdout")
    assert manifest == PluginManifest.from_toml(recorded_manifest("mc_ok"), where="x").model_copy(
        update={"activation": "startup"}
    )

    lazy = _cli(
        "manifest", "mc_ok_pkg:plugin", "--lazy", "-o", "out.toml", site=cli_site, cwd=tmp_path
    )
    assert lazy.returncode == 0, lazy.stderr
    assert lazy.stdout == ""
    assert (tmp_path / "out.toml").read_text() == recorded_manifest("mc_ok")


def test_manifest_of_something_that_is_not_a_plugin_says_why(
    cli_site: Path, tmp_path: Path
) -> None:
    (tmp_path / "nothing.py").write_text("x = 1\n")
    done = _cli("manifest", str(tmp_path / "nothing.py"), site=cli_site, cwd=tmp_path)
    assert done.returncode == 1
    assert "has no `plugin`" in done.stderr
    assert done.stdout == ""


def test_check_reports_each_disagreeing_field(cli_site: Path, tmp_path: Path) -> None:
    done = _cli("manifest", "--check", site=cli_site, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(line.startswith("ok   mc_ok (") for line in lines)
    stale = lines.index(next(line for line in lines if line.startswith("FAIL mc_stale")))
    assert lines[stale + 1].strip() == "version: manifest says '3', code says '1.0'"
    assert "ksi-host manifest mc_stale_pkg --lazy -o" in lines[stale + 2]
    assert "mc_plain" not in done.stdout

    one = _cli("manifest", "--check", "mc_ok_pkg", site=cli_site, cwd=tmp_path)
    assert one.returncode == 0, one.stdout + one.stderr
    missing = _cli("manifest", "--check", "mc_plain_pkg", site=cli_site, cwd=tmp_path)
    assert missing.returncode == 1
    assert "there is no" in missing.stderr
    assert "ksi-host manifest mc_plain_pkg -o" in missing.stderr


def test_plugins_and_events_read_manifests_without_importing(
    cli_site: Path, tmp_path: Path
) -> None:
    listed = _cli("plugins", "--json", site=cli_site, cwd=tmp_path)
    events = _cli("events", site=cli_site, cwd=tmp_path)
    assert "mc_ok" in listed.stdout
    assert "mc_ok:*" in events.stdout
    assert (tmp_path / "imports.log").read_text().split() == ["mc_plain"] * 2


def test_the_schema_option_prints_the_documented_schema(cli_site: Path, tmp_path: Path) -> None:
    done = _cli("manifest", "--schema", site=cli_site, cwd=tmp_path)
    assert json.loads(done.stdout) == json.loads((DOCS / "ksi-plugin.schema.json").read_text())


def test_doctor_imports_each_manifest_plugin_and_reports_each_disagreeing_field(
    cli_site: Path, tmp_path: Path
) -> None:
    done = _cli("doctor", "--json", site=cli_site, cwd=tmp_path)
    report = json.loads(done.stdout)
    mismatches = [p for p in report["problems"] if p["code"] == "manifest-mismatch"]
    assert [p["plugin"] for p in mismatches] == ["mc_stale"]
    (problem,) = mismatches
    file = cli_site / "mc_stale_pkg" / "ksi-plugin.toml"
    assert problem["what"] == (
        f"mc_stale: {file} disagrees with the code:\n"
        "    version: manifest says '3', code says '1.0'"
    )
    assert problem["fix"] == f"ksi-host manifest mc_stale_pkg --lazy -o {file}"
    assert "`ksi-host run` fails it when it imports it" in problem["note"]
    assert done.returncode == 1
    # The plan is the one `plugins` shows (from the manifests, importing nothing here):
    # each plugin was imported once, by doctor's worker, to check it.
    statuses = {line["name"]: line["status"] for line in report["plugins"]}
    assert statuses["mc_ok"] == statuses["mc_stale"] == "loadable"
    assert sorted((tmp_path / "imports.log").read_text().split()) == [
        "mc_ok",
        "mc_plain",
        "mc_stale",
    ]
