"""Metrics against values worked out by hand on a 4-document fixture.

doc0: truth {0, 2}; scores 0:.9, 1:.8, 2:.8 (tie -> lower index first), 3:.1 -> ranking 0, 1, 2, 3
doc1: truth {1};    scores 1:.5 only (k above the row's number of scores)
doc2: no labels;    scores 0:.3
doc3: truth {3};    no scores
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.metrics import (
    coverage_at_k,
    evaluate_scores,
    inv_propensity,
    ndcg_at_k,
    precision_at_k,
    psndcg_at_k,
    psp_at_k,
    recall_at_k,
)

Y_TRUE = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], np.float32))
Y_SCORE = sp.csr_matrix(np.array([[0.9, 0.8, 0.8, 0.1], [0, 0.5, 0, 0], [0.3, 0, 0, 0], [0, 0, 0, 0]], np.float32))
W = np.array([1.0, 2.0, 3.0, 4.0])
D = [1 / math.log2(r + 1) for r in range(1, 6)]  # rank discounts 1, 1/log2(3), 1/2, ...


def test_precision():
    assert precision_at_k(Y_TRUE, Y_SCORE, 1) == pytest.approx(2 / 4)
    assert precision_at_k(Y_TRUE, Y_SCORE, 3) == pytest.approx((2 / 3 + 1 / 3) / 4)
    assert precision_at_k(Y_TRUE, Y_SCORE, 5) == pytest.approx((2 / 5 + 1 / 5) / 4)


def test_tie_goes_to_lower_label_index():
    # if label 2 (a hit) were ranked before label 1 at 0.8, P@2 of doc0 would be 1 instead of 1/2
    assert precision_at_k(Y_TRUE[:1], Y_SCORE[:1], 2) == pytest.approx(1 / 2)


def test_ndcg():
    doc0 = (D[0] + D[2]) / (D[0] + D[1])
    assert ndcg_at_k(Y_TRUE, Y_SCORE, 3) == pytest.approx((doc0 + 1.0) / 4)
    assert ndcg_at_k(Y_TRUE, Y_SCORE, 1) == pytest.approx(2 / 4)


def test_recall():
    assert recall_at_k(Y_TRUE, Y_SCORE, 1) == pytest.approx((1 / 2 + 1) / 4)
    assert recall_at_k(Y_TRUE, Y_SCORE, 3) == pytest.approx((1 + 1) / 4)


def test_psp_is_normalised_by_best_reachable():
    # top-1 gains: doc0 label0 (w1) + doc1 label1 (w2); best: doc0 w3, doc1 w2, doc3 w4
    assert psp_at_k(Y_TRUE, Y_SCORE, 1, W) == pytest.approx(3 / 9)
    assert psp_at_k(Y_TRUE, Y_SCORE, 3, W) == pytest.approx((1 + 3 + 2) / (3 + 1 + 2 + 4))


def test_psndcg():
    i0 = D[0] + D[1]  # doc0's binary ideal DCG@3 (two labels)
    gained = (1 * D[0] + 3 * D[2]) / i0 + 2.0
    best = (3 * D[0] + 1 * D[1]) / i0 + 2.0 + 4.0
    assert psndcg_at_k(Y_TRUE, Y_SCORE, 3, W) == pytest.approx(gained / best)


def test_coverage():
    assert coverage_at_k(Y_TRUE, Y_SCORE, 3) == pytest.approx(3 / 4)
    assert coverage_at_k(Y_TRUE, Y_SCORE, 1) == pytest.approx(2 / 4)


def test_perfect_scores_give_one():
    assert precision_at_k(Y_TRUE[[0]], Y_TRUE[[0]], 2) == 1.0
    assert ndcg_at_k(Y_TRUE, Y_TRUE, 5) == pytest.approx(3 / 4)  # doc2 has no labels -> 0
    assert psp_at_k(Y_TRUE, Y_TRUE.multiply(W).tocsr(), 5, W) == pytest.approx(1.0)


def test_report_equals_individual_functions():
    report = evaluate_scores(Y_TRUE, Y_SCORE, W, ks=(1, 3))
    for k in (1, 3):
        assert report[f"P@{k}"] == pytest.approx(100 * precision_at_k(Y_TRUE, Y_SCORE, k), abs=1e-3)
        assert report[f"nDCG@{k}"] == pytest.approx(100 * ndcg_at_k(Y_TRUE, Y_SCORE, k), abs=1e-3)
        assert report[f"PSP@{k}"] == pytest.approx(100 * psp_at_k(Y_TRUE, Y_SCORE, k, W), abs=1e-3)
        assert report[f"PSnDCG@{k}"] == pytest.approx(100 * psndcg_at_k(Y_TRUE, Y_SCORE, k, W), abs=1e-3)
    assert report["R@10"] == pytest.approx(100 * recall_at_k(Y_TRUE, Y_SCORE, 10), abs=1e-3)


def test_inv_propensity_formula_and_widening():
    Y = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], np.float32))
    c = (math.log(4) - 1) * 2.5**0.55
    expected = [1 + c * (n + 1.5) ** -0.55 for n in (2, 1, 0, 0)]
    assert inv_propensity(Y, n_labels=4) == pytest.approx(expected)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="rows"):
        precision_at_k(Y_TRUE, Y_SCORE[:2], 1)
    with pytest.raises(ValueError, match="k must be a positive int"):
        precision_at_k(Y_TRUE, Y_SCORE, 0)


def test_vectorised_metrics_are_fast_on_eurlex_sized_input():
    # 6,000 docs x 4,271 labels with 20 scores each: one report must be well under a second
    rng = np.random.default_rng(0)
    n, L = 6000, 4271
    scores = sp.random(n, L, density=20 / L, random_state=0, format="csr", dtype=np.float32)
    truth = sp.random(n, L, density=5 / L, random_state=1, format="csr", dtype=np.float32)
    import time

    t = time.perf_counter()
    evaluate_scores(truth, scores, rng.uniform(1, 5, L))
    assert time.perf_counter() - t < 5.0  # generous bound for a loaded CI box; measured ~0.2 s


def test_inv_propensity_counts_documents_not_relevance_and_widens_only_when_asked():
    from xmc.metrics import inv_propensity, inv_propensity_from_counts

    Y = sp.csr_matrix(np.array([[2, 0, 1], [1, 0, 0], [0, 0, 3], [1, 0, 0]], np.float32))  # graded relevance
    w = inv_propensity(Y, a=0.5, b=0.4)
    c = (np.log(4) - 1) * 1.4**0.5
    np.testing.assert_allclose(w, 1 + c * (np.array([3.0, 0.0, 2.0]) + 0.4) ** -0.5, rtol=1e-12)
    assert w.dtype == np.float64
    assert inv_propensity(Y, n_labels=3).shape == (3,)  # not wider than asked
    wide = inv_propensity(Y, n_labels=5)
    assert wide.shape == (5,) and wide[3] == wide[4] == wide[1]  # unseen labels weigh like a label seen 0 times
    # the weight uses ln N with N at least 2, so one training document does not make C negative
    np.testing.assert_allclose(inv_propensity_from_counts(np.array([0, 1]), 1),
                               1 + (np.log(2) - 1) * 2.5**0.55 * (np.array([0, 1]) + 1.5) ** -0.55)
    ints = inv_propensity_from_counts(np.array([1, 2], np.int64), 10**6, a=0.6, b=2.6)
    np.testing.assert_allclose(ints, inv_propensity_from_counts(np.array([1.0, 2.0]), 10**6, a=0.6, b=2.6))


def test_format_report_lays_out_families_by_k():
    from xmc.metrics import format_report

    table = format_report({"P@1": 91.2345, "P@5": 70.5, "nDCG@5": 80.0, "n_docs": 3}, "EURLEX57K / dev")
    lines = table.splitlines()
    assert lines[0] == "EURLEX57K / dev"
    assert lines[1] == f"{'metric':<10}{'@1':>9}{'@5':>9}"
    assert lines[2] == f"{'P':<10}{'91.23':>9}{'70.50':>9}"
    assert lines[3] == f"{'nDCG':<10}{'':>9}{'80.00':>9}"
    assert lines[4] == "n_docs: 3" and len(lines) == 5
    assert format_report({"P@1": 1.0}).splitlines()[0].startswith("metric")


def test_format_report_orders_k_numerically():
    from xmc.metrics import format_report

    header = format_report({"P@10": 1.0, "P@3": 2.0, "P@1": 3.0}).splitlines()[0]
    assert header == f"{'metric':<10}{'@1':>9}{'@3':>9}{'@10':>9}"


def test_edge_cases_no_documents_no_labels_one_document():
    empty_true, empty_score = sp.csr_matrix((0, 4), dtype=np.float32), sp.csr_matrix((0, 4), dtype=np.float32)
    for fn in (precision_at_k, recall_at_k, ndcg_at_k):
        assert fn(empty_true, empty_score, 3) == 0.0
    no_labels = sp.csr_matrix((2, 4), dtype=np.float32)
    assert psp_at_k(no_labels, Y_SCORE[:2], 3, W) == 0.0 and psndcg_at_k(no_labels, Y_SCORE[:2], 3, W) == 0.0
    assert coverage_at_k(no_labels, Y_SCORE[:2], 3) == 0.0
    one = evaluate_scores(Y_TRUE[:1], Y_SCORE[:1], W, ks=(1,), recall_k=2)
    assert one["P@1"] == 100.0 and one["R@2"] == 50.0 and one["coverage@1"] == 50.0
    # weights below 1 (tiny training sets give them): the normalisation still applies
    small = np.full(4, 0.5)
    assert psp_at_k(Y_TRUE[1:2], Y_SCORE[1:2], 1, small) == 1.0
    assert psndcg_at_k(Y_TRUE[1:2], Y_SCORE[1:2], 1, small) == 1.0
    assert coverage_at_k(Y_TRUE[1:2], Y_SCORE[1:2], 1) == 1.0  # one label present, and it is found


def test_explicit_zeros_in_the_truth_are_not_labels():
    truth = sp.csr_matrix((np.array([1.0, 0.0], np.float32), np.array([0, 1]), np.array([0, 2])), shape=(1, 4))
    scores = sp.csr_matrix(np.array([[0.1, 0.9, 0, 0]], np.float32))
    assert truth.nnz == 2 and precision_at_k(truth, scores, 1) == 0.0


def test_arguments_are_checked_with_messages_that_name_both_shapes():
    from xmc.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match="k must be a positive int, got True"):
        precision_at_k(Y_TRUE, Y_SCORE, True)
    for bad_k in (0, -1, 2.0):
        with pytest.raises(InvalidInputError, match=f"k must be a positive int, got {bad_k}"):
            precision_at_k(Y_TRUE, Y_SCORE, bad_k)
    wider_truth = sp.hstack([Y_TRUE, sp.csr_matrix((4, 2), dtype=np.float32)]).tocsr()  # 4 rows, 6 columns
    with pytest.raises(InvalidInputError, match="y_true has 4 rows but y_score has 3"):
        precision_at_k(wider_truth, Y_SCORE[:3], 1)
    with pytest.raises(InvalidInputError, match="y_score has 5 label columns but y_true only 4"):
        precision_at_k(Y_TRUE, sp.csr_matrix((4, 5), dtype=np.float32), 1)
    with pytest.raises(InvalidInputError, match="inv_propensity has 3 entries but y_true has 4 labels"):
        psp_at_k(Y_TRUE, Y_SCORE, 1, W[:3])


def test_a_report_of_documents_without_labels_is_zero_not_nan():
    truth = sp.csr_matrix((3, 4), dtype=np.float32)
    scores = sp.csr_matrix(np.array([[0.9, 0.1, 0.0, 0.0]] * 3, np.float32))
    report = evaluate_scores(truth, scores, np.ones(4), ks=(1, 3), recall_k=3)
    assert report == {"P@1": 0.0, "nDCG@1": 0.0, "PSP@1": 0.0, "PSnDCG@1": 0.0, "P@3": 0.0, "nDCG@3": 0.0,
                      "PSP@3": 0.0, "PSnDCG@3": 0.0, "R@3": 0.0, "coverage@3": 0.0}


def test_a_report_by_hand_counts_coverage_and_rounds_to_four_places():
    truth = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0]], np.float32))
    scores = sp.csr_matrix(np.array([[0.9, 0.8, 0.1], [0.7, 0.2, 0.0], [0.3, 0.0, 0.0]], np.float32))
    report = evaluate_scores(truth, scores, np.ones(3), ks=(1,), recall_k=2)
    # top-1 hits: doc 0 (label 0) and doc 2 (label 0), not doc 1: P@1 = 2/3; labels 0, 1, 2 are
    # present and only label 0 is found in a top 1: coverage 1/3; R@2: 1/2, 1/1, 1/1 -> 5/6
    assert report["P@1"] == round(200 / 3, 4) and report["coverage@1"] == round(100 / 3, 4)
    assert report["R@2"] == round(500 / 6, 4)


def test_coverage_counts_only_labels_found_and_one_unit_of_weight_is_enough():
    truth = sp.csr_matrix(np.eye(3, 4, dtype=np.float32))  # doc i: label i
    scores = sp.csr_matrix(np.array([[0.9, 0, 0, 0], [0, 0.8, 0, 0], [0, 0, 0.1, 0.7]], np.float32))
    report = evaluate_scores(truth, scores, np.ones(4), ks=(1,), recall_k=1)
    # top 1: label 0 (right), 1 (right), 3 (wrong): 2 of the 3 true labels are found
    assert report["coverage@1"] == round(200 / 3, 4)
    one = evaluate_scores(truth[:1], scores[:1], np.ones(4), ks=(1,), recall_k=1)
    assert one["PSP@1"] == one["PSnDCG@1"] == 100.0  # best reachable weight and DCG are exactly 1


def test_ranked_labels_pad_short_rows_with_minus_one_and_break_ties_by_index():
    from xmc.metrics.ranking import ranked_labels

    ranked = ranked_labels(Y_SCORE, 3)
    assert ranked.dtype == np.int64
    assert ranked.tolist() == [[0, 1, 2], [1, -1, -1], [0, -1, -1], [-1, -1, -1]]
