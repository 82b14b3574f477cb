"""New labels for a trained XR-Linear model without retraining it (``xmc update``).

Each new label is placed under one leaf cluster of the existing tree: the cluster that the model's
own matcher routes the label's PIFA embedding to (beam search down to the leaf clusters, the
embedding read as a document: the normalised mean of the label's documents). Then only what the
new labels change is trained:

- a ranker for each new label, on the documents routed to its cluster (the same teacher-forced
  negatives as a full training: the documents with a label under that cluster);
- the ranker of every *touched* cluster (the new labels' clusters and their ancestors), on the
  documents routed to its parent, because the new labels' documents are now its positives.

The other rankers, the tree's other nodes and the featuriser stay as they were: a document of D
that is new to the model helps the new labels and the touched clusters, and a known label only when
it is retrained (``retrain_known``: ``xmc update --retrain-known`` picks the labels that gained
documents).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import InvalidInputError
from xmc.linear.ranker import train_level
from xmc.search.beam import ChunkedLevel, beam_search
from xmc.tree.label_tree import LabelTree, assignment
from xmc.tree.pifa import pifa
from xmc.utils.sparse import binarize

log = logging.getLogger(__name__)


@dataclass
class LabelUpdate:
    """What :func:`add_labels` did."""

    n_new_labels: int
    leaf_of_new: np.ndarray  # each new label's leaf cluster (0 in a one-level tree)
    retrained: list[int] = field(default_factory=list)  # rankers retrained per level (new labels last)
    level_sizes: list[int] = field(default_factory=list)  # nodes per level after the update
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        levels = ", ".join(f"{r:,} of {n:,}" for r, n in zip(self.retrained, self.level_sizes, strict=True))
        secs = "  ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
        return (f"added {self.n_new_labels:,} labels under {np.unique(self.leaf_of_new).size:,} leaf clusters; "
                f"rankers trained per level: {levels} ({secs})")


def add_labels(model, X: sp.csr_matrix, Y: sp.csr_matrix, n_known: int,
               retrain_known: np.ndarray | None = None) -> LabelUpdate:
    """Extend the fitted :class:`~xmc.models.xr_linear.XRLinear` ``model`` in place with the labels
    ``Y[:, n_known:]`` (none is fine when ``retrain_known`` is given); ``X`` and ``Y`` are the update's
    training documents (features the model reads) and their labels over the known labels followed by
    the new ones. ``retrain_known``: known labels whose rankers are trained again on these documents
    (labels that gained documents), their clusters with them."""
    model._check_fitted()
    if n_known != model.n_labels_:
        raise InvalidInputError(f"the model knows {model.n_labels_} labels, not {n_known}")
    n_new = Y.shape[1] - n_known
    retrain_known = np.unique(np.asarray(retrain_known if retrain_known is not None else [], np.int64))
    if n_new < 0 or (n_new == 0 and retrain_known.size == 0):
        raise InvalidInputError("there are no new labels to add")
    if retrain_known.size and (retrain_known[0] < 0 or retrain_known[-1] >= n_known):
        raise InvalidInputError("retrain_known holds ids that are not known labels")
    Y = binarize(sp.csr_matrix(Y, dtype=np.float32))
    counts = np.diff(sp.csc_matrix(Y).indptr)[np.r_[retrain_known, n_known:Y.shape[1]]]
    if np.any(counts == 0):
        raise InvalidInputError(f"{int(np.sum(counts == 0))} labels to train have no training documents")
    t0 = time.perf_counter()
    leaf_of_new = _place(model, X, Y[:, n_known:])
    old_tree = model.tree_
    tree = LabelTree([*old_tree.chain[:-1],
                      sp.vstack([old_tree.chain[-1], assignment(leaf_of_new, old_tree.level_sizes[-2])
                                 if old_tree.depth > 1 else assignment(np.zeros(n_new, np.int64), 1)],
                                format="csr")])
    seconds = {"place": time.perf_counter() - t0}
    t0 = time.perf_counter()
    labels = np.r_[retrain_known, n_known:Y.shape[1]].astype(np.int64)
    touched = _touched_nodes(tree, labels)
    retrained = []
    model.tree_ = tree  # each level's matching routes documents through the updated tree
    for t in range(tree.depth):
        model._levels[t] = _retrain_nodes(model, tree, X, Y, t, touched[t])
        retrained.append(int(touched[t].size))
    seconds["rankers"] = time.perf_counter() - t0
    model.fit_seconds_ = {**model.fit_seconds_, "update": sum(seconds.values())}
    return LabelUpdate(n_new, leaf_of_new, retrained, tree.level_sizes, seconds)


def _place(model, X: sp.csr_matrix, Y_new: sp.csr_matrix) -> np.ndarray:
    """The leaf cluster the model's matcher ranks first for each new label's PIFA embedding."""
    tree = model.tree_
    if tree.depth == 1 or Y_new.shape[1] == 0:
        return np.zeros(Y_new.shape[1], np.int64)
    embeddings = pifa(X, Y_new)
    routed = beam_search(embeddings, model._levels, tree.level_sizes, beam_size=model.config.beam.beam_size, top_k=1,
                         post_processor=model.config.beam.post_processor, stop_level=tree.depth - 2)
    leaf = np.zeros(Y_new.shape[1], np.int64)  # an embedding that reaches no cluster (all scores 0): cluster 0
    has = np.diff(routed.indptr) > 0
    leaf[has] = routed.indices[routed.indptr[:-1][has]]
    return leaf


def _touched_nodes(tree: LabelTree, labels: np.ndarray) -> list[np.ndarray]:
    """Per level, the nodes to train: ``labels`` at the last level, their ancestors above it."""
    touched = [np.array([], np.int64)] * tree.depth
    nodes = np.unique(labels)
    for t in range(tree.depth - 1, -1, -1):
        touched[t] = nodes
        nodes = np.unique(tree.parent_of(t)[nodes])
    return touched


def _retrain_nodes(model, tree: LabelTree, X: sp.csr_matrix, Y: sp.csr_matrix, t: int,
                   nodes: np.ndarray) -> ChunkedLevel:
    """Level ``t`` with the rankers of ``nodes`` trained afresh (or added, for new labels) and the
    other nodes' weights kept."""
    config = model.config.ranker
    W = model._levels[t].to_weights()
    n_nodes = tree.level_sizes[t]
    if W.shape[1] < n_nodes:  # new labels: empty columns to fill
        W = sp.hstack([W, sp.csc_matrix((W.shape[0], n_nodes - W.shape[1]), dtype=np.float32)], format="csc")
    if nodes.size:
        Y_t = binarize(tree.project_labels(Y, t))
        M = model._matching(X, Y, t)  # on the updated tree (model.tree_)
        W_nodes = train_level(X, Y_t[:, nodes], M, tree.chain[t][nodes], config,
                              desc=f"level {t + 1}/{tree.depth}: {nodes.size} nodes")
        keep = np.ones(n_nodes, bool)
        keep[nodes] = False
        W = sp.csc_matrix(W.multiply(keep[None, :].astype(np.float32)))
        placed = sp.csc_matrix((np.ones(nodes.size, np.float32), (nodes, np.arange(nodes.size))),
                               shape=(n_nodes, nodes.size))
        W = sp.csc_matrix(W + W_nodes @ placed.T)
        W.eliminate_zeros()
    return ChunkedLevel.build(W, tree.chain[t], config.bias)
