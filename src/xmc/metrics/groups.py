"""Metrics the way the EURLEX57K papers report them (Chalkidis et al., ACL 2019 and EMNLP 2020), and
per label group.

- R-Precision@k (RP@k): hits in the top k over ``min(k, number of true labels)``; their main
  metric, because P@k punishes a document with fewer than k labels.
- Label groups: *frequent* (more than 50 training documents), *few-shot* (1 to 50) and *zero-shot*
  (never in the training split: the unseen labels kept as extra columns). A group is evaluated
  the way their code does it: scores and truth restricted to the group's label columns, and the
  documents without a true label in the group left out of that group's average.
- Label-frequency deciles: labels ranked by training frequency, cut into ten groups of equal size,
  with the precision and recall of the top-k predictions that fall in each.
- Precision, recall and F1 of the labels kept by a score threshold or by top-k, micro- and
  macro-averaged.

Unlike :mod:`xmc.metrics.ranking` (the XMC convention: a document without labels counts as 0,
every document stays in the mean), the functions here take ``skip_empty`` as the EURLEX57K code
does. Only stored scores count as predictions: a label without a score is never a hit.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmc.metrics.ranking import _check, _discounts, _ideal_dcg, _n_true, hit_matrix

FREQUENT_MIN = 51  # "frequent": more than 50 training documents
GROUPS = ("frequent", "few", "zero")


def rank_metrics(y_true, y_score, ks=(1, 3, 5, 10), skip_empty: bool = True) -> dict[str, float]:
    """P@k, RP@k, nDCG@k and R@k in percent, averaged over the documents (those with at least one
    true label when ``skip_empty``)."""
    kmax = max(ks)
    y_true, y_score = _check(y_true, y_score, kmax)
    hits, _ = hit_matrix(y_true, y_score, kmax)
    n_true = _n_true(y_true)
    keep = n_true > 0 if skip_empty else np.ones(n_true.size, bool)
    hits, n_true = hits[keep], n_true[keep]
    n = max(int(keep.sum()), 1)
    disc = _discounts(kmax)
    out: dict[str, float] = {}
    # found <= reachable <= n_true: dividing by at least 1 leaves the documents without true labels at 0
    for k in ks:
        found = hits[:, :k].sum(axis=1)
        reachable = np.minimum(n_true, k)
        out[f"P@{k}"] = found.sum() / (k * n)
        out[f"RP@{k}"] = (found / np.maximum(reachable, 1)).sum() / n
        out[f"nDCG@{k}"] = ((hits[:, :k] @ disc[:k]) / _ideal_dcg(n_true, k)).sum() / n
        out[f"R@{k}"] = (found / np.maximum(n_true, 1)).sum() / n
    return {key: 100.0 * float(v) for key, v in out.items()}


def label_groups(train_freq: np.ndarray, n_labels: int) -> dict[str, np.ndarray]:
    """Column indices of the frequent, few-shot and zero-shot labels; columns past ``train_freq``
    are labels unseen in training (zero-shot)."""
    freq = np.concatenate([np.asarray(train_freq, np.int64), np.zeros(max(0, n_labels - len(train_freq)), np.int64)])
    cols = np.arange(n_labels)
    return {"frequent": cols[freq >= FREQUENT_MIN], "few": cols[(freq >= 1) & (freq < FREQUENT_MIN)],
            "zero": cols[freq == 0]}


def restrict(matrix, columns: np.ndarray) -> sp.csr_matrix:
    """The CSR matrix with only ``columns`` (renumbered 0..len-1)."""
    return sp.csr_matrix(matrix)[:, columns].tocsr()


def group_metrics(y_true, y_score, train_freq: np.ndarray, ks=(1, 3, 5, 10)) -> dict[str, dict]:
    """:func:`rank_metrics` of every label group, with its label and document counts."""
    y_true, y_score = sp.csr_matrix(y_true), sp.csr_matrix(y_score)
    y_score = sp.csr_matrix((y_score.data, y_score.indices, y_score.indptr), shape=(y_score.shape[0],
                                                                                    y_true.shape[1]))
    out = {}
    for name, columns in label_groups(train_freq, y_true.shape[1]).items():
        truth = restrict(y_true, columns)
        docs = int((np.diff(truth.indptr) > 0).sum())
        metrics = rank_metrics(truth, restrict(y_score, columns), ks) if docs else {}
        out[name] = {**metrics, "n_labels": int(columns.size), "n_docs": docs}
    return out


def decile_metrics(y_true, y_score, train_freq: np.ndarray, k: int = 5) -> list[dict]:
    """Labels ranked by training frequency (rarest first) and cut into ten equal groups; for each,
    the share of its top-k predictions that are right (precision) and of its true labels that are
    found in the top k (recall), in percent."""
    y_true, y_score = _check(y_true, y_score, k)
    hits, ranked = hit_matrix(y_true, y_score, k)
    n_labels = y_true.shape[1]
    freq = np.concatenate([np.asarray(train_freq, np.int64), np.zeros(max(0, n_labels - len(train_freq)), np.int64)])
    order = np.argsort(freq, kind="stable")
    decile = np.empty(n_labels, np.int64)
    decile[order] = np.arange(n_labels) * 10 // max(n_labels, 1)
    predicted = ranked[ranked >= 0]
    correct = ranked[(ranked >= 0) & (hits > 0)]
    true_cols = sp.csr_matrix(y_true).indices
    rows = []
    for d in range(10):
        n_pred = int((decile[predicted] == d).sum())
        n_hit = int((decile[correct] == d).sum())
        n_true = int((decile[true_cols] == d).sum())
        members = freq[decile == d]
        rows.append({"decile": d + 1, "min_freq": int(members.min()) if members.size else 0,
                     "max_freq": int(members.max()) if members.size else 0,
                     "precision": 100.0 * n_hit / n_pred if n_pred else 0.0,
                     "recall": 100.0 * n_hit / n_true if n_true else 0.0,
                     "predicted": n_pred, "true": n_true})
    return rows


def kept_labels(y_score, threshold: float | None = None, top_k: int | None = None) -> sp.csr_matrix:
    """0/1 CSR of the predictions kept: scores at least ``threshold``, and/or each row's ``top_k``."""
    scores = sp.csr_matrix(y_score, dtype=np.float64, copy=True)
    if top_k is not None:
        from xmc.utils.sparse import topk_per_row

        scores = sp.csr_matrix(topk_per_row(scores, top_k), dtype=np.float64)
    if threshold is not None:
        scores.data = np.where(scores.data >= threshold, scores.data, 0.0)
        scores.eliminate_zeros()
    scores.data[:] = 1.0
    return scores


def _binary(y_true, y_pred) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Truth and predictions as 0/1 float64 CSR of the truth's shape (a prediction matrix may be
    narrower: columns past it are labels it never predicts)."""
    truth = sp.csr_matrix(y_true, dtype=np.float64)
    truth.data[:] = 1.0
    pred = sp.csr_matrix(y_pred, dtype=np.float64)
    pred = sp.csr_matrix((pred.data, pred.indices, pred.indptr), shape=truth.shape)
    pred.data[:] = 1.0
    return truth, pred


def f1_scores(y_true, y_pred) -> dict[str, float]:
    """Micro- and macro-averaged precision, recall and F1 (in percent) of 0/1 predictions; the macro
    average runs over the labels present in the truth or in the predictions."""
    truth, pred = _binary(y_true, y_pred)
    tp = np.asarray(truth.multiply(pred).sum(axis=0)).ravel()
    n_pred = np.asarray(pred.sum(axis=0)).ravel()
    n_true = np.asarray(truth.sum(axis=0)).ravel()
    micro_p = tp.sum() / n_pred.sum() if n_pred.sum() else 0.0
    micro_r = tp.sum() / n_true.sum() if n_true.sum() else 0.0
    micro_f = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r else 0.0
    present = (n_pred > 0) | (n_true > 0)
    p = (tp / np.maximum(n_pred, 1))[present]  # tp <= n_pred and tp <= n_true: 0 where either is 0
    r = (tp / np.maximum(n_true, 1))[present]
    f = (2 * tp)[present] / (n_pred + n_true)[present]  # 2 TP / (2 TP + FP + FN)
    out = {"micro-P": micro_p, "micro-R": micro_r, "micro-F1": micro_f,
           "macro-P": p.mean() if p.size else 0.0, "macro-R": r.mean() if r.size else 0.0,
           "macro-F1": f.mean() if f.size else 0.0}
    return {k: 100.0 * float(v) for k, v in out.items()}


def per_label_f1(y_true, y_pred) -> np.ndarray:
    """F1 of every label column (0 where a label is neither true nor predicted)."""
    truth, pred = _binary(y_true, y_pred)
    tp = np.asarray(truth.multiply(pred).sum(axis=0)).ravel()
    denom = np.asarray(truth.sum(axis=0)).ravel() + np.asarray(pred.sum(axis=0)).ravel()
    return 2 * tp / np.maximum(denom, 1)  # 0 where the label is neither true nor predicted
