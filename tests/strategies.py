"""Shared hypothesis strategies, one section per area."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

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
