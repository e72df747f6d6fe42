"""Marked values (names) are masked by substring search, not a pattern compiled per request:
the same values disappear from every line, whole words only, whatever their case."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadline.logging import MASK, clear_context, mark_sensitive, mask_marked, redact_text

pytestmark = pytest.mark.unit

WORDS = st.text(alphabet="abcxyzÄé_", min_size=2, max_size=6)
TEXT = st.text(alphabet="abcxyzÄé_ .-'", max_size=60)


def test_whole_words_only_and_case_insensitive() -> None:
    marked = frozenset({"Ada Lovelace", "Ada", "Lovelace"})
    assert mask_marked("ADA lovelace wrote to Adam", marked) == f"{MASK} wrote to Adam"
    assert mask_marked("lovelace_2 and ada.", marked) == f"lovelace_2 and {MASK}."


def test_a_case_mapping_that_changes_length_still_masks() -> None:
    assert mask_marked("İstanbul from Ada", frozenset({"Ada"})) == f"İstanbul from {MASK}"


@given(values=st.lists(st.lists(WORDS, min_size=1, max_size=3), min_size=1, max_size=4), text=TEXT)
def test_no_marked_word_survives(values: list[list[str]], text: str) -> None:
    clear_context()
    names = [" ".join(words) for words in values]
    mark_sensitive(*names)
    line = text + " " + " ".join(names).upper() + " " + text
    redacted = redact_text(line)
    for word in {word for words in values for word in words}:
        pattern = rf"(?<!\w){re.escape(word)}(?!\w)"
        assert re.search(pattern, redacted, re.IGNORECASE) is None
    clear_context()
