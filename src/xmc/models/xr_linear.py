"""XR-Linear: PIFA label tree + one sparse linear ranker per level + beam search (PECOS's
``XLinearModel``; Yu et al., "PECOS: Prediction for Enormous and Correlated Output Spaces",
JMLR 2022)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmc._config import Config
from xmc.exceptions import InvalidInputError, ModelFormatError
from xmc.linear.ranker import LinearConfig, train_level
from xmc.models.base import XMCModel, int_list, manifest_field
from xmc.search.beam import BeamConfig, ChunkedLevel, beam_search, beam_search_arrays
from xmc.search.level_files import load_level, save_level
from xmc.tree.label_tree import LabelTree, TreeConfig
from xmc.tree.pifa import pifa
from xmc.utils.faults import kill_point
from xmc.utils.io import load_csr
from xmc.utils.sparse import binarize
from xmc.utils.validation import check_features, check_is_fitted, check_k, check_labels

log = logging.getLogger(__name__)
CHUNKED = "chunked-npy"  # the rankers saved in beam search's layout, one .npy per array (memory-mapped)


@dataclass(frozen=True, kw_only=True)
class XRLinearConfig(Config):
    tree: TreeConfig = field(default_factory=TreeConfig)
    ranker: LinearConfig = field(default_factory=LinearConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)


class XRLinear(XMCModel):
    """XR-Linear on a feature matrix.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> X = sp.csr_matrix(np.eye(8, dtype=np.float32)); Y = sp.csr_matrix(np.eye(8, dtype=np.float32))
    >>> model = XRLinear(XRLinearConfig(tree=TreeConfig(max_leaf_size=2, n_splits=2))).fit(X, Y)
    >>> model.predict(X, top_k=1).indices.tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]
    """

    method = "xr-linear"
    config_class = XRLinearConfig

    def __init__(self, config: XRLinearConfig | None = None):
        super().__init__(config)
        self.tree_: LabelTree | None = None
        self.n_features_in_: int | None = None
        self._levels: list[ChunkedLevel] | None = None
        self.fit_seconds_: dict[str, float] = {}

    @property
    def weights_(self) -> list[sp.csc_matrix]:
        """Every level's ``(n_features + 1, n_nodes)`` weights (last row bias), rebuilt from the
        search layout: the model keeps one copy of its weights, the one beam search reads."""
        self._check_fitted()
        return [level.to_weights() for level in self._levels]

    @property
    def n_labels_(self) -> int | None:
        return None if self.tree_ is None else self.tree_.n_labels

    @classmethod
    def _test_config(cls) -> XRLinearConfig:
        return XRLinearConfig(tree=TreeConfig(max_leaf_size=4, n_splits=4), beam=BeamConfig(beam_size=4, top_k=5))

    def fit(self, X, Y, *, label_embeddings: sp.csr_matrix | None = None, tree: LabelTree | None = None,
            backend: str = "local", workers: int = 2, address: str | None = None) -> XRLinear:
        """Build the label tree (unless given) and train every level's rankers; ``backend="ray"``
        trains each level's parents in ``workers`` Ray tasks (:mod:`xmc.linear.distributed`), with the
        same weights as one process."""
        if backend not in ("local", "ray"):
            raise InvalidInputError(f"backend must be local or ray, got {backend!r}")
        X = check_features(X)
        Y = check_labels(Y, X.shape[0])
        t0 = time.perf_counter()
        if tree is None:
            embeddings = label_embeddings if label_embeddings is not None else pifa(X, Y)
            tree = LabelTree.build(embeddings, self.config.tree)
            del embeddings, label_embeddings  # as large as X: not held while the rankers train
        if tree.n_labels != Y.shape[1]:
            raise ValueError(f"the label tree has {tree.n_labels} labels but Y has {Y.shape[1]}")
        self.fit_seconds_ = {"tree": time.perf_counter() - t0}
        self.tree_, self.n_features_in_ = tree, X.shape[1]
        self._levels = []
        t0 = time.perf_counter()
        for t in range(tree.depth):
            Y_t = binarize(tree.project_labels(Y, t))
            M = self._matching(X, Y, t)
            if backend == "ray":
                from xmc.linear.distributed import train_level_ray

                W = train_level_ray(X, Y_t, M, tree.chain[t], self.config.ranker, workers, address)
            else:
                W = train_level(X, Y_t, M, tree.chain[t], self.config.ranker, desc=f"level {t + 1}/{tree.depth}")
            self._levels.append(ChunkedLevel.build(W, tree.chain[t], self.config.ranker.bias))
            del W  # the search layout is the only copy kept: peak memory stays one level's weights
            kill_point("xr-linear:level")
        self.fit_seconds_["rankers"] = time.perf_counter() - t0
        return self

    def _matching(self, X: sp.csr_matrix, Y: sp.csr_matrix, t: int) -> sp.csr_matrix:
        """Which parent nodes route each training document at level ``t``."""
        n = X.shape[0]
        if t == 0:
            return sp.csr_matrix((np.ones(n, np.float32), np.zeros(n, np.int32), np.arange(n + 1)), shape=(n, 1))
        negatives = self.config.ranker.negatives
        M = binarize(self.tree_.project_labels(Y, t - 1)) if "tfn" in negatives else None
        if "man" in negatives:
            predicted = beam_search(X, self._levels, self.tree_.level_sizes, beam_size=self.config.beam.beam_size,
                                    top_k=self.config.beam.beam_size, post_processor=self.config.beam.post_processor,
                                    stop_level=t - 1)
            M = binarize(predicted) if M is None else binarize(M + binarize(predicted))
        return M

    def predict(self, X, *, top_k: int | None = None, beam_size: int | None = None,
                post_processor: str | None = None) -> sp.csr_matrix:
        """``(n_docs, n_labels)`` CSR with each row's ``top_k`` label scores."""
        self._check_fitted()
        X = check_features(X, self.n_features_in_)
        beam = self.config.beam
        return beam_search(
            X, self._levels, self.tree_.level_sizes,
            beam_size=check_k(beam_size, "beam_size", beam.beam_size),
            top_k=check_k(top_k, "top_k", beam.top_k),
            post_processor=beam.post_processor if post_processor is None else post_processor,
        )

    def predict_arrays(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, *, top_k: int | None = None,
                       beam_size: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`predict` on trusted raw CSR arrays (int64 pointers, sorted in-range int32 indices,
        float32 values, as a fitted featuriser makes them): the top-k arrays, each row best first,
        without a SciPy matrix or a validating copy (:func:`xmc.search.beam.beam_search_arrays`)."""
        self._check_fitted()
        beam = self.config.beam
        return beam_search_arrays((indptr, indices, data, self.n_features_in_), self._levels,
                                  beam_size=check_k(beam_size, "beam_size", beam.beam_size),
                                  top_k=check_k(top_k, "top_k", beam.top_k), post_processor=beam.post_processor)

    def _check_fitted(self) -> None:
        check_is_fitted(self, "tree_")

    def _save_arrays(self, folder: Path) -> dict[str, Any]:
        self.tree_.save(folder / "tree")
        (folder / "ranker").mkdir()
        for t, level in enumerate(self._levels):
            save_level(folder / "ranker" / f"level_{t}", level)
        return {"n_features": self.n_features_in_, "n_labels": self.tree_.n_labels,
                "level_sizes": self.tree_.level_sizes, "ranker_layout": CHUNKED,
                "nnz_per_level": [level.n_weights for level in self._levels], "fit_seconds": self.fit_seconds_}

    def _load_arrays(self, folder: Path, shapes: dict[str, Any]) -> None:
        where = folder / "xmc.json"
        n_features = manifest_field(shapes, "n_features", int, where, low=1, high=2**31 - 2)
        sizes = int_list(shapes, "level_sizes", where, low=1)
        if sizes[-1] != manifest_field(shapes, "n_labels", int, where, low=1):
            raise ModelFormatError(f"{where}: the tree's last level has {sizes[-1]} nodes, not n_labels")
        self.tree_ = LabelTree.load(folder / "tree", sizes)
        self.n_features_in_ = n_features
        self.fit_seconds_ = self.saved_record(shapes, "fit_seconds", dict)
        # every index is checked against the tree and the shapes here, before any numba kernel reads it
        bias, ranker = self.config.ranker.bias, folder / "ranker"
        if manifest_field(shapes, "ranker_layout", str, where, choices=(CHUNKED,), optional=True) == CHUNKED:
            self._levels = [load_level(ranker / f"level_{t}", C, n_features, bias)  # memory-mapped
                            for t, C in enumerate(self.tree_.chain)]
        else:  # folders written before the search layout was saved: weights as CSC, built at load
            self._levels = [ChunkedLevel.build(load_csr(ranker / f"level_{t}.npz", (n_features + 1, n), fmt="csc"),
                                               C, bias) for t, (n, C) in enumerate(zip(sizes, self.tree_.chain,
                                                                                       strict=True))]
