"""New labels added to a trained XR-Linear (:mod:`xmc.models.label_update`) and ``xmc update``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.exceptions import InvalidInputError
from xmc.models.label_update import add_labels
from xmc.models.xr_linear import XRLinear, XRLinearConfig
from xmc.tree.label_tree import TreeConfig
from xmc.utils.sparse import l2_normalize_rows

CONFIG = XRLinearConfig(tree=TreeConfig(max_leaf_size=8, n_splits=4))


def topic_problem(n=2400, n_features=400, n_labels=96, seed=0):
    """One label per document; each label draws its words from its own topic, plus noise."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, n_labels, n)
    topics = rng.random((n_labels, n_features)) < 0.04
    X = l2_normalize_rows(sp.csr_matrix((topics[label] | (rng.random((n, n_features)) < 0.01)).astype(np.float32)))
    Y = sp.csr_matrix((np.ones(n, np.float32), (np.arange(n), label)), shape=(n, n_labels))
    return X, Y, label


@pytest.fixture(scope="module")
def updated():
    X, Y, label = topic_problem()
    known = 80
    rows = np.flatnonzero(label < known)
    model = XRLinear(CONFIG).fit(X[rows], Y[rows][:, :known])
    before = [level.to_weights() for level in model._levels]
    tree_before = model.tree_
    report = add_labels(model, X, Y, known)
    return model, report, before, tree_before, (X, Y, label, known)


def test_new_labels_join_leaf_clusters_and_are_predicted(updated):
    model, report, _, tree_before, (X, Y, label, known) = updated
    assert model.n_labels_ == Y.shape[1] and report.n_new_labels == Y.shape[1] - known
    assert model.tree_.level_sizes[:-1] == tree_before.level_sizes[:-1]  # no new clusters
    leaf_of = model.tree_.parent_of(model.tree_.depth - 1)
    np.testing.assert_array_equal(leaf_of[:known], tree_before.parent_of(tree_before.depth - 1))
    np.testing.assert_array_equal(leaf_of[known:], report.leaf_of_new)
    new_docs = np.flatnonzero(label >= known)
    top = model.predict(X[new_docs], top_k=1)
    assert np.mean(top.indices == label[new_docs]) > 0.9


def test_only_new_labels_and_touched_clusters_change(updated):
    model, report, before, tree_before, (X, Y, label, known) = updated
    after = model.weights_
    last = model.tree_.depth - 1
    assert (after[last][:, :known] != before[last]).nnz == 0  # known labels keep their rankers exactly
    assert report.retrained[last] == Y.shape[1] - known
    touched = np.unique(report.leaf_of_new)
    for t in range(last - 1, -1, -1):
        untouched = np.setdiff1d(np.arange(model.tree_.level_sizes[t]), touched)
        assert (after[t][:, untouched] != before[t][:, untouched]).nnz == 0
        assert report.retrained[t] == touched.size
        assert all((after[t][:, [j]] != before[t][:, [j]]).nnz > 0 for j in touched)  # new positives: new weights
        touched = np.unique(tree_before.parent_of(t)[touched])


def test_added_rankers_match_a_full_fit_on_the_updated_tree(updated):
    """A model trained from scratch on the updated tree has the same rankers for the new labels."""
    model, _, _, _, (X, Y, label, known) = updated
    full = XRLinear(CONFIG).fit(X, Y, tree=model.tree_)
    last = model.tree_.depth - 1
    mine, ref = model.weights_[last][:, known:].toarray(), full.weights_[last][:, known:].toarray()
    cos = np.sum(mine * ref, 0) / (np.linalg.norm(mine, axis=0) * np.linalg.norm(ref, axis=0))
    assert cos.min() > 0.99  # same problem; only the solver's coordinate order may differ


def test_update_refuses_what_it_cannot_do():
    X, Y, label = topic_problem(n=600, n_labels=24)
    model = XRLinear(CONFIG).fit(X, Y)
    with pytest.raises(InvalidInputError, match="no new labels"):
        add_labels(model, X, Y, Y.shape[1])
    with pytest.raises(InvalidInputError, match="knows 24 labels"):
        add_labels(model, X, Y, 20)
    empty = sp.hstack([Y, sp.csr_matrix((Y.shape[0], 1), dtype=np.float32)], format="csr")
    with pytest.raises(InvalidInputError, match="1 labels to train have no training documents"):
        add_labels(model, X, empty, Y.shape[1])
    with pytest.raises(InvalidInputError, match="not known labels"):
        add_labels(model, X, Y, Y.shape[1], retrain_known=np.array([24]))


def test_known_labels_are_retrained_on_request():
    X, Y, label = topic_problem(n=1200, n_labels=40)
    first = np.arange(400)  # the model sees a third of the documents
    model = XRLinear(CONFIG).fit(X[first], Y[first])
    before = model.weights_
    report = add_labels(model, X, Y, 40, retrain_known=np.array([3, 17]))
    after = model.weights_
    last = model.tree_.depth - 1
    changed = [j for j in range(40) if (after[last][:, [j]] != before[last][:, [j]]).nnz]
    assert changed == [3, 17] and report.n_new_labels == 0 and report.retrained[last] == 2
    leaves = np.unique(model.tree_.parent_of(last)[[3, 17]])
    np.testing.assert_array_equal(np.flatnonzero(np.diff(sp.csc_matrix(after[last - 1] != before[last - 1]).indptr)),
                                  leaves)


def test_a_flat_model_takes_new_labels_under_its_root():
    X, Y, label = topic_problem(n=600, n_labels=12)
    model = XRLinear(XRLinearConfig(tree=TreeConfig(max_leaf_size=100))).fit(X[label < 10], Y[label < 10][:, :10])
    assert model.tree_.depth == 1
    report = add_labels(model, X, Y, 10)
    assert model.tree_.level_sizes == [12] and report.retrained == [2]
    top = model.predict(X[label >= 10], top_k=1)
    assert np.mean(top.indices == label[label >= 10]) > 0.9
