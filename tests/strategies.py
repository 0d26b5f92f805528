"""Shared hypothesis strategies, one section per area."""

from __future__ import annotations

from hypothesis import strategies as st

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
