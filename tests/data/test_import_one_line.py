"""The importer's whitespace rule: ``one_line`` equals ``" ".join(text.split())`` on any text, its
shortcut for texts already on one line included."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from xmc.data.importer import one_line

WHITESPACE = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]


@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from(WHITESPACE + ["a", "b", " "]))))
def test_one_line_is_split_and_join(text):
    assert one_line(text) == " ".join(text.split())


def test_the_shortcut_returns_the_same_object_and_every_whitespace_is_unprintable():
    text = "already one line, with single spaces"
    assert one_line(text) is text
    assert all(not c.isprintable() for c in WHITESPACE if c != " ")
    for c in WHITESPACE:
        assert one_line(f"a{c}b") == "a b" and one_line(f"{c}a") == "a"
