"""Hypothesis strategies shared by the test modules, one section per area."""

from __future__ import annotations

from hypothesis import strategies as st

from ksi_host.events import MAX_SEGMENT

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
