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
