"""``ksi-host plugins --graph``: the tree, DOT, Mermaid and ``--why``, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import subprocess_env

from ksi_host import __version__

V = __version__

PLUGIN = """\
from ksi_host.plugin_base import BasePlugin, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata


class P(BasePlugin):
    @hookimpl
    def ksi_startup(self):
        return None


plugin = P(
    PluginMetadata(name={name!r}, version={version!r}, dependencies={deps!r},
                   after_dependencies={after!r}),
    PluginCapabilities(provides_services={services!r}),
)
"""

WORLD = {
    "notes": ("1.2.0", ["state>=0.1"], [], []),
    "sqlite_store": ("2.0", [], [], ["database"]),
    "cache": ("1.0", ["database"], [], []),
    "reporter": ("0.3", ["notes~=1.2"], ["metrics"], []),
    "needy": ("1.0", ["ghost>=2"], [], []),
    "chain": ("0.1", ["needy"], [], []),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A plugin folder with plugin, service and after-dependencies, a missing one, a broken one."""
    root = tmp_path_factory.mktemp("graph")
    folder = root / "plugins"
    folder.mkdir()
    for name, (version, deps, after, services) in WORLD.items():
        (folder / f"{name}.py").write_text(
            PLUGIN.format(name=name, version=version, deps=deps, after=after, services=services)
        )
    (folder / "broken.py").write_text("import no_such_module_here\n")
    env = {**subprocess_env(root / "home"), "KSI_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return folder, env


def _graph(world: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    folder, env = world
    return subprocess.run(
        [sys.executable, "-m", "ksi_host", "plugins", "--plugin-path", str(folder), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def _positions(world: tuple[Path, dict[str, str]]) -> dict[str, int]:
    """Each loadable plugin's place in the load order, as ``plugins --json`` gives it."""
    report = json.loads(_graph(world, "--json").stdout)
    return {p["name"]: p["position"] for p in report["plugins"] if p["position"] is not None}


def test_the_tree_puts_each_plugin_under_what_it_needs_and_lists_the_excluded(world):
    result = _graph(world, "--graph")
    assert result.returncode == 1  # a plugin cannot load, as for `plugins`
    folder = world[0]
    positions = _positions(world)
    lines = result.stdout.splitlines()
    assert lines[0] == f"{len(positions)} plugin(s) will load; each is shown under what it needs"
    roots = [line for line in lines[1 : lines.index("not loading:")] if line[0] not in " └├│"]
    needing = {"notes", "reporter", "cache"}
    assert [root.split()[0] for root in roots] == [
        name for name in sorted(positions, key=positions.__getitem__) if name not in needing
    ]

    def under(root: str) -> list[str]:
        start = lines.index(root) + 1
        end = next(i for i in range(start, len(lines)) if lines[i][0] not in " └├│")
        return lines[start:end]

    assert under(f"metrics {V}  [loadable]") == ["└── reporter 0.3  [loadable]  (after metrics)"]
    assert under("sqlite_store 2.0  [loadable]") == [
        "└── cache 1.0  [loadable]  (needs service database: sqlite_store 2.0)"
    ]
    assert under(f"state {V}  [loadable]") == [
        f"└── notes 1.2.0  [loadable]  (needs state>=0.1: {V})",
        "    └── reporter 0.3  [loadable]  (needs notes~=1.2: 1.2.0)",
    ]
    assert under(f"health {V}  [loadable]") == []
    assert lines[lines.index("not loading:") :] == [
        "not loading:",
        "  broken  [excluded]",
        f"    import-error: broken from path {folder / 'broken.py'} failed to import: "
        "ModuleNotFoundError: No module named 'no_such_module_here'",
        "  chain 0.1  [excluded]",
        "    dependency-excluded: chain needs needy, which will not load (missing-dependency)",
        "    caused by missing-dependency: needy needs ghost>=2, but no plugin is named or "
        "provides 'ghost'",
        "    needs needy: 1.0 (needy [excluded])",
        "  needy 1.0  [excluded]",
        "    missing-dependency: needy needs ghost>=2, but no plugin is named or provides 'ghost'",
        "    needs ghost>=2: not found",
    ]


def test_dot_and_mermaid_draw_the_same_edges(world):
    dot = _graph(world, "--graph", "--format", "dot").stdout.splitlines()
    assert dot[0] == "digraph ksi_plugins {"
    assert dot[-1] == "}"
    ids = {line.split('"')[1].split("\\n")[0]: line.split()[0] for line in dot if "label=" in line}
    reporter, notes, metrics = ids["reporter 0.3"], ids["notes 1.2.0"], ids[f"metrics {V}"]
    assert f'  {reporter} -> {notes} [label="needs notes~=1.2: 1.2.0"];' in dot
    assert f'  {reporter} -> {metrics} [label="after metrics", style=dashed];' in dot
    assert (
        f"  {ids['cache 1.0']} -> {ids['sqlite_store 2.0']} "
        '[label="needs service database: sqlite_store 2.0", style=bold];'
    ) in dot
    assert f'  {reporter} [label="reporter 0.3\\n[loadable]"];' in dot
    assert (
        f'  {ids["needy 1.0"]} [label="needy 1.0\\n[excluded] missing-dependency", '
        "style=dashed, color=red];"
    ) in dot
    assert '  missing0 [label="ghost>=2\\nnot found", shape=plaintext, fontcolor=red];' in dot

    mermaid = _graph(world, "--graph", "--format", "mermaid").stdout.splitlines()
    assert mermaid[0] == "graph BT"
    assert f'  {reporter}["reporter 0.3<br/>[loadable]"]' in mermaid
    assert f'  {reporter} -->|"needs notes~=1.2: 1.2.0"| {notes}' in mermaid
    assert f'  {reporter} -.->|"after metrics"| {metrics}' in mermaid
    needy = f'  {ids["needy 1.0"]}["needy 1.0<br/>[excluded] missing-dependency"]:::fault'
    assert needy in mermaid
    assert mermaid[-1] == "  classDef fault stroke:#c00,stroke-dasharray:5 5"
    arrows = [line for line in mermaid if "|" in line]
    edges = [line for line in dot if " -> " in line]
    assert len(arrows) == len(edges) == 6


def _nth(number: int) -> str:
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number, 'th') }"


def test_why_shows_the_chain_that_places_a_plugin_or_keeps_it_out(world):
    positions = _positions(world)
    total = len(positions)
    assert _graph(world, "--graph", "--why", "reporter").stdout.splitlines() == [
        f"reporter 0.3  [loadable]  loads {_nth(positions['reporter'])} of {total}",
        "it starts after:",
        "  notes 1.2.0  [loadable]  (needs notes~=1.2: 1.2.0)",
        f"    state {V}  [loadable]  (needs state>=0.1: {V})",
        f"  metrics {V}  [loadable]  (after metrics)",
    ]
    assert _graph(world, "--graph", "--why", "State").stdout.splitlines() == [
        f"state {V}  [loadable]  loads {_nth(positions['state'])} of {total}",
        "it needs no other plugin",
        "plugins that start after it, because of it:",
        f"  notes 1.2.0  [loadable]  (needs state>=0.1: {V})",
        "  reporter 0.3  [loadable]  (through the plugins above)",
    ]
    assert _graph(world, "--graph", "--why", "chain").stdout.splitlines() == [
        "chain 0.1  [excluded]  will not load",
        "  dependency-excluded: chain needs needy, which will not load (missing-dependency)",
        "  caused by missing-dependency: needy needs ghost>=2, but no plugin is named or "
        "provides 'ghost'",
    ]
    unknown = _graph(world, "--graph", "--why", "reportr")
    assert unknown.returncode == 1
    assert (
        unknown.stderr.strip()
        == "error: no plugin named 'reportr' was found; did you mean 'reporter'?"
    )


def test_graph_options_without_graph_are_a_usage_error(world):
    result = _graph(world, "--why", "state")
    assert result.returncode == 2
    assert "--format and --why go with --graph" in result.stderr


def test_a_shadowed_name_is_its_own_node_and_edges_reach_the_copy_that_loads(world, tmp_path):
    folder = tmp_path / "shadow"
    folder.mkdir()
    for name, version, deps in (("health", "9.9", []), ("user", "1.0", ["health>=9"])):
        (folder / f"{name}.py").write_text(
            PLUGIN.format(name=name, version=version, deps=deps, after=[], services=[])
        )
    result = _graph((folder, world[1]), "--graph", "--format", "dot")
    assert result.returncode == 0  # shadowed by precedence is not a fault, as for `plugins`
    dot = result.stdout.splitlines()
    ids = {line.split('"')[1]: line.split()[0] for line in dot if "label=" in line}
    mine, builtin = ids["health 9.9\\n[loadable]"], ids[f"health {V}\\n[shadowed] shadowed"]
    user = ids["user 1.0\\n[loadable]"]
    assert mine != builtin
    assert f'  {builtin} [label="health {V}\\n[shadowed] shadowed", style=dashed];' in dot
    assert f'  {user} -> {mine} [label="needs health>=9: 9.9"];' in dot
