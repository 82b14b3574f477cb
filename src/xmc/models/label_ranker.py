"""A label-text ranker trained on the labels that have training documents, for the labels that have
few or none.

A label's text alone ranks labels by their TF-IDF cosine with the document (the floor of
:class:`xmc.models.label_text.LabelTextScorer`). The ranker re-ranks each document's ``top_k``
candidates by that cosine with a logistic model over features that also exist for a label nobody
has seen a document of:

- the cosine with the label's whole text and with its name (the text before the first ``"; "``);
- a *transfer* score: the document's cosine with the mean training document (PIFA centroid) of each
  known label whose text is nearest to this label's text (``neighbours`` of them, weighted by their
  squared text cosine; a known label is never its own neighbour);
- a *feedback* score (pseudo-relevance feedback): the document's cosine with the mean of the
  ``feedback_docs`` training documents whose text the label's text matches best, among documents
  that do not have the label (an unseen label has none, so a known label is trained the same way);
- the scores relative to the document's best and mean candidate, the cosine's rank among the
  candidates, and the label text's *hubness* (the mean of its 50 best cosines over the held-out
  training documents: a text that matches every document, as boilerplate does, matches none).

It is trained on the known labels as if they were unseen: for ``ranker_docs`` training documents
held out of the centroids, one of the document's labels is hidden among randomly drawn other known
labels, as many as the group it will rank has (the zero-shot candidates, the few-shot labels), and
the model learns which candidate is the hidden label. Nothing is chosen on the dev or test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import ModelFormatError
from xmc.utils.sparse import (
    dense_product,
    l2_normalize_rows,
    sparse_product,
    sparse_products_topk,
    topk_dense_rows,
    topk_per_row,
    transposed,
)

FEATURES = ("cosine", "name cosine", "transfer", "cosine / best", "transfer / best", "log rank", "hubness",
            "transfer - mean", "cosine - mean", "feedback", "feedback / best", "feedback - mean")
HUB_TOP = 50
_CHUNK = 2048  # documents scored at once: a (chunk, known labels) float32 block
FEEDBACK_POOL = 20_000  # training documents (not held out) a label text's feedback documents are found among


@dataclass
class RankerModel:
    """One logistic model per group size it was trained for (``pool_sizes``)."""

    pool_sizes: np.ndarray  # (n_models,) candidates per document the model was trained to rank among
    coef: np.ndarray  # (n_models, n_features), on features standardised by mean and scale
    intercept: np.ndarray  # (n_models,)
    mean: np.ndarray  # (n_models, n_features)
    scale: np.ndarray  # (n_models, n_features)

    def for_pool(self, size: int) -> int:
        """The model trained for the pool size nearest ``size`` (in log scale)."""
        return int(np.argmin(np.abs(np.log(self.pool_sizes) - np.log(max(size, 1)))))

    def probability(self, which: int, features: np.ndarray) -> np.ndarray:
        z = (features - self.mean[which]) / self.scale[which] @ self.coef[which] + self.intercept[which]
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


@dataclass
class LabelTextRanker:
    centroids: sp.csr_matrix  # (n_known, n_features) unit rows: each known label's mean training document
    neighbours: sp.csr_matrix  # (n_labels, n_known) weights, rows summing to 1 (or empty)
    hubness: np.ndarray  # (n_labels,)
    feedback: sp.csr_matrix  # (n_labels, n_features) unit rows: the mean of each label text's feedback documents
    model: RankerModel
    _columns: tuple | None = None  # texts, names, centroids, feedback transposed for dense_product (on first use)

    @classmethod
    def fit(cls, X: sp.csr_matrix, Y: sp.csr_matrix, texts: sp.csr_matrix, names: sp.csr_matrix,
            pool_sizes: list[int], *, top_k: int, neighbours: int, ranker_docs: int, centroid_terms: int,
            feedback_docs: int, seed: int = 0) -> LabelTextRanker:
        """``X`` training documents (unit TF-IDF rows), ``Y`` their known labels, ``texts`` / ``names``
        every label's text and name (unit rows; the known labels first, in ``Y``'s column order)."""
        rng = np.random.default_rng(seed)
        X, Y = sp.csr_matrix(X, dtype=np.float32), sp.csr_matrix(Y, dtype=np.float32)
        Y.data[:] = 1.0
        n_known = Y.shape[1]
        has_labels = np.flatnonzero(np.diff(Y.indptr) > 0)
        held = np.sort(rng.choice(has_labels, min(ranker_docs, has_labels.size // 2), replace=False))
        X_held, Y_held = X[held], Y[held]
        weights = neighbour_weights(texts, n_known, neighbours)
        cos_all = dense_product(X_held, transposed(texts))  # the held documents are the hubness's reference too
        hub = hubness(cos_all)
        # the centroids the held documents are scored against leave those documents out
        without_held, with_all = _centroids(Y, held, X, centroid_terms)
        rest = np.setdiff1d(np.arange(X.shape[0]), held)
        reference = np.sort(rng.choice(rest, min(FEEDBACK_POOL, rest.size), replace=False))
        feedback = feedback_centroids(texts, X[reference], Y[reference], feedback_docs, centroid_terms)
        ranker = cls(without_held, weights, hub, feedback, None)
        cos = cos_all[:, :n_known]
        name_cos, to_centroids, fed = (dense_product(X_held, transposed(m))
                                       for m in (names[:n_known], ranker.centroids, feedback[:n_known]))
        transfer = np.asarray((weights[:n_known] @ to_centroids.T).T)
        models = []
        for size in sorted(set(int(s) for s in pool_sizes if s > 0)):
            pool, hidden = _pools(Y_held, min(size, n_known), rng)
            feats, cols = shortlist_features(np.where(pool, cos, -np.inf), name_cos, transfer, fed, hub[:n_known],
                                             top_k)
            target = (cols == hidden[:, None]).ravel()
            mean, scale = feats.mean(0), feats.std(0) + 1e-9
            coef, intercept = fit_logistic((feats - mean) / scale, target)
            models.append((size, coef, intercept, mean, scale))
        ranker.model = RankerModel(*(np.array([m[i] for m in models]) for i in range(5)))
        ranker.centroids = with_all
        return ranker

    def score(self, X: sp.csr_matrix, texts: sp.csr_matrix, names: sp.csr_matrix, groups: list[np.ndarray],
              top_k: int) -> list[sp.csr_matrix]:
        """Per group of label columns, ``(n_docs, len(cols))`` CSR: each document's ``top_k`` labels of
        the group by cosine with their text, scored by the ranker (a probability in (0, 1)). Labels
        with an empty text never score."""
        if self._columns is None or self._columns[0].shape[1] != texts.shape[0]:
            self._columns = tuple(transposed(m) for m in (texts, names, self.centroids, self.feedback))
        usable = np.asarray(texts.getnnz(axis=1) > 0)
        parts: list[list[sp.csr_matrix]] = [[] for _ in groups]
        for start in range(0, X.shape[0], _CHUNK):
            cos, name_cos, to_centroids, fed = (dense_product(X[start:start + _CHUNK], m) for m in self._columns)
            cos[:, ~usable] = -np.inf
            for g, cols in enumerate(groups):
                parts[g].append(self._score_group(cos[:, cols], name_cos[:, cols], to_centroids, fed[:, cols], cols,
                                                  top_k))
        return [sp.csr_matrix(sp.vstack(p)) if p else sp.csr_matrix((0, cols.size), dtype=np.float32)
                for p, cols in zip(parts, groups, strict=True)]

    def _score_group(self, cos, name_cos, to_centroids, fed, cols, top_k) -> sp.csr_matrix:
        if cols.size == 0:
            return sp.csr_matrix((cos.shape[0], 0), dtype=np.float32)
        transfer = np.asarray((self.neighbours[cols] @ to_centroids.T).T)
        feats, shortlist = shortlist_features(cos, name_cos, transfer, fed, self.hubness[cols], top_k)
        prob = self.model.probability(self.model.for_pool(cols.size), feats).reshape(shortlist.shape)
        keep = np.isfinite(np.take_along_axis(cos, shortlist, axis=1))
        indptr = np.concatenate([[0], np.cumsum(keep.sum(1))])
        return sp.csr_matrix((prob[keep], shortlist[keep], indptr), shape=(cos.shape[0], cols.size))

    def arrays(self) -> dict[str, np.ndarray]:
        m = self.model
        return {"c_data": self.centroids.data, "c_indices": self.centroids.indices, "c_indptr": self.centroids.indptr,
                "n_data": self.neighbours.data, "n_indices": self.neighbours.indices,
                "n_indptr": self.neighbours.indptr, "hubness": self.hubness, "f_data": self.feedback.data,
                "f_indices": self.feedback.indices, "f_indptr": self.feedback.indptr, "pool_sizes": m.pool_sizes,
                "coef": m.coef, "intercept": m.intercept, "mean": m.mean, "scale": m.scale}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray], n_labels: int, n_features: int) -> LabelTextRanker:
        """The ranker saved by :meth:`arrays`; a :class:`ModelFormatError` when the arrays do not fit
        ``n_labels`` labels and ``n_features`` TF-IDF features."""
        n_known = a["c_indptr"].size - 1
        n_models = a["pool_sizes"].size
        fits = (a["n_indptr"].size == n_labels + 1 and a["hubness"].size == n_labels and 0 < n_known <= n_labels
                and _within(a["c_indices"], n_features) and _within(a["n_indices"], n_known) and n_models > 0
                and a["f_indptr"].size == n_labels + 1 and _within(a["f_indices"], n_features)
                and a["coef"].shape[0] == a["intercept"].size == a["mean"].shape[0] == a["scale"].shape[0] == n_models
                and int(a["pool_sizes"].min()) > 0)
        if not fits:
            raise ModelFormatError(f"label-text ranker arrays do not fit {n_labels} labels of {n_features} features")
        centroids = sp.csr_matrix((a["c_data"], a["c_indices"], a["c_indptr"]), shape=(n_known, n_features))
        weights = sp.csr_matrix((a["n_data"], a["n_indices"], a["n_indptr"]), shape=(n_labels, n_known))
        feedback = sp.csr_matrix((a["f_data"], a["f_indices"], a["f_indptr"]), shape=(n_labels, n_features))
        model = RankerModel(a["pool_sizes"], a["coef"], a["intercept"], a["mean"], a["scale"])
        return cls(centroids, weights, a["hubness"], feedback, model)


ARRAY_SPEC = {"c_data": ("f", (None,)), "c_indices": ("iu", (None,)), "c_indptr": ("iu", (None,)),
              "n_data": ("f", (None,)), "n_indices": ("iu", (None,)), "n_indptr": ("iu", (None,)),
              "hubness": ("f", (None,)), "f_data": ("f", (None,)), "f_indices": ("iu", (None,)),
              "f_indptr": ("iu", (None,)), "pool_sizes": ("iu", (None,)), "coef": ("f", (None, len(FEATURES))),
              "intercept": ("f", (None,)), "mean": ("f", (None, len(FEATURES))), "scale": ("f", (None, len(FEATURES)))}


def fit_logistic(X: np.ndarray, y: np.ndarray, C: float = 1.0, tol: float = 1e-4) -> tuple[np.ndarray, float]:
    """Weights and intercept of L2-regularised logistic regression: scikit-learn's
    ``LogisticRegression(C=C, tol=tol)``, whose L-BFGS minimises the mean log-loss plus the squared
    weights over ``2 C n`` (the intercept is not penalised). Written here because importing
    scikit-learn's linear models costs more (0.6-0.9 s) than the fits themselves, a tenth of the
    scorer's training time; the tests hold it to scikit-learn's solution."""
    from scipy.optimize import minimize
    from scipy.special import expit

    X = np.asarray(X, dtype=np.float64)
    sign = np.where(np.asarray(y, dtype=bool), 1.0, -1.0)
    n = max(X.shape[0], 1)

    def loss_and_gradient(theta):
        w, b = theta[:-1], theta[-1]
        margin = sign * (X @ w + b)
        slope = -sign * expit(-margin) / n  # d loss / d (X @ w + b)
        loss = np.logaddexp(0.0, -margin).mean() + (w @ w) / (2 * C * n)
        return loss, np.append(X.T @ slope + w / (C * n), slope.sum())

    theta = minimize(loss_and_gradient, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                     options={"maxiter": 2000, "gtol": tol, "ftol": 64 * np.finfo(float).eps}).x
    return theta[:-1], float(theta[-1])


def neighbour_weights(texts: sp.csr_matrix, n_known: int, k: int) -> sp.csr_matrix:
    """``(n_labels, n_known)``: each label's ``k`` known labels of most similar text (a known label
    not itself), weighted by the squared cosine, rows summing to 1."""
    sims = sp.csr_matrix(texts @ texts[:n_known].T, dtype=np.float32)
    sims = sp.csr_matrix(sims - sp.eye(sims.shape[0], n_known, dtype=np.float32, format="csr").multiply(sims))
    sims.eliminate_zeros()
    top = topk_per_row(sims, k)
    top.data = top.data ** 2
    sums = np.asarray(top.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(sums, 1e-12)) @ top, dtype=np.float32)


def hubness(sims: np.ndarray) -> np.ndarray:
    """Each label text's mean cosine with its ``HUB_TOP`` best-matching reference documents, from
    the ``(documents, labels)`` cosines."""
    top = min(HUB_TOP, sims.shape[0])
    if top == 0:
        return np.zeros(sims.shape[1], np.float32)
    by_label = np.ascontiguousarray(sims.T)  # a partition along rows is several times faster than down columns
    return np.partition(by_label, sims.shape[0] - top, axis=1)[:, -top:].mean(1).astype(np.float32)


def shortlist_features(cos: np.ndarray, name_cos: np.ndarray, transfer: np.ndarray, feedback: np.ndarray,
                       hub: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``top_k`` columns by ``cos`` (``-inf``: not a candidate) and their features,
    ``(rows * top_k, len(FEATURES))``; columns ``(rows, top_k)``, best first."""
    k = min(top_k, cos.shape[1])
    part = np.argpartition(-cos, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(cos, part, axis=1), axis=1, kind="stable")
    cols = np.take_along_axis(part, order, axis=1)
    c = np.take_along_axis(cos, cols, axis=1)
    finite = np.isfinite(c)
    c = np.where(finite, c, 0.0)
    t = np.take_along_axis(transfer, cols, axis=1)
    f = np.take_along_axis(feedback, cols, axis=1)
    n = np.take_along_axis(name_cos, cols, axis=1)
    count = np.maximum(finite.sum(1, keepdims=True), 1)

    def relative(x):
        return x / (x.max(1, keepdims=True) + 1e-9), x - (x * finite).sum(1, keepdims=True) / count

    c_best, c_centred = relative(c)
    t_best, t_centred = relative(t)
    f_best, f_centred = relative(f)
    rank = np.broadcast_to(np.log1p(np.arange(k, dtype=np.float32)), c.shape)
    feats = np.stack([c, n, t, c_best, t_best, rank, hub[cols], t_centred, c_centred, f, f_best, f_centred], axis=-1)
    return feats.reshape(-1, len(FEATURES)).astype(np.float32), cols


def feedback_centroids(texts: sp.csr_matrix, X_ref: sp.csr_matrix, Y_ref: sp.csr_matrix, docs: int, terms: int
                       ) -> sp.csr_matrix:
    """``(n_labels, n_features)`` unit rows: for each label text, the sum of its ``docs`` reference
    documents of highest cosine, weighted by the squared cosine and cut to ``terms`` terms (all with
    0). A known label (the first ``Y_ref.shape[1]``) never reads a document that has it: an unseen
    label has none, and the ranker learns from known labels what the feature is worth for those."""
    n_labels, n_known = texts.shape[0], Y_ref.shape[1]
    if docs <= 0 or X_ref.shape[0] == 0:
        return sp.csr_matrix((n_labels, X_ref.shape[1]), dtype=np.float32)
    ref_columns, own = transposed(X_ref), sp.csr_matrix(Y_ref.T, dtype=np.float32)
    parts = []
    for start in range(0, n_labels, _CHUNK):
        sims = dense_product(texts[start:start + _CHUNK], ref_columns)  # (chunk, reference documents)
        mine = own[start:min(start + _CHUNK, n_known)].tocoo()
        sims[mine.row, mine.col] = 0.0
        parts.append(topk_dense_rows(sims, docs))
    weights = sp.csr_matrix(sp.vstack(parts))
    weights.data **= 2
    weights.eliminate_zeros()  # a text that matches fewer than ``docs`` documents
    return l2_normalize_rows(sparse_product(weights, X_ref, terms))  # terms 0: the whole product


def _pools(Y: sp.csr_matrix, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per document: one of its labels (hidden) among ``size - 1`` random labels it does not have;
    a boolean ``(n_docs, n_known)`` pool and the hidden label of each row."""
    n, n_known = Y.shape
    keys = rng.random((n, n_known), dtype=np.float32)
    own = Y.toarray() > 0
    keys[own] = np.inf
    pool = np.zeros((n, n_known), dtype=bool)
    if size > 1:
        np.put_along_axis(pool, np.argpartition(keys, size - 2, axis=1)[:, :size - 1], True, axis=1)
    counts = np.diff(Y.indptr)
    hidden = Y.indices[Y.indptr[:-1] + (rng.random(n) * counts).astype(np.int64)]
    pool[np.arange(n), hidden] = True
    return pool, hidden


def _within(indices: np.ndarray, bound: int) -> bool:
    return not indices.size or (int(indices.min()) >= 0 and int(indices.max()) < bound)


def _centroids(Y: sp.csr_matrix, held: np.ndarray, X: sp.csr_matrix, terms: int
               ) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Each label's unit-length sum of its documents' rows, cut to its ``terms`` heaviest terms
    (all with 0; a centroid keeps a thousand of some 100,000 terms): without the ``held`` documents
    and with them."""
    in_held = np.zeros(Y.shape[0], dtype=np.float32)
    in_held[held] = 1.0
    rest, only_held = (sp.csr_matrix(sp.diags(keep) @ Y) for keep in (1.0 - in_held, in_held))
    for part in (rest, only_held):
        part.eliminate_zeros()
    if terms:
        sums = sparse_products_topk(transposed(rest), transposed(only_held), X, terms)
    else:
        sums = sparse_product(transposed(rest), X), sparse_product(transposed(Y), X)
    return l2_normalize_rows(sums[0]), l2_normalize_rows(sums[1])
