"""``ksi-host plugins --graph``: the load plan's dependency graph as a tree, DOT or Mermaid.

The graph is read off the plan, never decided again: an edge joins a plugin to a
plugin the resolver made it start after (``LoadPlan.requires``), labelled with the
declared requirement it satisfies (``state>=0.1``, service ``database``, or an
after-dependency). Each plugin carries its one verdict, the same :class:`PluginEntry`
``plugins --json`` prints (merged with a running daemon's), so every status word and
reason is the one every other view shows. Excluded plugins keep their reason, and their
declared requirements point at what was found (or at a "not found" node).

In the tree, each plugin appears under every plugin it needs (``pipdeptree
--reverse``), so the roots are the plugins that need nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import click
from packaging.requirements import InvalidRequirement, Requirement

from ksi_host._plan import FAULTS, LoadPlan, PluginSpec, Status, exclusion_status
from ksi_host._schema import PluginEntry, ReasonReport, plugin_entries
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
    """A plugin and its verdict: in the load order with a 1-based ``position``, or not.

    ``reason`` says why it does not run (excluded, or failed in a running daemon).
    """

    key: str
    name: str
    version: str | None
    status: Status
    position: int | None = None
    reason: ReasonReport | None = None

    @classmethod
    def of(cls, entry: PluginEntry) -> Node:
        return cls(
            _key_or_name(entry.name),
            entry.name,
            entry.version,
            entry.status,
            entry.position,
            entry.reason,
        )

    @property
    def title(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name

    @property
    def shown(self) -> str:
        """The title and the status word, as ``plugins`` prints them: ``state 0.1  [running]``."""
        return f"{self.title}  [{self.status}]"


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
        fine = found.position is not None and found.status not in FAULTS
        out = "" if fine else f" ({found.name} [{found.status}])"
        return f"needs {what}: {shown}{out}"


@dataclass(frozen=True)
class PluginGraph:
    """Every plugin of a plan and every edge between them, in load order.

    ``daemon`` is the socket of the running daemon whose verdicts are merged in, if any.
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    daemon: str | None = None

    def index(self) -> dict[str, Node]:
        """Each key's node; of a name found twice (shadowed), the one in the load order."""
        index: dict[str, Node] = {}
        for node in self.nodes:
            if node.key not in index or index[node.key].position is None:
                index[node.key] = node
        return index

    def node(self, key: str) -> Node | None:
        return self.index().get(key)

    @property
    def ok(self) -> bool:
        """As for ``plugins``: no plugin that should run fails to (see ``FAULTS``)."""
        return all(node.status not in FAULTS for node in self.nodes)

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


def plugin_graph(
    plan: LoadPlan, entries: Sequence[PluginEntry] | None = None, daemon: str | None = None
) -> PluginGraph:
    """The graph of ``plan``; each plugin's verdict is its entry in ``entries``.

    ``entries`` are the verdicts ``plugins`` shows (:func:`ksi_host._daemon_view.verdicts`:
    the plan's own, merged with the daemon's on socket ``daemon``); by default the plan's.
    """
    verdicts = plugin_entries(plan) if entries is None else entries
    nodes = tuple(Node.of(entry) for entry in verdicts)
    known = {node.key for node in nodes}
    providers = _service_providers(plan)
    edges: list[Edge] = []
    for spec in plan.order:
        edges += _edges(spec, set(plan.requires.get(spec.key, ())), providers, known)
    for exclusion in plan.excluded:
        if exclusion.spec is not None and exclusion_status(exclusion.reason) == "excluded":
            edges += _edges(exclusion.spec, None, providers, known)
    return PluginGraph(nodes, tuple(edges), daemon)


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
    """Each plugin under the plugins it needs; then the plugins that do not run, and why."""
    nodes = graph.index()
    loadable = [node for node in graph.nodes if node.position is not None]
    roots = [node for node in loadable if not any(e.target for e in graph.needs(node.key))]
    lines = [f"{len(loadable)} plugin(s) will load; each is shown under what it needs"]
    if graph.daemon:
        lines[0] += f" (merged with what the daemon on {graph.daemon} knows)"
    for root in roots:
        lines.append(root.shown)
        lines += _children(graph, nodes, root.key, "", (root.key,))
    troubled = [node for node in graph.nodes if node.reason is not None]
    if troubled:
        out = all(node.position is None for node in troubled)
        lines.append("not loading:" if out else "not loading or running:")
    for node in troubled:
        placed = "" if node.position is None else "  (in the load order above)"
        lines.append(f"  {node.shown}{placed}")
        lines += [f"    {line}" for line in _reason_chain(node.reason)]
        if node.position is None:
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
        lines.append(f"{indent}{'└── ' if last else '├── '}{child.shown}  ({edge.label(nodes)})")
        if child.key not in path:
            deeper = indent + ("    " if last else "│   ")
            lines += _children(graph, nodes, child.key, deeper, (*path, child.key))
    return lines


def _reason_chain(reason: ReasonReport | None) -> list[str]:
    lines = []
    current = reason
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
    nodes = graph.index()
    if node.position is None:
        lines = [f"{node.shown}  will not load"]
        lines += [f"  {line}" for line in _reason_chain(node.reason)]
        return "\n".join(lines)
    total = sum(1 for n in graph.nodes if n.position is not None)
    lines = [f"{node.shown}  loads {_ordinal(node.position)} of {total}"]
    lines += [f"  {line}" for line in _reason_chain(node.reason)]
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
            lines.append(f"  {nodes[key].shown}{how}")
    return "\n".join(lines)


def _chain_down(
    graph: PluginGraph, nodes: dict[str, Node], key: str, indent: str, path: tuple[str, ...]
) -> list[str]:
    lines = []
    for edge in graph.needs(key):
        if edge.target is None:
            continue
        target = nodes[edge.target]
        lines.append(f"{indent}{target.shown}  ({edge.label(nodes)})")
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


def _ids(graph: PluginGraph) -> tuple[list[str], dict[str, str]]:
    """An id for each node, in order, and the id an edge to each key points at."""
    ids = [f"n{index}" for index in range(len(graph.nodes))]
    index = graph.index()
    by_key = {node.key: ids[i] for i, node in enumerate(graph.nodes) if index[node.key] is node}
    return ids, by_key


def _missing(graph: PluginGraph) -> list[Edge]:
    return [edge for edge in graph.edges if edge.target is None and edge.kind != "after"]


def _arrows(graph: PluginGraph, by_key: dict[str, str]) -> Iterator[tuple[Edge, str]]:
    """Each edge to draw and its target's id; ``missing<n>`` is the n-th of :func:`_missing`."""
    missing = 0
    for edge in graph.edges:
        if edge.target is not None:
            yield edge, by_key[edge.target]
        elif edge.kind != "after":
            yield edge, f"missing{missing}"
            missing += 1


def _verdict(node: Node) -> str:
    """The second line of a node: its status word, and its reason code if it has one."""
    return f"[{node.status}] {node.reason.code}" if node.reason else f"[{node.status}]"


def _look(node: Node) -> Literal["fine", "fault", "off"]:
    """Red for a plugin that should run and does not; dashed for one left out on purpose."""
    if node.status in FAULTS:
        return "fault"
    return "off" if node.position is None else "fine"


def render_dot(graph: PluginGraph) -> str:
    """Graphviz: an arrow from each plugin to what it needs; dashed for after-dependencies."""
    ids, by_key = _ids(graph)
    nodes = graph.index()
    styles = {"fine": "", "fault": ", style=dashed, color=red", "off": ", style=dashed"}
    lines = ["digraph ksi_plugins {", "  rankdir=BT;", "  node [shape=box];"]
    for node, node_id in zip(graph.nodes, ids, strict=True):
        label = f"{_dot(node.title)}\\n{_dot(_verdict(node))}"
        lines.append(f'  {node_id} [label="{label}"{styles[_look(node)]}];')
    for index, edge in enumerate(_missing(graph)):
        lines.append(
            f'  missing{index} [label="{_dot(edge.requirement)}\\nnot found", '
            "shape=plaintext, fontcolor=red];"
        )
    for edge, target in _arrows(graph, by_key):
        style = ", style=dashed" if edge.kind == "after" else ""
        style += ", style=bold" if edge.kind == "service" else ""
        lines.append(
            f'  {by_key[edge.source]} -> {target} [label="{_dot(edge.label(nodes))}"{style}];'
        )
    lines.append("}")
    return "\n".join(lines)


def render_mermaid(graph: PluginGraph) -> str:
    """Mermaid (for Markdown): the same graph as :func:`render_dot`."""
    ids, by_key = _ids(graph)
    nodes = graph.index()
    suffixes = {"fine": "", "fault": ":::fault", "off": ":::off"}
    lines = ["graph BT"]
    for node, node_id in zip(graph.nodes, ids, strict=True):
        label = f"{node.title}<br/>{_verdict(node)}"
        lines.append(f'  {node_id}["{_mermaid(label)}"]{suffixes[_look(node)]}')
    for edge, target in _arrows(graph, by_key):
        if edge.target is None:
            lines.append(f'  {target}["{_mermaid(edge.requirement)}<br/>not found"]:::fault')
        arrow = "-.->" if edge.kind == "after" else "==>" if edge.kind == "service" else "-->"
        lines.append(f'  {by_key[edge.source]} {arrow}|"{_mermaid(edge.label(nodes))}"| {target}')
    looks = {_look(node) for node in graph.nodes}
    if "fault" in looks or _missing(graph):
        lines.append("  classDef fault stroke:#c00,stroke-dasharray:5 5")
    if "off" in looks:
        lines.append("  classDef off stroke-dasharray:5 5")
    return "\n".join(lines)


def _dot(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _mermaid(text: str) -> str:
    return text.replace('"', "#quot;")


def show_graph(
    plan: LoadPlan,
    entries: Sequence[PluginEntry],
    daemon: str | None,
    graph_format: GraphFormat,
    why: str | None,
) -> int:
    """Print the graph (or the ``--why`` chain) with ``plugins``' verdicts; its exit code.

    ``entries`` and ``daemon`` are what ``plugins`` shows (see :func:`plugin_graph`), so
    both commands give each plugin the same status and exit 1 in the same cases.
    """
    graph = plugin_graph(plan, entries, daemon)
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
    return 0 if graph.ok else 1
