"""The token budget's skip rule: learned from document frequencies counted by hand, applied word by word."""

from __future__ import annotations

import json

import pytest

from xmc.exceptions import ModelFormatError
from xmc.features.budget import READ_WINDOW, SkipRule

TEXTS = [
    "Commission Regulation (EC) No 12/2005 on fish",
    "Commission Decision on bananas of 3 May",
    "Council Regulation on wine",
    "the fish market",
]


def test_words_in_more_than_the_share_of_documents_are_learned_case_blind():
    # by hand: "on" is in 3 of 4 documents, "commission" and "regulation" in 2, "fish" in 2, the rest in 1
    assert SkipRule.learn(TEXTS, 0.5, False, budget=8).words == {"on"}
    assert SkipRule.learn(TEXTS, 0.25, False, budget=8).words == {"on", "commission", "regulation", "fish"}
    assert SkipRule.learn(TEXTS, 1.0, True, budget=8) == SkipRule(frozenset(), True)  # share 1: no words
    assert SkipRule.learn([], 0.1, False, budget=8).empty


def test_frequencies_are_counted_only_where_a_model_can_read():
    window = READ_WINDOW * 2
    late = ["filler " * window + "tail"] * 3 + ["tail"]
    assert SkipRule.learn(late, 0.5, False, budget=2).words == {"filler"}  # "tail" lies past 3 windows
    assert SkipRule.learn(late, 0.5, False, budget=4).words == {"filler", "tail"}


def test_apply_cuts_skipped_words_and_digits_then_keeps_the_budget():
    rule = SkipRule(frozenset({"on", "commission", "regulation", "(", ")"}), numbers=True)
    assert rule.apply(TEXTS, 10) == ["EC No fish", "Decision bananas of May", "Council wine", "the fish market"]
    assert rule.apply(TEXTS, 2) == ["EC No", "Decision bananas", "Council wine", "the fish"]
    assert rule.apply(["on 12 (on)", ""], 5) == ["on 12 (on)", ""]  # nothing kept: the text whole
    words_only = SkipRule(frozenset({"no"}), numbers=False)
    assert words_only.apply(["No 2959/76 of co-operation"], 5) == ["2959/76 of co-operation"]
    assert SkipRule().apply(TEXTS, 1) is TEXTS  # the empty rule leaves texts alone


def test_the_rule_saves_and_loads(tmp_path):
    rule = SkipRule(frozenset({"the", "é"}), numbers=True)
    rule.save(tmp_path / "rule.json")
    assert SkipRule.load(tmp_path / "rule.json") == rule
    assert SkipRule.load(tmp_path / "missing.json") == SkipRule()  # older model folders skip nothing


@pytest.mark.parametrize("content", ['{"skip_words": "the", "skip_numbers": true}',
                                     '{"skip_words": ["the"], "skip_numbers": 1}', '{"skip_words": []}', "[1]",
                                     "not json"])
def test_a_damaged_rule_file_is_refused(tmp_path, content):
    (tmp_path / "rule.json").write_text(content)
    with pytest.raises(ModelFormatError):
        SkipRule.load(tmp_path / "rule.json")


def test_the_key_names_every_word_sorted():
    key = SkipRule(frozenset({"b", "a"}), True).key()
    assert key == {"skip_words": ["a", "b"], "skip_numbers": True} and json.dumps(key)
