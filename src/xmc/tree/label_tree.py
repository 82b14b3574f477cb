"""The hierarchical label tree as a chain of cluster matrices (coarse to fine)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmc._config import Config, Interval, option
from xmc.exceptions import ModelFormatError
from xmc.tree.kmeans import balanced_leaf_clusters
from xmc.utils.io import load_csr, save_csr


@dataclass(frozen=True, kw_only=True)
class TreeConfig(Config):
    """PECOS's scheme: binary balanced splits down to leaves of at most ``max_leaf_size`` labels,
    then consecutive leaf ids grouped ``n_splits`` at a time until at most ``min_codes`` remain."""

    n_splits: int = option(16, "branching factor of the levels above the leaf clusters", Interval(int, 2, None))
    max_leaf_size: int = option(100, "most labels in one leaf cluster", Interval(int, 1, None))
    min_codes: int = option(0, "stop grouping at this many top nodes (0 = n_splits)", Interval(int, 0, None))
    kmeans_max_iter: int = option(20, "2-means iterations per split", Interval(int, 1, None))
    seed: int = option(0, "random seed of the clustering", Interval(int, 0, None))


class LabelTree:
    """``chain[t]`` is the ``(n_nodes_t, n_nodes_{t-1})`` 0/1 matrix mapping level-t nodes to their
    parents; ``chain[0]`` maps the top nodes to the root (one column) and the last level's nodes
    are the labels."""

    def __init__(self, chain: list[sp.csr_matrix]):
        self.chain = [sp.csr_matrix(c, dtype=np.float32) for c in chain]
        self._validate()

    def _validate(self) -> None:
        if not self.chain or self.chain[0].shape[1] != 1:
            raise ModelFormatError("a label tree's first cluster matrix must map to a single root")
        for t, c in enumerate(self.chain):
            if not np.all(np.diff(c.indptr) == 1):
                raise ModelFormatError(f"level {t} of the label tree gives some node no single parent")
            if t and c.shape[1] != self.chain[t - 1].shape[0]:
                raise ModelFormatError(f"level {t} has {c.shape[1]} parents, "
                                       f"level {t - 1} has {self.chain[t - 1].shape[0]} nodes")

    @property
    def depth(self) -> int:
        return len(self.chain)

    @property
    def level_sizes(self) -> list[int]:
        return [c.shape[0] for c in self.chain]

    @property
    def n_labels(self) -> int:
        return self.chain[-1].shape[0]

    def parent_of(self, level: int) -> np.ndarray:
        return self.chain[level].indices.astype(np.int64)

    def project_labels(self, Y: sp.csr_matrix, level: int) -> sp.csr_matrix:
        """Y at the resolution of ``level``: entry (i, n) counts doc i's labels under node n."""
        out = sp.csr_matrix(Y, dtype=np.float32)
        for t in range(self.depth - 1, level, -1):
            out = sp.csr_matrix(out @ self.chain[t])
        return out

    @classmethod
    def build(cls, label_embeddings: sp.csr_matrix, config: TreeConfig | None = None) -> LabelTree:
        config = config or TreeConfig()
        n_labels = label_embeddings.shape[0]
        if n_labels < 2:
            return cls([sp.csr_matrix(np.ones((n_labels, 1), np.float32))])
        depth = _leaf_depth(n_labels, config)
        leaf = balanced_leaf_clusters(label_embeddings, depth, config.kmeans_max_iter, config.seed)
        return cls(_chain_from_leaves(leaf, 2**depth, config.n_splits, config.min_codes or config.n_splits))

    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for t, c in enumerate(self.chain):
            save_csr(folder / f"level_{t}.npz", c)

    @classmethod
    def load(cls, folder: str | os.PathLike, level_sizes: list[int]) -> LabelTree:
        """The tree saved in ``folder``, checked against the ``level_sizes`` its manifest records."""
        folder = Path(folder)
        chain = []
        for t, n in enumerate(level_sizes):
            path = folder / f"level_{t}.npz"
            C = load_csr(path, (n, level_sizes[t - 1] if t else 1))
            if not (np.all(np.diff(C.indptr) == 1) and np.all(C.data == 1)):
                raise ModelFormatError(f"{path}: every node of a label tree needs exactly one parent (entry 1)")
            chain.append(C)
        return cls(chain)


def _leaf_depth(n_labels: int, config: TreeConfig) -> int:
    """Binary splits down to the leaf clusters: 2**depth leaves of at most ``max_leaf_size`` labels."""
    depth = max(1, math.ceil(math.log2(n_labels / config.max_leaf_size))) if n_labels > config.max_leaf_size else 0
    return min(depth, int(math.floor(math.log2(n_labels))))


def tree_shape(n_labels: int, config: TreeConfig | None = None) -> list[int]:
    """The level sizes :meth:`LabelTree.build` gives ``n_labels`` labels, worked out without clustering."""
    config = config or TreeConfig()
    if n_labels < 2:
        return [n_labels]
    n = 2 ** _leaf_depth(n_labels, config)
    if n == 1:
        return [n_labels]
    sizes = [n, n_labels]
    while n > (config.min_codes or config.n_splits):
        n = (n - 1) // config.n_splits + 1
        sizes.insert(0, n)
    return sizes


def assignment(parent: np.ndarray, n_parents: int) -> sp.csr_matrix:
    n = parent.size
    return sp.csr_matrix((np.ones(n, np.float32), parent.astype(np.int32), np.arange(n + 1)), shape=(n, n_parents))


def _chain_from_leaves(leaf: np.ndarray, n_leaves: int, n_splits: int, min_codes: int) -> list[sp.csr_matrix]:
    chain = [] if n_leaves == 1 else [assignment(leaf, n_leaves)]
    if n_leaves == 1:
        return [assignment(np.zeros(leaf.size, np.int64), 1)]
    n = n_leaves
    while n > min_codes:
        parents = np.arange(n) // n_splits
        n_up = int(parents[-1]) + 1
        chain.insert(0, assignment(parents, n_up))
        n = n_up
    chain.insert(0, assignment(np.zeros(n, np.int64), 1))
    return chain
