"""ELIAS's learned index and shortlist, against hand-worked and brute-force expectations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from xmc.nn.index import LearnedIndex, approx_adjacency, dedupe_best


def test_dedupe_keeps_each_labels_best_copy():
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 6, size=(50, 12)))
    scores = torch.from_numpy(rng.random((50, 12)).astype(np.float32))
    out_labels, out_scores = dedupe_best(labels, scores, pad=6)
    for row in range(50):
        best = {}
        for label, score in zip(labels[row].tolist(), scores[row].tolist(), strict=True):
            best[label] = max(best.get(label, -1.0), score)
        pairs = list(zip(out_labels[row].tolist(), out_scores[row].tolist(), strict=True))
        kept = [(lab, s) for lab, s in pairs if lab != 6]
        assert len(kept) == len(best) and dict(kept) == best  # one copy of each label, its best score
        assert all(s == 0 for lab, s in pairs if lab == 6)


def _learned_index():
    """3 clusters over 5 labels; label 1 hangs under clusters 0 and 2, label 4 under 1 and 2."""
    A = np.zeros((5, 3), np.float32)
    A[[0, 1], 0] = [2.0, 1.0]
    A[[2, 3, 4], 1] = [3.0, 1.0, 1.0]
    A[[1, 4], 2] = [1.0, 4.0]
    index = LearnedIndex(3, 5, kappa=3, beta=2.0)
    index.set_adjacency(sp.csr_matrix(A), init="weights")
    return index, A


def test_learned_index_weights_path_scores_and_best_path():
    index, A = _learned_index()
    labels, weights = index.slot_weights(torch.arange(3))
    for c in range(3):  # weights: min(1, beta x softmax(log A[:, c])) = min(1, 2 x A / sum(A))
        col = A[:, c]
        want = {lab: min(1.0, 2.0 * col[lab] / col.sum()) for lab in np.flatnonzero(col)}
        got = {lab: w for lab, w in zip(labels[c].tolist(), weights[c].tolist(), strict=True) if lab != 5}
        assert got.keys() == want.keys() and all(got[lab] == pytest.approx(want[lab], rel=1e-5) for lab in want)
    cluster_scores = torch.tensor([[0.9, 0.5, 0.8]])
    out_labels, path = index.expand(torch.tensor([[0, 1, 2]]), cluster_scores)
    best = {}
    for c in range(3):
        for lab in np.flatnonzero(A[:, c]):
            w = min(1.0, 2.0 * A[lab, c] / A[:, c].sum())
            best[lab] = max(best.get(lab, 0.0), float(cluster_scores[0, c]) * w)
    got = {lab: p for lab, p in zip(out_labels[0].tolist(), path[0].tolist(), strict=True) if lab != 5}
    assert got.keys() == best.keys() and all(got[lab] == pytest.approx(best[lab], rel=1e-5) for lab in best)


def test_parents_are_the_highest_weight_clusters():
    index, A = _learned_index()
    weights = np.where(A > 0, np.minimum(1.0, 2.0 * A / A.sum(0, keepdims=True)), -1)
    assert index.parent[:5].tolist() == weights.argmax(1).tolist()
    with torch.no_grad():  # make cluster 0 hold label 1 far more strongly than cluster 2
        index.edge_logits[0, 1] = 10.0
    index.refresh_parents()
    assert int(index.parent[1]) == 0


def test_fixed_index_slots_are_the_tree_and_weigh_one():
    leaves = sp.csr_matrix((np.ones(5, np.float32), [0, 0, 1, 1, 1], np.arange(6)), shape=(5, 2))
    index = LearnedIndex(2, 5, kappa=4)
    index.assign(leaves)
    labels, weights = index.slot_weights(torch.arange(2))
    assert labels.shape == (2, 3)  # the widest cluster's width, not kappa, before the index is learned
    assert sorted(lab for lab in labels[0].tolist() if lab != 5) == [0, 1] and sorted(labels[1].tolist()) == [2, 3, 4]
    assert weights.tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    assert index.parent[:5].tolist() == [0, 0, 1, 1, 1]


def test_approx_adjacency_is_y_transpose_m_cut_to_kappa():
    # 3 documents, 4 labels, 2 clusters; M holds each document's shortlisted cluster scores
    Y = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], np.float32))
    M = sp.csr_matrix(np.array([[0.9, 0.2], [0.5, 0.0], [0.0, 0.7]], np.float32))
    # Y^T M by hand: label 0: [0.9, 0.2]; 1: [1.4, 0.2]; 2: [0.5, 0.7]; 3: [0.0, 0.7]
    A = approx_adjacency(M, Y, kappa=2).toarray()
    np.testing.assert_allclose(A, [[0.9, 0.0], [1.4, 0.0], [0.0, 0.7], [0.0, 0.7]], rtol=1e-6)
    keep = sp.csr_matrix((np.ones(4, np.float32), [0, 0, 1, 1], np.arange(5)), shape=(4, 2))
    kept = approx_adjacency(M, Y, kappa=2, keep=keep).toarray()
    assert (kept > 0).tolist() == [[True, False], [True, False], [False, True], [False, True]]
    wide = approx_adjacency(M, Y, kappa=3, keep=keep).toarray()
    assert (wide[:, 0] > 0).tolist() == [True, True, True, False]  # label 2 joins cluster 0 behind the tree's own


def test_the_index_stays_sparse():
    """Memory in C x kappa + L: a million labels in 16k clusters of 64 slots, no (C, L) anything."""
    index = LearnedIndex(16384, 1_000_000, kappa=64)
    sizes = {name: t.numel() for name, t in index.state_dict().items()}
    assert sum(sizes.values()) <= 2 * 16384 * 64 + 1_000_001 + 2


def _random_net(n_labels=60, n_clusters=8, kappa=20, seed=0):
    from xmc.nn.elias import EliasNet
    from xmc.nn.encoders import Tap

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    features = torch.randn(16, 12)

    class Fixed(torch.nn.Module):
        def forward(self, ids, mask, taps=None):
            return [features[: ids.shape[0]]]

    net = EliasNet(Fixed(), (Tap("mean", -1),), 12, n_clusters, n_labels, kappa=kappa, beam=3, shortlist=15,
                   alpha=3.0, beta=8.0, dropout=0.0)
    rows = rng.integers(0, n_labels, size=n_clusters * kappa)
    A = sp.csr_matrix((rng.random(rows.size).astype(np.float32) + 0.01,
                       (rows, np.repeat(np.arange(n_clusters), kappa))), shape=(n_labels, n_clusters))
    net.index.set_adjacency(A, init="weights")
    Y = sp.csr_matrix((np.ones(32, np.float32), rng.integers(0, n_labels, 32), np.arange(0, 33, 2)),
                      shape=(16, n_labels))
    return net, torch.zeros((16, 1), dtype=torch.long), Y


@pytest.mark.parametrize("training", [True, False])
def test_dense_and_sorted_shortlists_agree(training):
    """The two ways to build a shortlist (a (B, L) row per document, or sorting the expanded slots)
    give the same labels, paths, targets, recall-term paths and label logits."""
    net, ids, Y = _random_net()
    x = net.feature(ids, ids)
    out = {}
    for dense in (True, False):
        net.dense_labels = dense
        labels, path, targets, positives = net.shortlist(x, Y if training else None)
        pairs = [sorted((lab, round(p, 5)) for lab, p in zip(labels[r].tolist(), path[r].tolist(), strict=True)
                        if lab != net.n_labels) for r in range(16)]
        logits = net.label_logits(x, labels)
        torch.testing.assert_close(logits, net.heads[1](x, labels))  # one product gathered = each row's own
        scored = [sorted((lab, round(z, 4)) for lab, z in zip(labels[r].tolist(), logits[r].tolist(), strict=True))
                  for r in range(16)]
        out[dense] = (pairs, scored, None if targets is None else float(targets.sum()),
                      None if positives is None else sorted(round(p, 5) for p in positives.tolist()))
    assert out[True] == out[False]
    if training:
        assert out[True][2] == Y.nnz  # every positive is in the shortlist
