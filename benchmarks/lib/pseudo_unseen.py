"""Known labels made unseen: a larger test bed for the label-text ranker than a dataset's own unseen labels.

EURLEX57K dev has 87 documents with a zero-shot label, so one document moves RP@5 by about 1.1 and a
gain of a few points cannot be told from noise. Here ``n_labels`` known labels with 1 to 50 training
documents (seeded; rare, as unseen labels are) are made unseen: their training documents leave the
training set, the ranker is trained on the rest exactly as ``xmc train --zero-shot`` trains it, and the
dev documents with one of those labels are ranked among them, by the ranker and by the floor (the
TF-IDF cosine of document and label text). Nothing of dev is read to train; the labels' texts and the
featuriser are those of a model trained with ``--zero-shot``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

FEW_MAX = 50


def pseudo_unseen(scorer, X: sp.csr_matrix, Y: sp.csr_matrix, X_dev: sp.csr_matrix, truth: sp.csr_matrix,
                  halves: dict[str, np.ndarray], n_labels: int, seed: int) -> dict:
    """RP@5 / nDCG@5 of the ranker and of the floor on ``n_labels`` known labels made unseen.
    ``X`` / ``Y``: training rows (unit TF-IDF) and their known labels; ``X_dev`` / ``truth``: dev rows
    and labels over the same known columns; ``halves``: dev row indices per reported part."""
    from xmc.metrics.groups import rank_metrics
    from xmc.models.label_ranker import LabelTextRanker
    from xmc.utils.sparse import dense_product, topk_per_row, transposed

    c = scorer.config
    freq = np.asarray((Y > 0).sum(axis=0)).ravel()
    rng = np.random.default_rng(seed)
    unseen = np.sort(rng.choice(np.flatnonzero((freq >= 1) & (freq <= FEW_MAX)), n_labels, replace=False))
    known = np.setdiff1d(np.arange(Y.shape[1]), unseen)
    kept_docs = np.flatnonzero(np.asarray(Y[:, unseen].sum(axis=1)).ravel() == 0)
    order = np.concatenate([known, unseen])  # the ranker wants the known labels first
    texts, names = scorer.label_tfidf[order], scorer.name_tfidf[order]
    ranker = LabelTextRanker.fit(X[kept_docs], Y[kept_docs][:, known], texts, names, [n_labels], top_k=c.top_k,
                                 neighbours=c.neighbours, ranker_docs=c.ranker_docs, centroid_terms=c.centroid_terms,
                                 feedback_docs=c.feedback_docs, seed=seed)
    group = np.arange(known.size, order.size)
    ranked = ranker.score(X_dev, texts, names, [group], c.top_k)[0]
    floor = topk_per_row(sp.csr_matrix(dense_product(X_dev, transposed(texts[group]))), c.top_k)
    group_truth = truth[:, unseen]
    out = {"labels": n_labels, "training_docs_left": int(kept_docs.size), "seed": seed}
    for part, rows in halves.items():
        docs = int((np.diff(group_truth[rows].indptr) > 0).sum())
        out[part] = {"docs": docs, **{name: rank_metrics(group_truth[rows], topk_per_row(S[rows], 10), (5,))
                                      for name, S in (("ranker", ranked), ("floor", floor))}}
    return out
