"""The label-text blend's weights: a zero-shot weight of 0 keeps zero-shot labels ranked by their
text (below every known label), so the zero-shot group never loses its own ranking."""

from __future__ import annotations

import numpy as np
import pytest
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


def _blend_of(freq, n_known: int, text_rows) -> _FixedTexts:
    """A blend over ``len(freq)`` labels (the first ``n_known`` known) whose text scores are given."""
    from types import SimpleNamespace

    scorer = SimpleNamespace(n_labels=len(freq), config=LabelTextConfig(few_shot_max=50))
    blend = _FixedTexts(scorer, n_known, np.array(freq))
    blend.fixed = _csr(text_rows)
    return blend


def _fixed_blend(text_rows) -> _FixedTexts:
    return _blend_of([100, 5, 5, 0], 3, text_rows)  # label 0 frequent, 1 and 2 few-shot, 3 zero-shot


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
    assert info == {"w_few": 0.2, "w_zero": 0.3, "few_RP@5_before": 0.0, "few_RP@5_after": 100.0}  # percent


def test_weight_search_refuses_a_zero_weight_that_costs_a_frequent_label():
    """Doc 4's frequent label (0.25) would lose to its zero-shot text (1.0) at the weight doc 3
    needs (0.3 * 1.0 > 0.25): P@1 would fall by 20 points, so no zero-shot weight is taken."""
    blend = _fixed_blend(TEXTS + [[0, 0, 0, 1.0]])
    blend.fit_weights(["d"] * 5, _csr(MODEL + [[0.25, 0.0, 0.0]]), _csr(TRUTH + [[1, 0, 0, 0]]), k=1)
    assert (blend.w_few, blend.w_zero) == (0.2, 0.0)


def _onehot(n: int, *cols: int) -> list[float]:
    return [1.0 if j in cols else 0.0 for j in range(n)]


def test_weight_search_measures_at_five_by_default():
    """The few-shot truth (label 6) is the sixth few-shot label by the model (0.1 below 0.6 ... 0.25):
    a miss at 5, a hit at 6. 0.2 is the first grid weight that lifts it to fifth (0.3 > 0.25)."""
    model = [[0.9, 0.6, 0.5, 0.45, 0.35, 0.25, 0.1], [0.9, 0.1, 0, 0, 0, 0, 0]]
    blend = _blend_of([100, 5, 5, 5, 5, 5, 5, 0], 7, [_onehot(8, 6), _onehot(8)])
    info = blend.fit_weights(["d"] * 2, _csr(model), _csr([_onehot(8, 6), _onehot(8, 0)]))
    assert blend.w_few == 0.2
    assert (info["few_RP@5_before"], info["few_RP@5_after"]) == (0.0, 100.0)
    blend.fit_weights(["d"] * 2, _csr(model), _csr([_onehot(8, 6), _onehot(8, 0)]), k=6)
    assert blend.w_few == 0.0  # at 6 the truth is found without help


def test_few_shot_recall_counts_the_labels_of_each_documents_top_ten():
    """Label 10 (few-shot, 0.12) is 11th behind ten frequent labels: outside the top ten the search
    measures, so it counts as missed until 0.5 x its text lifts it to 0.62, seventh."""
    frequent = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45]
    blend = _blend_of([100] * 10 + [5], 11, [_onehot(11, 10), _onehot(11)])
    blend.fit_weights(["d"] * 2, _csr([frequent + [0.12], frequent + [0.0]]), _csr([_onehot(11, 10), _onehot(11, 0)]))
    assert blend.w_few == 0.5


@pytest.mark.parametrize("freq_of_l, weight", [(50, 0.5), (51, 0.0)])
def test_a_few_shot_weight_that_drops_a_frequent_label_from_the_top_ten_is_refused(freq_of_l, weight):
    """Label 9 (L) is document A's truth, tenth overall behind four frequent labels and five few-shot
    ones. 0.5 x label 10's text (0.1 + 0.5 > 0.45) pushes L to 11th, out of the top ten the search
    reads; documents B1 and B2 need that weight for their few-shot label 11 (0.12 + 0.5 > 0.45).
    With 50 training documents (``few_shot_max``) L is few-shot and sixth of its group, a miss
    either way: the weight is taken. With 51 L is frequent, fifth of its group, and losing it costs
    frequent-label RP@5 100 points: refused."""
    ranked = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45]  # labels 0-3 frequent, 4-8 few-shot, L
    model = [ranked + [0.1, 0.0], ranked + [0.0, 0.12], ranked + [0.0, 0.12]]
    texts = [_onehot(12, 10), _onehot(12, 11), _onehot(12, 11)]
    blend = _blend_of([100] * 4 + [5] * 5 + [freq_of_l, 5, 5], 12, texts)
    blend.fit_weights(["d"] * 3, _csr(model), _csr([_onehot(12, 9), _onehot(12, 11), _onehot(12, 11)]))
    assert blend.w_few == weight


def test_a_zero_shot_weight_is_refused_when_it_costs_precision_though_it_raises_ndcg():
    """At 1.0 document 3's zero-shot label rises from fifth to first (nDCG@5 0.39 -> 1), while
    document 4's zero-shot text (0.6) pushes its true label 4 (0.5) out of the top five (nDCG@5
    0.85 -> 0.61): mean nDCG@5 rises, P@5 falls from 30 to 20. No smaller grid weight moves
    anything, so none is taken."""
    model = [[0.9, 0.8, 0.7, 0.6, 0.0], [0.9, 0.8, 0.7, 0.65, 0.5]]
    blend = _blend_of([100] * 5 + [0, 0], 5, [_onehot(7, 5), [0, 0, 0, 0, 0, 0, 0.6]])
    blend.fit_weights(["d"] * 2, _csr(model), _csr([_onehot(7, 5), _onehot(7, 0, 4)]))
    assert (blend.w_few, blend.w_zero) == (0.0, 0.0)


def test_a_few_shot_weight_that_costs_precision_is_refused():
    """Document X's few-shot truth (label 1, 0.40) needs 0.1 x its text to pass label 2 (0.46) in its
    group; the same weight lifts label 1 over document Y's true frequent label (0.42 + 0.1 > 0.5):
    P@1 falls from 50 to 0 (X's own first label, 1.6, stays first at every grid weight), so no weight is taken."""
    blend = _blend_of([100, 5, 5], 3, [[0, 1.0, 0], [0, 1.0, 0]])
    blend.fit_weights(["d"] * 2, _csr([[1.6, 0.4, 0.46], [0.5, 0.42, 0.0]]), _csr([[0, 1, 0], [1, 0, 0]]), k=1)
    assert blend.w_few == 0.0


def _few_shot_hit_for_a_lost_hit(n_docs: int):
    """Document 0's few-shot truth (label 1, 0.1) needs 0.2 x its text to pass label 2 (0.25) in its
    group; the last document's true frequent label (0.5) loses first place to label 1 at that weight
    (0.35 + 0.2); the documents between keep theirs (0.9). Document 0's first label (1.5, wrong)
    stays first at every grid weight."""
    model = [[1.5, 0.1, 0.25]] + [[0.9, 0, 0]] * (n_docs - 2) + [[0.5, 0.35, 0]]
    truth = [[0, 1, 0]] + [[1, 0, 0]] * (n_docs - 1)
    texts = [[0, 1.0, 0]] + [[0, 0, 0]] * (n_docs - 2) + [[0, 1.0, 0]]
    return _blend_of([100, 5, 5], 3, texts), _csr(model), _csr(truth)


def _zero_shot_reorder_for_a_lost_hit(n_docs: int):
    """Document 0's zero-shot truth (label 5) rises from fifth to first at a weight of 1.0; the last
    document's true label 4 (0.5) leaves its top five to zero-shot label 6 (0.6) at that weight:
    nDCG@5 rises, P@5 loses one hit; the documents between have their one label right."""
    model = [[0.9, 0.8, 0.7, 0.6, 0.0]] + [[0.9, 0, 0, 0, 0]] * (n_docs - 2) + [[0.9, 0.8, 0.7, 0.65, 0.5]]
    truth = [_onehot(7, 5)] + [_onehot(7, 0)] * (n_docs - 2) + [_onehot(7, 0, 4)]
    texts = [_onehot(7, 5)] + [_onehot(7)] * (n_docs - 2) + [[0, 0, 0, 0, 0, 0, 0.6]]
    return _blend_of([100] * 5 + [0, 0], 5, texts), _csr(model), _csr(truth)


@pytest.mark.parametrize("n_docs, weight", [(200, 0.0), (400, 0.2)])
def test_a_few_shot_weight_may_cost_at_most_three_tenths_of_a_point_of_precision(n_docs, weight):
    """One hit of P@1 lost in 200 documents is 0.5 points: refused; in 400, 0.25: taken."""
    blend, model, truth = _few_shot_hit_for_a_lost_hit(n_docs)
    blend.fit_weights(["d"] * n_docs, model, truth, k=1)
    assert blend.w_few == weight


@pytest.mark.parametrize("n_docs, weight", [(50, 0.0), (100, 1.0)])
def test_a_zero_shot_weight_may_cost_at_most_three_tenths_of_a_point_of_precision(n_docs, weight):
    """One hit of P@5 lost in 50 documents is 0.4 points: refused; in 100, 0.2: taken."""
    blend, model, truth = _zero_shot_reorder_for_a_lost_hit(n_docs)
    blend.fit_weights(["d"] * n_docs, model, truth)
    assert (blend.w_few, blend.w_zero) == (0.0, weight)


def test_a_zero_shot_weight_that_only_reorders_the_top_five_is_taken():
    """Document 0's zero-shot truth rises from fifth to first; nothing leaves a top five."""
    blend, model, truth = _zero_shot_reorder_for_a_lost_hit(3)
    model, truth = model[:2], truth[:2]
    blend.fixed = blend.fixed[:2]
    blend.fit_weights(["d"] * 2, model, truth)
    assert blend.w_zero == 1.0


def test_refitting_a_blend_ignores_the_weights_it_had():
    """The search measures every candidate at the weights it names, not at the blend's current ones."""
    for preset in [(0.0, 0.0), (1.0, 1.0), (0.05, 0.01)]:
        blend = _fixed_blend(TEXTS + [[0, 0, 0, 1.0]])
        blend.w_few, blend.w_zero = preset
        blend.fit_weights(["d"] * 5, _csr(MODEL + [[0.25, 0.0, 0.0]]), _csr(TRUTH + [[1, 0, 0, 0]]), k=1)
        assert (blend.w_few, blend.w_zero) == (0.2, 0.0), preset
        blend = _fixed_blend(TEXTS)
        blend.w_few, blend.w_zero = preset
        blend.fit_weights(["d"] * 4, _csr(MODEL), _csr(TRUTH), k=1)
        assert (blend.w_few, blend.w_zero) == (0.2, 0.3), preset


# Labels: 0 frequent, 1 and 2 few-shot, 3 and 4 zero-shot. F: few-shot truth 1 passes label 2 (0.46) at
# w_few 0.1. G: zero-shot truth 3 passes label 0 (0.15) at w_zero 0.2, and passes few-shot label 2 (text
# 0.5) only while w_few stays below 0.4. Z1, Z2: their frequent truth (0.5) loses to zero-shot label 4
# (text 0.8) at w_zero 1.0. P1, P2: their frequent truth (0.8) loses to few-shot label 1 at w_few 1.0.
STALE_MODEL = [[0.9, 0.40, 0.46], [0.15, 0, 0], [0.5, 0, 0], [0.5, 0, 0], [0.8, 0.1, 0], [0.8, 0.1, 0]]
STALE_TEXTS = [[0, 1.0, 0, 0, 0], [0, 0, 0.5, 1.0, 0], [0, 0, 0, 0, 0.8], [0, 0, 0, 0, 0.8], [0, 1.0, 0, 0, 0],
               [0, 1.0, 0, 0, 0]]
STALE_TRUTH = [[0, 1, 0, 0, 0], [0, 0, 0, 1, 0]] + [[1, 0, 0, 0, 0]] * 4


@pytest.mark.parametrize("preset", [(0.0, 0.0), (1.0, 1.0)])
def test_every_candidate_is_measured_at_the_weights_it_names_not_the_blends_current_ones(preset):
    """The few-shot search measures with no zero-shot weight, the zero-shot search with the chosen
    few-shot weight, whatever weights the blend held before (``update`` refits a loaded blend)."""
    blend = _blend_of([100, 5, 5, 0, 0], 3, STALE_TEXTS)
    blend.w_few, blend.w_zero = preset
    blend.fit_weights(["d"] * 6, _csr(STALE_MODEL), _csr(STALE_TRUTH), k=1)
    assert (blend.w_few, blend.w_zero) == (0.1, 0.2)


def test_the_smallest_grid_weights_are_tried():
    """A few-shot truth 0.01 behind (0.40 against 0.41) needs 0.02 x its text; a zero-shot truth
    needs 0.01 x its text (0.9) to pass a known label scored 0.005."""
    model = [[0.9, 0.40, 0.41], [0.005, 0, 0]]
    texts = [[0, 1.0, 0, 0], [0, 0, 0, 0.9]]
    blend = _blend_of([100, 5, 5, 0], 3, texts)
    blend.fit_weights(["d"] * 2, _csr(model), _csr([[0, 1, 0, 0], [0, 0, 0, 1]]), k=1)
    assert (blend.w_few, blend.w_zero) == (0.02, 0.01)


def _frequent_hit_lost_in_a_crowd(zero_shot: bool, n_fillers: int):
    """Document A's frequent truth L (label 9) is tenth overall but fifth of the frequent labels;
    the text label 10 pushes it out of the top ten at the weight document B's truth (label 11)
    needs to rise (few-shot: 0.12 + 0.5 into the top ten; zero-shot: 0.98 x 1.0 to first). The
    fillers have their frequent label right, so each of the 1 + ``n_fillers`` documents with a
    frequent truth holds 100 / (1 + n_fillers) points of frequent-label RP@5."""
    ranked = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.45]  # labels 0-3, 9 frequent; 4-8 few-shot
    known_a, known_b = ([], []) if zero_shot else ([0.1, 0.0], [0.0, 0.12])  # labels 10, 11 when known
    model = [ranked + known_a, ranked + known_b] + [[0.9] + [0.0] * (len(ranked + known_a) - 1)] * n_fillers
    push, rise = (0.6, 0.98) if zero_shot else (1.0, 1.0)  # label 10's text in A, label 11's in B
    texts = [[0.0] * 10 + [push, 0.0], [0.0] * 11 + [rise]] + [_onehot(12)] * n_fillers
    truth = [_onehot(12, 9), _onehot(12, 11)] + [_onehot(12, 0)] * n_fillers
    freq = [100] * 4 + [5] * 5 + [100] + ([0, 0] if zero_shot else [5, 5])
    return _blend_of(freq, 10 if zero_shot else 12, texts), _csr(model), _csr(truth)


@pytest.mark.parametrize("zero_shot", [False, True])
@pytest.mark.parametrize("n_fillers, taken", [(99, False), (299, True)])
def test_a_weight_may_cost_at_most_half_a_point_of_frequent_label_recall(zero_shot, n_fillers, taken):
    """One frequent hit lost among 100 documents is 1 point: refused; among 300, a third: taken."""
    blend, model, truth = _frequent_hit_lost_in_a_crowd(zero_shot, n_fillers)
    blend.fit_weights(["d"] * truth.shape[0], model, truth)
    chosen = blend.w_zero if zero_shot else blend.w_few
    assert chosen == ((1.0 if zero_shot else 0.5) if taken else 0.0)
