from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from tests.conftest import random_problem

from xmc.tree import LabelTree, TreeConfig, balanced_leaf_clusters, pifa


@pytest.mark.parametrize("n_labels, depth", [(37, 3), (64, 4), (100, 5), (5, 2)])
def test_leaf_sizes_differ_by_at_most_one(n_labels, depth):
    E = sp.random(n_labels, 40, density=0.3, random_state=n_labels, format="csr", dtype=np.float32)
    leaf = balanced_leaf_clusters(E, depth, seed=0)
    sizes = np.bincount(leaf, minlength=2**depth)
    assert sizes.sum() == n_labels and sizes.max() - sizes.min() <= 1


def test_clustering_groups_similar_labels():
    # two well separated groups of labels must end up in different halves
    rng = np.random.default_rng(0)
    a = np.hstack([rng.random((10, 10)), np.zeros((10, 10))])
    b = np.hstack([np.zeros((10, 10)), rng.random((10, 10))])
    E = sp.csr_matrix(np.vstack([a, b]).astype(np.float32))
    leaf = balanced_leaf_clusters(E, 1, seed=3)
    assert len(set(leaf[:10])) == 1 and len(set(leaf[10:])) == 1 and leaf[0] != leaf[10]


def test_fixed_seed_is_deterministic_and_seeds_differ():
    X, Y = random_problem(n_labels=80)
    E = pifa(X, Y)
    t1 = LabelTree.build(E, TreeConfig(max_leaf_size=8, n_splits=4, seed=1))
    t2 = LabelTree.build(E, TreeConfig(max_leaf_size=8, n_splits=4, seed=1))
    t3 = LabelTree.build(E, TreeConfig(max_leaf_size=8, n_splits=4, seed=2))
    assert all((a != b).nnz == 0 for a, b in zip(t1.chain, t2.chain, strict=True))
    assert any((a != b).nnz for a, b in zip(t1.chain, t3.chain, strict=True))


def test_chain_follows_pecos_scheme():
    X, Y = random_problem(n_labels=200)
    tree = LabelTree.build(pifa(X, Y), TreeConfig(max_leaf_size=10, n_splits=4))
    # ceil(log2(200 / 10)) = 5 binary splits -> 32 leaf clusters, grouped by 4 down to <= 4 nodes
    assert tree.level_sizes == [2, 8, 32, 200]
    assert tree.chain[0].shape == (2, 1)
    for c in tree.chain:
        assert np.all(np.diff(c.indptr) == 1)  # every node has exactly one parent


def test_pifa_rows_are_unit_norm_label_centroids():
    X = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1]], np.float32))
    Y = sp.csr_matrix(np.array([[1, 0], [1, 0], [0, 1]], np.float32))
    E = pifa(X, Y).toarray()
    assert E[0] == pytest.approx([2**-0.5, 2**-0.5])
    assert E[1] == pytest.approx([2**-0.5, 2**-0.5])
    dense = pifa(X, Y, dense=np.array([[2.0], [0.0], [0.0]]))
    assert dense.shape == (2, 3) and np.linalg.norm(dense.toarray()[0]) == pytest.approx(1.0)


def test_project_labels_counts_labels_under_each_node():
    X, Y = random_problem(n_labels=60)
    tree = LabelTree.build(pifa(X, Y), TreeConfig(max_leaf_size=4, n_splits=4))
    Y0 = tree.project_labels(Y, 0)
    assert np.allclose(Y0.sum(axis=1), Y.sum(axis=1))


def test_save_load_round_trip(tmp_path):
    X, Y = random_problem(n_labels=50)
    tree = LabelTree.build(pifa(X, Y), TreeConfig(max_leaf_size=4))
    tree.save(tmp_path)
    again = LabelTree.load(tmp_path, tree.level_sizes)
    assert again.level_sizes == tree.level_sizes
    assert all((a != b).nnz == 0 for a, b in zip(tree.chain, again.chain, strict=True))
