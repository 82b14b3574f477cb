"""The label-text blend's weights: a zero-shot weight of 0 keeps zero-shot labels ranked by their
text (below every known label), so the zero-shot group never loses its own ranking."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmc.features.tfidf import TfidfConfig
from xmc.models.label_text import LabelTextBlend, LabelTextConfig, LabelTextScorer

LABEL_TEXTS = ["finance banking", "farming crops", "zebra stripes", "volcano lava", "glacier ice"]
DOCS = ["banking rules for zebra stripes", "crops near a volcano with lava", "glacier ice and banking"]


def _blend(w_zero: float) -> LabelTextBlend:
    scorer = LabelTextScorer(LabelTextConfig(tfidf=TfidfConfig(min_df=1))).fit(DOCS, LABEL_TEXTS)
    freq = np.array([120, 80, 0, 0, 0])  # two known frequent labels, three known only by their text
    return LabelTextBlend(scorer, 2, freq, 0.0, w_zero)


def _model_scores() -> sp.csr_matrix:
    return sp.csr_matrix(np.array([[0.9, 0.2], [0.1, 0.7], [0.6, 0.3]], dtype=np.float32))


def test_a_zero_weight_keeps_zero_shot_labels_in_their_texts_order_below_known_labels():
    scores = _blend(0.0).predict(DOCS, _model_scores(), top_k=5).toarray()
    best_zero = scores[:, 2:].argmax(axis=1) + 2
    assert best_zero.tolist() == [2, 3, 4]  # zebra, volcano, glacier: the text each document names
    known_min = scores[:, :2].min(axis=1)
    assert (scores[:, 2:].max(axis=1) < known_min).all() and (scores[:, 2:].max(axis=1) > 0).all()
    np.testing.assert_allclose(scores[:, :2], _model_scores().toarray())


def test_a_positive_zero_weight_lets_a_fitting_text_outrank_a_weak_known_label():
    scores = _blend(1.0).predict(DOCS, _model_scores(), top_k=5).toarray()
    assert scores[1, 3] > scores[1, 0]  # "volcano lava" beats the model's 0.1 for finance


class _FixedTexts(LabelTextBlend):
    """A blend whose label-text scores are given: the weight search alone is under test."""

    def text_scores(self, texts):
        return self.fixed


def _fixed_blend(text_rows) -> _FixedTexts:
    from types import SimpleNamespace

    scorer = SimpleNamespace(n_labels=4, config=LabelTextConfig())
    blend = _FixedTexts(scorer, 3, np.array([100, 5, 5, 0]))  # label 0 frequent, 1 and 2 few-shot, 3 zero-shot
    blend.fixed = sp.csr_matrix(np.array(text_rows, dtype=np.float32))
    return blend


# doc 0, 2: the frequent label; doc 1: few-shot label 2 (the model prefers few-shot label 1, 0.46 to
# 0.40; its text is 0.5); doc 3: the zero-shot label (its text 0.9 against the model's 0.2)
MODEL = [[0.9, 0.3, 0.0], [0.6, 0.46, 0.40], [0.8, 0.1, 0.1], [0.2, 0.1, 0.1]]
TEXTS = [[0, 0, 0, 0], [0, 0, 0.5, 0], [0, 1.0, 0, 0], [0, 0, 0, 0.9]]
TRUTH = [[1, 0, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]


def _csr(rows):
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


def test_weight_search_picks_the_first_grid_weights_that_fix_a_few_shot_and_a_zero_shot_document():
    """By hand, at k=1. Few-shot RP@1 ranks the few-shot columns among themselves: doc 1 needs
    0.40 + w_few * 0.5 > 0.46; 0.1 falls short (0.45), 0.2 is the first grid weight that wins,
    and doc 2 (0.1 + 0.2 * 1.0 against 0.8) keeps its frequent label. Doc 3's zero-shot
    label needs w_zero * 0.9 > 0.2: 0.3. Larger weights gain nothing more and are not taken."""
    blend = _fixed_blend(TEXTS)
    info = blend.fit_weights(["d"] * 4, _csr(MODEL), _csr(TRUTH), k=1)
    assert (blend.w_few, blend.w_zero) == (0.2, 0.3)
    assert info["few_RP@5_before"] == 0.0 and info["few_RP@5_after"] == 100.0  # percent


def test_weight_search_refuses_a_zero_weight_that_costs_a_frequent_label():
    """Doc 4's frequent label (0.25) would lose to its zero-shot text (1.0) at the weight doc 3
    needs (0.3 * 1.0 > 0.25): P@1 would fall by 20 points, so no zero-shot weight is taken."""
    blend = _fixed_blend(TEXTS + [[0, 0, 0, 1.0]])
    blend.fit_weights(["d"] * 5, _csr(MODEL + [[0.25, 0.0, 0.0]]), _csr(TRUTH + [[1, 0, 0, 0]]), k=1)
    assert (blend.w_few, blend.w_zero) == (0.2, 0.0)
