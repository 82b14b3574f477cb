"""The level sizes worked out without clustering are those of the built tree."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.tree.label_tree import LabelTree, TreeConfig, tree_shape


@pytest.mark.parametrize("n_labels", [1, 2, 3, 99, 100, 101, 300, 1000, 4271])
@pytest.mark.parametrize("config", [TreeConfig(), TreeConfig(max_leaf_size=8, n_splits=4),
                                    TreeConfig(max_leaf_size=4, n_splits=2, min_codes=4)])
def test_shape_matches_the_built_tree(n_labels, config):
    embeddings = sp.csr_matrix(np.random.default_rng(n_labels).random((n_labels, 6)).astype(np.float32))
    assert tree_shape(n_labels, config) == LabelTree.build(embeddings, config).level_sizes


def test_known_shapes():
    assert tree_shape(4271) == [4, 64, 4271]  # 64 leaves of <= 100, grouped 16 at a time
    assert tree_shape(670_091) == [2, 32, 512, 8192, 670_091]  # as scale.md's amazon-670k run
