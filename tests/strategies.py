"""Shared hypothesis strategies, one section per area."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from ksi_host._manage.environment import InstalledDist
from ksi_host._plan import Exclusion, Origin, PluginSpec, Reason
from ksi_host.events import MAX_SEGMENT
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

# --- resolver (discover) ---

PLUGIN_NAMES = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")
SERVICES = ("storage", "auth")
BROKEN = "broken"
"""A plugin that failed to import: it is in ``excluded``, never in the specs."""


def make_spec(
    name: str,
    *,
    version: str | None = None,
    dependencies: Sequence[str] = (),
    after: Sequence[str] = (),
    services: Sequence[str] = (),
) -> PluginSpec:
    """A described plugin as the resolver sees it (the plugin object itself is never used)."""
    return PluginSpec(
        plugin=object(),
        metadata=PluginMetadata(
            name=name,
            version=version,
            dependencies=tuple(dependencies),
            after_dependencies=tuple(after),
        ),
        capabilities=PluginCapabilities(provides_services=tuple(services)),
        origin=Origin("path", f"{name}.py"),
    )


def broken_exclusion(name: str = BROKEN) -> Exclusion:
    reason = Reason("import-error", f"{name} failed to import: ImportError: nope")
    return Exclusion(name, Origin("path", f"{name}.py"), reason)


_requirement_targets = st.sampled_from((*PLUGIN_NAMES, *SERVICES, BROKEN, "missing"))
_specifiers = st.sampled_from(("", ">=1", "<1", ">=2.0b1", "==1.0"))


@st.composite
def _spec(draw: st.DrawFn, name: str) -> PluginSpec:
    targets = draw(st.lists(_requirement_targets, unique=True, max_size=3))
    return make_spec(
        name,
        version=draw(st.sampled_from((None, "0.5", "1.0", "2.0b1", "3.0"))),
        dependencies=[target + draw(_specifiers) for target in targets],
        after=draw(st.lists(st.sampled_from((*PLUGIN_NAMES, BROKEN)), unique=True, max_size=2)),
        services=draw(st.lists(st.sampled_from(SERVICES), unique=True, max_size=1)),
    )


@st.composite
def plugin_sets(draw: st.DrawFn) -> list[PluginSpec]:
    """Up to eight plugins with random dependencies, services, specifiers and cycles."""
    names = draw(st.lists(st.sampled_from(PLUGIN_NAMES), unique=True, max_size=len(PLUGIN_NAMES)))
    return [draw(_spec(name)) for name in names]


# --- event names ---

_FIRST = "abcdefghijklmnopqrstuvwxyz"
_REST = _FIRST + "0123456789_-"

segments = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_FIRST),
    st.text(alphabet=_REST, max_size=MAX_SEGMENT - 1),
)
"""A namespace or an action: a lowercase letter, then letters, digits, '_' or '-'."""

event_names = st.builds(lambda ns, action: f"{ns}:{action}", segments, segments)
"""Valid ``namespace:action`` names."""

not_event_names = st.one_of(
    st.text(max_size=80).filter(lambda s: s.count(":") != 1),
    st.builds(lambda ns, action: f"{ns}:{action}", st.text(max_size=70), st.text(max_size=70)),
    st.builds(lambda ns: f"{ns}:{'a' * (MAX_SEGMENT + 1)}", segments),
    st.integers(),
    st.none(),
)
"""Mostly invalid names (the text-built ones may be valid by chance; tests check both ways)."""


# --- template ---

#: Text close to a name: the characters the naming rules care about plus a few they refuse.
name_like_text = st.text(
    alphabet=st.sampled_from("abcXYZ019._-/: \u00e9"),
    max_size=70,
)

#: Plugin names the guide accepts that start with a letter (defaults derive from them).
plugin_names = st.from_regex(r"[A-Za-z]([A-Za-z0-9._-]{0,38}[A-Za-z0-9])?", fullmatch=True)

#: Any one-line answer a user might type (quotes, backslashes, emoji, accents).
one_line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=200,
)

# --- socket server wire (robustness) ---

WIRE_LIMIT = 8192
"""The ``max_line_bytes`` the wire-stream tests run the server with."""

_DEPTH_BOMB = b"[" * 100_000 + b"]" * 100_000

#: One line's content as a hostile or careless client sends it (no newline inside).
wire_line = st.one_of(
    st.builds(
        lambda n, event: json.dumps({"event": event, "correlation_id": n}).encode(),
        st.integers(0, 10**6),
        st.sampled_from(["test:echo", "test:raise", "test:list", "no:handler", "Bad Name"]),
    ),
    st.binary(max_size=64).map(lambda raw: raw.replace(b"\n", b"")),
    st.sampled_from(
        [
            b"",
            b"   ",
            b"\r",
            b"\xff\xfe\xfd",
            b'{"event": "test:echo", "event": "test:raise"}',
            b'{"event": "test:echo", "data": {"n": ' + b"9" * 5000 + b"}}",
            b'{"event": "test:echo", "correlation_id": ' + b"9" * 400 + b"}",
            b'{"event": "test:echo", "data": {"x": 1e999, "y": NaN}}',
            b'{"event": "test:echo", "correlation_id": "\\ud800"}',
            b'{"event": "test:echo", "data": {"s": "\\udfff"}}',
            b'{"event": "test:echo", "data": ' + b"[" * 300 + b"]" * 300 + b"}",
            b"[" * 1000 + b"]" * 1000,
            b"x" * WIRE_LIMIT,
            b"x" * (WIRE_LIMIT + 1),
            _DEPTH_BOMB[: WIRE_LIMIT // 2] + _DEPTH_BOMB[-WIRE_LIMIT // 2 :],
            _DEPTH_BOMB,
        ]
    ),
)

#: A stream of lines, each ended by ``\n`` or ``\r\n`` except perhaps the last.
wire_stream = st.tuples(
    st.lists(st.tuples(wire_line, st.sampled_from([b"\n", b"\r\n"])), max_size=8),
    st.sampled_from([b"", b'{"event": "test:echo"}', b"\xff"]),
).map(lambda parts: b"".join(line + end for line, end in parts[0]) + parts[1])


def strict_json(line: bytes) -> Any:
    """Parse as RFC 8259 JSON: NaN and Infinity are not JSON, whatever Python accepts."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(line, parse_constant=refuse)


def replies_owed(stream: bytes, limit: int) -> tuple[int, bool]:
    """How many replies a stream is owed, and whether it ends with LINE_TOO_LONG."""
    owed = 0
    for content in stream.split(b"\n"):
        if len(content) > limit:
            return owed + 1, True
        owed += bool(content.strip())
    return owed, False


# --- plugin sets (lock files) ---

_DIST_NAMES = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True)
_VERSIONS = st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,3}((a|b|rc)[0-9]{1,2})?", fullmatch=True)
_ENTRY_POINT_NAMES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
)


@st.composite
def installed_dists(draw: st.DrawFn) -> list[InstalledDist]:
    """Plugin distributions: distinct canonical names, odd spellings, any unicode plugin name."""
    names = draw(st.lists(_DIST_NAMES, max_size=6, unique_by=canonicalize_name))
    return [
        InstalledDist(
            name=name,
            version=draw(_VERSIONS),
            requires=(),
            plugins=tuple(sorted(draw(st.lists(_ENTRY_POINT_NAMES, min_size=1, max_size=3)))),
        )
        for name in names
    ]


# --- event data ---

#: Any JSON value a client can send as (part of) event data.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)
