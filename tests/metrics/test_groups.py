"""RP@k, label groups, deciles and F1 against an independent, loop-by-loop reimplementation of the
EURLEX57K papers' evaluation definitions (Chalkidis et al.), and scikit-learn's F1."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import f1_score, precision_score, recall_score

from xmc.metrics.groups import (
    decile_metrics,
    f1_scores,
    group_metrics,
    kept_labels,
    label_groups,
    per_label_f1,
    rank_metrics,
)


def _random(seed, n=60, L=40):
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, L)) < 0.08).astype(np.float32)
    truth[:3] = 0  # documents without any label
    scores = rng.random((n, L)).astype(np.float32)  # continuous: no ties
    return truth, scores


def _paper(y_t, y_s, k):
    """The definitions of the EURLEX57K code, one document at a time (dense scores; binary gains)."""
    y_t = np.asarray(y_t, np.float64)
    order = np.argsort(y_s)[::-1]
    top = y_t[order[:k]]
    n_pos = y_t.sum()
    gains = 2 ** top - 1
    dcg = (gains / np.log2(np.arange(top.size) + 2)).sum()
    best_top = np.sort(y_t)[::-1][:k]
    best = ((2 ** best_top - 1) / np.log2(np.arange(best_top.size) + 2)).sum()
    return {"P": top.sum() / k, "RP": top.sum() / min(k, n_pos), "R": top.sum() / n_pos, "nDCG": dcg / best}


def _paper_means(truth, scores, k):
    rows = [_paper(t, s, k) for t, s in zip(truth, scores, strict=True) if t.sum() > 0]
    return {name: 100 * np.mean([r[name] for r in rows]) for name in ("P", "RP", "R", "nDCG")}


@pytest.mark.parametrize("seed", range(5))
def test_rank_metrics_match_the_papers_definitions(seed):
    truth, scores = _random(seed)
    ours = rank_metrics(sp.csr_matrix(truth), sp.csr_matrix(scores), ks=(1, 3, 5, 10))
    for k in (1, 3, 5, 10):
        ref = _paper_means(truth, scores, k)
        for name in ("P", "RP", "R", "nDCG"):
            assert ours[f"{name}@{k}"] == pytest.approx(ref[name], abs=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_groups_restrict_columns_and_skip_documents_without_labels_in_the_group(seed):
    truth, scores = _random(seed, n=80, L=50)
    freq = np.random.default_rng(seed).integers(0, 120, size=44)  # 6 labels past the vocabulary: unseen
    ours = group_metrics(sp.csr_matrix(truth), sp.csr_matrix(scores), freq, ks=(1, 5))
    full = np.concatenate([freq, np.zeros(6, int)])
    for name, mask in (("frequent", full > 50), ("few", (full >= 1) & (full <= 50)), ("zero", full == 0)):
        t, s = truth[:, mask], scores[:, mask]
        assert ours[name]["n_labels"] == mask.sum() and ours[name]["n_docs"] == (t.sum(1) > 0).sum()
        for k in (1, 5):
            ref = _paper_means(t, s, k)
            assert ours[name][f"RP@{k}"] == pytest.approx(ref["RP"], abs=1e-6)
            assert ours[name][f"nDCG@{k}"] == pytest.approx(ref["nDCG"], abs=1e-6)
    groups = label_groups(freq, 50)
    assert sorted(np.concatenate(list(groups.values())).tolist()) == list(range(50))


def test_rp_by_hand():
    truth = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], np.float32))
    scores = sp.csr_matrix(np.array([[.9, .1, .8, .7, .6, .5], [.1, .9, .8, .7, .6, .5]], np.float32))
    m = rank_metrics(truth, scores, ks=(5,))
    # doc 0: one hit in the top 5 (label 0), 2 true labels -> RP 1/2; doc 1: label 0 ranks 6th -> 0
    assert m["RP@5"] == pytest.approx(25.0) and m["P@5"] == pytest.approx(10.0)


@pytest.mark.parametrize("seed", range(3))
def test_f1_matches_scikit_learn(seed):
    truth, scores = _random(seed)
    pred = kept_labels(sp.csr_matrix(scores), threshold=0.9)
    ours = f1_scores(sp.csr_matrix(truth), pred)
    dense = pred.toarray()
    assert ours["micro-F1"] == pytest.approx(100 * f1_score(truth, dense, average="micro"), abs=1e-6)
    assert ours["micro-P"] == pytest.approx(100 * precision_score(truth, dense, average="micro"), abs=1e-6)
    assert ours["micro-R"] == pytest.approx(100 * recall_score(truth, dense, average="micro"), abs=1e-6)
    present = np.flatnonzero((truth.sum(0) > 0) | (dense.sum(0) > 0))
    assert ours["macro-F1"] == pytest.approx(100 * f1_score(truth, dense, average="macro", labels=present,
                                                            zero_division=0), abs=1e-6)
    top = kept_labels(sp.csr_matrix(scores), top_k=3)
    assert np.all(np.diff(top.indptr) == 3)


def test_deciles_partition_the_labels_and_count_by_hand():
    truth = sp.csr_matrix(np.eye(20, dtype=np.float32))
    scores = sp.csr_matrix(np.eye(20, dtype=np.float32) + 0.5 * np.roll(np.eye(20, dtype=np.float32), 1, axis=1))
    freq = np.arange(20)  # label j seen j times: deciles are pairs of labels
    rows = decile_metrics(truth, scores, freq, k=2)
    assert [r["decile"] for r in rows] == list(range(1, 11))
    assert sum(r["true"] for r in rows) == 20 and sum(r["predicted"] for r in rows) == 40
    assert all(r["recall"] == 100.0 and r["precision"] == 50.0 for r in rows)
    assert rows[0]["min_freq"] == 0 and rows[-1]["max_freq"] == 19


def test_label_groups_draw_their_bounds_where_the_papers_do():
    groups = label_groups(np.array([0, 1, 50, 51, 200]), 7)  # two labels past the vocabulary
    assert groups["frequent"].tolist() == [3, 4]
    assert groups["few"].tolist() == [1, 2]
    assert groups["zero"].tolist() == [0, 5, 6]


def test_a_group_without_documents_has_counts_but_no_metrics():
    truth = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0]], np.float32))
    scores = sp.csr_matrix(np.array([[0.9, 0.2], [0.1, 0.8]], np.float32))  # fewer columns than labels
    out = group_metrics(truth, scores, np.array([100, 100, 3]), ks=(1,))
    assert out["few"] == {"n_labels": 1, "n_docs": 0}
    assert out["frequent"]["P@1"] == pytest.approx(100.0) and out["frequent"]["n_docs"] == 2
    assert out["zero"] == {"n_labels": 0, "n_docs": 0}
    assert set(out["frequent"]) == {"P@1", "RP@1", "nDCG@1", "R@1", "n_labels", "n_docs"}  # the ks asked for
    truth = sp.csr_matrix(np.array([[1, 0, 1], [0, 1, 0]], np.float32))
    few = group_metrics(truth, scores, np.array([100, 100, 3]), ks=(1,))["few"]  # its column has no scores
    assert few["n_docs"] == 1 and few["P@1"] == 0.0


def _counts(truth, pred):
    t, p = truth > 0, pred > 0
    return (t & p).sum(0), p.sum(0), t.sum(0)


@pytest.mark.parametrize("seed", range(3))
def test_f1_counts_memberships_whatever_the_stored_values(seed):
    """Truth given as counts and predictions as raw scores: both are 0/1 memberships; predictions
    with fewer columns than the truth are padded with empty columns."""
    truth, scores = _random(seed)
    counts = truth * np.random.default_rng(seed).integers(1, 4, truth.shape)
    pred = np.where(scores > 0.85, scores, 0.0)[:, :-5]
    ours = f1_scores(sp.csr_matrix(counts), sp.csr_matrix(pred))
    padded = np.hstack([pred > 0, np.zeros((pred.shape[0], 5), bool)])
    tp, n_pred, n_true = _counts(truth, padded)
    p, r = tp.sum() / n_pred.sum(), tp.sum() / n_true.sum()
    assert ours["micro-P"] == pytest.approx(100 * p) and ours["micro-R"] == pytest.approx(100 * r)
    assert ours["micro-F1"] == pytest.approx(100 * 2 * p * r / (p + r))
    present = (n_pred > 0) | (n_true > 0)
    lp = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)[present]
    lr = np.where(n_true > 0, tp / np.maximum(n_true, 1), 0.0)[present]
    lf = np.where(lp + lr > 0, 2 * lp * lr / np.maximum(lp + lr, 1e-12), 0.0)
    assert ours["macro-P"] == pytest.approx(100 * lp.mean())
    assert ours["macro-R"] == pytest.approx(100 * lr.mean())
    assert ours["macro-F1"] == pytest.approx(100 * lf.mean())
    np.testing.assert_allclose(per_label_f1(sp.csr_matrix(counts), sp.csr_matrix(padded.astype(np.float32))),
                               f1_score(truth, padded, average=None, zero_division=0))


def test_f1_of_nothing_is_zero_not_nan():
    empty = sp.csr_matrix((3, 4), dtype=np.float32)
    assert f1_scores(empty, empty) == dict.fromkeys(
        ("micro-P", "micro-R", "micro-F1", "macro-P", "macro-R", "macro-F1"), 0.0)
    truth = sp.csr_matrix(np.eye(3, 4, dtype=np.float32))
    out = f1_scores(truth, empty)  # nothing predicted: precision 0 by convention, recall 0
    assert out["micro-P"] == 0.0 and out["micro-R"] == 0.0 and out["macro-F1"] == 0.0
    np.testing.assert_array_equal(per_label_f1(truth, empty), np.zeros(4))


def test_f1_by_hand_with_a_label_absent_everywhere():
    """Labels 0-5 over three documents; label 4 is neither true nor predicted, so the macro averages
    run over the other five: (P, R, F1) per label 0: (1, 1/2, 2/3), 1: (0, 0, 0) predicted once
    wrongly, 2: (0, 0, 0) never predicted, 3: (0, 0, 0) never true, 5: (1, 1, 1)."""
    truth = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 1]], np.float32))
    pred = sp.csr_matrix(np.array([[0.9, 0, 0, 0.4, 0, 0], [0, 0.7, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0.2]], np.float32))
    out = f1_scores(truth, pred)
    assert out["macro-P"] == pytest.approx(100 * 2 / 5)
    assert out["macro-R"] == pytest.approx(100 * 1.5 / 5)
    assert out["macro-F1"] == pytest.approx(100 * (2 / 3 + 1) / 5)
    assert out["micro-P"] == pytest.approx(100 * 2 / 4) and out["micro-R"] == pytest.approx(100 * 2 / 5)
    assert out["micro-F1"] == pytest.approx(100 * 4 / 9)
    np.testing.assert_allclose(per_label_f1(truth, pred), [2 / 3, 0, 0, 0, 0, 1])
    assert f1_scores(truth, truth) == dict.fromkeys(out, 100.0)  # micro-P equal to micro-R: F1 is theirs


def test_kept_labels_keep_scores_at_the_threshold_and_the_top_k():
    scores = sp.csr_matrix(np.array([[0.5, 0.2, 0.9, 0.0], [0.1, 0.3, 0.4, 0.35]], np.float32))
    assert kept_labels(scores, threshold=0.4).toarray().tolist() == [[1, 0, 1, 0], [0, 0, 1, 0]]
    assert kept_labels(scores, top_k=2).toarray().tolist() == [[1, 0, 1, 0], [0, 0, 1, 1]]
    assert kept_labels(scores, threshold=0.38, top_k=2).toarray().tolist() == [[1, 0, 1, 0], [0, 0, 1, 0]]
    kept = kept_labels(scores, threshold=0.4)
    assert kept.dtype == np.float64 and kept.nnz == 3  # below-threshold entries are dropped, not stored as 0
    assert scores.toarray()[0, 0] == np.float32(0.5)  # the input is left as it was
    assert kept_labels(scores, threshold=0.5).toarray().tolist() == [[1, 0, 1, 0], [0, 0, 0, 0]]  # at: kept
    assert kept_labels(scores, top_k=1).dtype == np.float64


def _deciles_by_loops(truth, scores, freq, k):
    n_labels = truth.shape[1]
    freq = np.concatenate([freq, np.zeros(n_labels - freq.size, int)])
    decile = np.empty(n_labels, int)
    decile[np.argsort(freq, kind="stable")] = np.arange(n_labels) * 10 // n_labels
    pred, hit, true = np.zeros(10), np.zeros(10), np.zeros(10)
    for t, s in zip(truth, scores, strict=True):
        for j in np.argsort(-s, kind="stable")[:k]:
            if s[j] > 0:
                pred[decile[j]] += 1
                hit[decile[j]] += t[j] > 0
        for j in np.flatnonzero(t):
            true[decile[j]] += 1
    return decile, freq, pred, hit, true


@pytest.mark.parametrize("seed", range(3))
def test_deciles_match_a_loop_by_loop_count(seed):
    truth, scores = _random(seed, n=50, L=37)
    scores[scores < 0.3] = 0  # labels without a score are never predicted
    freq = np.random.default_rng(seed).integers(0, 30, size=33)  # 4 labels unseen in training
    rows = decile_metrics(sp.csr_matrix(truth), sp.csr_matrix(scores), freq, k=4)
    decile, full, pred, hit, true = _deciles_by_loops(truth, scores, freq, 4)
    for d, row in enumerate(rows):
        assert row["decile"] == d + 1
        assert (row["predicted"], row["true"]) == (pred[d], true[d])
        assert row["precision"] == pytest.approx(100 * hit[d] / pred[d] if pred[d] else 0.0)
        assert row["recall"] == pytest.approx(100 * hit[d] / true[d] if true[d] else 0.0)
        assert (row["min_freq"], row["max_freq"]) == (full[decile == d].min(), full[decile == d].max())
    by_default = decile_metrics(sp.csr_matrix(truth), sp.csr_matrix(scores), freq)
    assert by_default == decile_metrics(sp.csr_matrix(truth), sp.csr_matrix(scores), freq, k=5)  # top 5


def test_deciles_of_fewer_than_ten_labels_leave_groups_empty():
    truth = sp.csr_matrix(np.eye(4, dtype=np.float32))
    rows = decile_metrics(truth, truth, np.array([3, 1, 2, 0]), k=1)
    assert [r["true"] for r in rows] == [1, 0, 1, 0, 0, 1, 0, 1, 0, 0]
    assert rows[1] == {"decile": 2, "min_freq": 0, "max_freq": 0, "precision": 0.0, "recall": 0.0,
                       "predicted": 0, "true": 0}


def test_rank_metrics_keep_or_skip_documents_without_labels():
    truth = sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]], np.float32))
    scores = sp.csr_matrix(np.array([[0.9, 0.5, 0.0], [0.2, 0.8, 0.1]], np.float32))
    skipped = rank_metrics(truth, scores, ks=(1, 2))  # one document left: its own scores
    assert skipped == {"P@1": 100.0, "RP@1": 100.0, "nDCG@1": 100.0, "R@1": 100.0,
                       "P@2": 50.0, "RP@2": 100.0, "nDCG@2": 100.0, "R@2": 100.0}
    kept = rank_metrics(truth, scores, ks=(1, 2), skip_empty=False)  # the empty document counts as 0
    assert kept == {key: value / 2 for key, value in skipped.items()}
