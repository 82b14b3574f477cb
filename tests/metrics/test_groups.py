"""RP@k, label groups, deciles and F1 against an independent, loop-by-loop reimplementation of the
EURLEX57K papers' evaluation definitions (Chalkidis et al.), and scikit-learn's F1."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import f1_score, precision_score, recall_score

from xmc.metrics.groups import decile_metrics, f1_scores, group_metrics, kept_labels, label_groups, rank_metrics


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
