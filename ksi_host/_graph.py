"""``ksi-host plugins --graph``: the load plan's dependency graph as a tree, DOT or Mermaid.

The graph is read off the plan, never decided again: an edge joins a plugin to a
plugin the resolver made it start after (``LoadPlan.requires``), labelled with the
declared requirement it satisfies (``state>=0.1``, service ``database``, or an
after-dependency). Excluded plugins keep their reason, and their declared
requirements point at what was found (or at a "not found" node).

In the tree, each plugin appears under every plugin it needs (``pipdeptree
--reverse``), so the roots are the plugins that need nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import click
from packaging.requirements import InvalidRequirement, Requirement

from ksi_host._plan import Exclusion, LoadPlan, PluginSpec, Reason
from ksi_host._suggest import did_you_mean
from ksi_host.plugin_types import canonical_name

__all__ = [
    "Edge",
    "GraphFormat",
    "Node",
    "PluginGraph",
    "plugin_graph",
    "render_dot",
    "render_mermaid",
    "render_tree",
    "render_why",
    "show_graph",
]

GraphFormat = Literal["text", "dot", "mermaid"]
EdgeKind = Literal["dependency", "service", "after"]


@dataclass(frozen=True)
class Node:
    """A plugin: loadable ones have a 1-based ``position``, the others a ``reason``."""

    key: str
    name: str
    version: str | None
    status: str
    position: int | None = None
    reason: Reason | None = None

    @property
    def title(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name


@dataclass(frozen=True)
class Edge:
    """``source`` needs (or starts after) ``target``, because of ``requirement``.

    ``target`` is None when nothing provides the requirement; for a service it is the
    plugin chosen to provide it.
    """

    source: str
    target: str | None
    kind: EdgeKind
    requirement: str

    def label(self, nodes: dict[str, Node]) -> str:
        """``needs state>=0.1: 0.1.0``, ``service database: sqlite 1.0``, ``after metrics``."""
        found = nodes.get(self.target) if self.target else None
        if self.kind == "after":
            return f"after {self.requirement}"
        what = f"service {self.requirement}" if self.kind == "service" else self.requirement
        if found is None:
            return f"needs {what}: not found"
        shown = found.title if self.kind == "service" else (found.version or "any version")
        out = "" if found.position is not None else f" ({found.name} will not load)"
        return f"needs {what}: {shown}{out}"


@dataclass(frozen=True)
class PluginGraph:
    """Every plugin of a plan and every edge between them, in load order."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node(self, key: str) -> Node | None:
        return next((node for node in self.nodes if node.key == key), None)

    def find(self, name: str) -> Node | None:
        """The plugin called ``name`` (any spelling PyPI would treat as the same)."""
        try:
            key = canonical_name(name)
        except ValueError:
            return None
        return self.node(key)

    def needs(self, key: str) -> list[Edge]:
        return [edge for edge in self.edges if edge.source == key]

    def needed_by(self, key: str) -> list[Edge]:
        return [edge for edge in self.edges if edge.target == key]


def plugin_graph(plan: LoadPlan) -> PluginGraph:
    """The graph of ``plan``: loadable plugins, then excluded ones, and their edges."""
    nodes = [
        Node(spec.key, spec.name, spec.version, "loadable", position=position)
        for position, spec in enumerate(plan.order, start=1)
    ]
    nodes += [_excluded_node(exclusion) for exclusion in plan.excluded]
    known = {node.key for node in nodes}
    providers = _service_providers(plan)
    edges: list[Edge] = []
    for spec in plan.order:
        edges += _edges(spec, set(plan.requires.get(spec.key, ())), providers, known)
    for exclusion in plan.excluded:
        if exclusion.spec is not None and exclusion.reason.code not in ("disabled", "shadowed"):
            edges += _edges(exclusion.spec, None, providers, known)
    return PluginGraph(tuple(nodes), tuple(edges))


def _excluded_node(exclusion: Exclusion) -> Node:
    code = exclusion.reason.code
    status = code if code in ("disabled", "shadowed") else "excluded"
    spec = exclusion.spec
    key = spec.key if spec else _key_or_name(exclusion.name)
    version = spec.version if spec else exclusion.origin.dist_version
    return Node(key, exclusion.name, version, status, reason=exclusion.reason)


def _key_or_name(name: str) -> str:
    try:
        return canonical_name(name)
    except ValueError:
        return name


def _service_providers(plan: LoadPlan) -> dict[str, list[str]]:
    providers: dict[str, list[str]] = {}
    for spec in plan.order:
        for service in spec.capabilities.provides_services:
            providers.setdefault(canonical_name(service), []).append(spec.key)
    return providers


def _edges(
    spec: PluginSpec,
    started_after: set[str] | None,
    providers: dict[str, list[str]],
    known: set[str],
) -> Iterator[Edge]:
    """The edges of one plugin; ``started_after`` is what the resolver chose (None: excluded)."""
    for text in spec.metadata.dependencies:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        name = canonical_name(requirement.name)
        shown = _without_marker(requirement)
        if name in known and (started_after is None or name in started_after):
            yield Edge(spec.key, name, "dependency", shown)
            continue
        candidates = providers.get(name, [])
        chosen = [key for key in candidates if started_after is None or key in started_after]
        if chosen:
            yield Edge(spec.key, chosen[0], "service", shown)
        else:
            yield Edge(spec.key, None, "dependency", shown)
    for after in spec.metadata.after_dependencies:
        key = canonical_name(after)
        if started_after is None or key in started_after:
            yield Edge(spec.key, key if key in known else None, "after", after)


def _without_marker(requirement: Requirement) -> str:
    return f"{requirement.name}{requirement.specifier}"


# --- text tree ---


def render_tree(graph: PluginGraph) -> str:
    """Each plugin under the plugins it needs; then the plugins that will not load, and why."""
    nodes = {node.key: node for node in graph.nodes}
    loadable = [node for node in graph.nodes if node.position is not None]
    roots = [node for node in loadable if not any(e.target for e in graph.needs(node.key))]
    lines = [f"{len(loadable)} plugin(s) will load; each is shown under what it needs"]
    for root in roots:
        lines.append(f"{root.title}")
        lines += _children(graph, nodes, root.key, "", (root.key,))
    others = [node for node in graph.nodes if node.position is None]
    if others:
        lines.append("not loading:")
    for node in others:
        lines.append(f"  {node.title}  [{node.status}]")
        if node.reason is not None:
            lines += [f"    {line}" for line in _reason_chain(node.reason)]
        lines += [f"    {edge.label(nodes)}" for edge in graph.needs(node.key)]
    return "\n".join(lines)


def _children(
    graph: PluginGraph, nodes: dict[str, Node], key: str, indent: str, path: tuple[str, ...]
) -> list[str]:
    dependents = [e for e in graph.needed_by(key) if nodes[e.source].position is not None]
    lines = []
    for index, edge in enumerate(dependents):
        last = index == len(dependents) - 1
        child = nodes[edge.source]
        lines.append(f"{indent}{'└── ' if last else '├── '}{child.title}  ({edge.label(nodes)})")
        if child.key not in path:
            deeper = indent + ("    " if last else "│   ")
            lines += _children(graph, nodes, child.key, deeper, (*path, child.key))
    return lines


def _reason_chain(reason: Reason) -> list[str]:
    lines = []
    current: Reason | None = reason
    prefix = ""
    while current is not None:
        lines.append(f"{prefix}{current.code}: {current.message}")
        current, prefix = current.cause, "caused by "
    return lines


# --- why ---


def render_why(graph: PluginGraph, name: str) -> str | None:
    """The chain that puts ``name`` where it is, or keeps it out; None if no plugin has it."""
    node = graph.find(name)
    if node is None:
        return None
    nodes = {n.key: n for n in graph.nodes}
    if node.position is None:
        lines = [f"{node.title} will not load [{node.status}]"]
        lines += [f"  {line}" for line in _reason_chain(node.reason)] if node.reason else []
        return "\n".join(lines)
    total = sum(1 for n in graph.nodes if n.position is not None)
    lines = [f"{node.title} loads {_ordinal(node.position)} of {total}"]
    needs = [e for e in graph.needs(node.key) if e.target]
    if needs:
        lines.append("it starts after:")
        lines += _chain_down(graph, nodes, node.key, "  ", (node.key,))
    else:
        lines.append("it needs no other plugin")
    dependents = sorted(_dependents(graph, node.key), key=lambda key: nodes[key].position or 0)
    if dependents:
        lines.append("plugins that start after it, because of it:")
        for key in dependents:
            via = [e for e in graph.needs(key) if e.target == node.key]
            how = f"  ({via[0].label(nodes)})" if via else "  (through the plugins above)"
            lines.append(f"  {nodes[key].title}{how}")
    return "\n".join(lines)


def _chain_down(
    graph: PluginGraph, nodes: dict[str, Node], key: str, indent: str, path: tuple[str, ...]
) -> list[str]:
    lines = []
    for edge in graph.needs(key):
        if edge.target is None:
            continue
        target = nodes[edge.target]
        lines.append(f"{indent}{target.title}  ({edge.label(nodes)})")
        if target.key not in path:
            lines += _chain_down(graph, nodes, target.key, indent + "  ", (*path, target.key))
    return lines


def _dependents(graph: PluginGraph, key: str) -> list[str]:
    found: list[str] = []
    pending = [key]
    while pending:
        current = pending.pop()
        for edge in graph.needed_by(current):
            if edge.source not in found and edge.source != key:
                found.append(edge.source)
                pending.append(edge.source)
    return found


def _ordinal(number: int) -> str:
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix}"


# --- Graphviz and Mermaid ---


def _ids(nodes: Sequence[Node]) -> dict[str, str]:
    return {node.key: f"n{index}" for index, node in enumerate(nodes)}


def _missing(graph: PluginGraph) -> list[Edge]:
    return [edge for edge in graph.edges if edge.target is None and edge.kind != "after"]


def render_dot(graph: PluginGraph) -> str:
    """Graphviz: an arrow from each plugin to what it needs; dashed for after-dependencies."""
    ids = _ids(graph.nodes)
    nodes = {node.key: node for node in graph.nodes}
    lines = ["digraph ksi_plugins {", "  rankdir=BT;", "  node [shape=box];"]
    for node in graph.nodes:
        label = _dot(node.title)
        style = ""
        if node.position is None:
            label += f"\\n{_dot(_why_out(node))}"
            style = ", style=dashed, color=red"
        lines.append(f'  {ids[node.key]} [label="{label}"{style}];')
    for index, edge in enumerate(_missing(graph)):
        lines.append(
            f'  missing{index} [label="{_dot(edge.requirement)}\\nnot found", '
            "shape=plaintext, fontcolor=red];"
        )
    missing = 0
    for edge in graph.edges:
        if edge.target is None and edge.kind == "after":
            continue
        if edge.target is None:
            target = f"missing{missing}"
            missing += 1
        else:
            target = ids[edge.target]
        style = ", style=dashed" if edge.kind == "after" else ""
        style += ", style=bold" if edge.kind == "service" else ""
        lines.append(
            f'  {ids[edge.source]} -> {target} [label="{_dot(edge.label(nodes))}"{style}];'
        )
    lines.append("}")
    return "\n".join(lines)


def render_mermaid(graph: PluginGraph) -> str:
    """Mermaid (for Markdown): the same graph as :func:`render_dot`."""
    ids = _ids(graph.nodes)
    nodes = {node.key: node for node in graph.nodes}
    lines = ["graph BT"]
    for node in graph.nodes:
        label = node.title if node.position is not None else f"{node.title}<br/>{_why_out(node)}"
        suffix = "" if node.position is not None else ":::excluded"
        lines.append(f'  {ids[node.key]}["{_mermaid(label)}"]{suffix}')
    missing = 0
    for edge in graph.edges:
        if edge.target is None and edge.kind == "after":
            continue
        if edge.target is None:
            target = f"missing{missing}"
            lines.append(f'  {target}["{_mermaid(edge.requirement)}<br/>not found"]:::excluded')
            missing += 1
        else:
            target = ids[edge.target]
        arrow = "-.->" if edge.kind == "after" else "==>" if edge.kind == "service" else "-->"
        lines.append(f'  {ids[edge.source]} {arrow}|"{_mermaid(edge.label(nodes))}"| {target}')
    if any(node.position is None for node in graph.nodes) or missing:
        lines.append("  classDef excluded stroke:#c00,stroke-dasharray:5 5")
    return "\n".join(lines)


def _why_out(node: Node) -> str:
    return node.reason.code if node.reason is not None else node.status


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _mermaid(text: str) -> str:
    return text.replace('"', "#quot;")


def show_graph(plan: LoadPlan, graph_format: GraphFormat, why: str | None) -> int:
    """Print the plan's graph (or the ``--why`` chain); the exit code of ``plugins --graph``."""
    graph = plugin_graph(plan)
    if why is not None:
        text = render_why(graph, why)
        if text is None:
            names = [node.name for node in graph.nodes]
            hint = did_you_mean(why, names)
            click.echo(
                f"error: no plugin named {why!r} was found"
                + (f"; {hint}" if hint else f" (found: {', '.join(names) or 'none'})"),
                err=True,
            )
            return 1
        click.echo(text)
        return 0
    renderers = {"text": render_tree, "dot": render_dot, "mermaid": render_mermaid}
    click.echo(renderers[graph_format](graph))
    return 0 if all(node.status != "excluded" for node in graph.nodes) else 1
