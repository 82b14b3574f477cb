"""Beam search against exhaustive scoring of every label."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from tests.conftest import random_problem

from xmc.models.xr_linear import XRLinear, XRLinearConfig
from xmc.search import combine_dense
from xmc.search.beam import BeamConfig, ChunkedLevel, score_level
from xmc.tree import TreeConfig
from xmc.utils.sparse import SERIAL_BELOW


def exhaustive(model: XRLinear, X: sp.csr_matrix, post_processor: str) -> np.ndarray:
    """Dense scores of every node at every level, top-down, without any beam."""
    bias = model.config.ranker.bias
    Xb = sp.hstack([X, np.full((X.shape[0], 1), bias, np.float32)]).tocsr()
    parent_scores = np.ones((X.shape[0], 1))
    for t, W in enumerate(model.weights_):
        z = (Xb @ W).toarray()
        parent_scores = combine_dense(z, parent_scores[:, model.tree_.parent_of(t)], post_processor)
    return parent_scores


@pytest.fixture(scope="module")
def fitted():
    X, Y = random_problem(n=300, n_labels=64)
    cfg = XRLinearConfig(tree=TreeConfig(max_leaf_size=4, n_splits=4))
    return XRLinear(cfg).fit(X, Y), X


@pytest.mark.parametrize("post_processor", ["l3-hinge", "sigmoid", "l1-hinge"])
def test_full_width_beam_equals_exhaustive(fitted, post_processor):
    model, X = fitted
    widest = max(model.tree_.level_sizes)
    k = 10
    beam = model.predict(X, top_k=k, beam_size=widest, post_processor=post_processor)
    full = exhaustive(model, X, post_processor)
    for i in range(X.shape[0]):
        row = beam[i]
        order = np.argsort(-row.data, kind="stable")
        np.testing.assert_allclose(row.data[order], np.sort(full[i])[::-1][:k], rtol=1e-4, atol=1e-6)
        assert set(row.indices) == set(np.argsort(-full[i], kind="stable")[:k]) or np.isclose(
            np.sort(full[i])[::-1][k - 1], np.sort(full[i])[::-1][k], rtol=1e-5
        )


def test_noop_scores_are_raw_margins(fitted):
    model, X = fitted
    widest = max(model.tree_.level_sizes)
    beam = model.predict(X[:20], top_k=5, beam_size=widest, post_processor="noop")
    full = exhaustive(model, X[:20], "noop")
    for i in range(20):
        np.testing.assert_allclose(np.sort(beam[i].data)[::-1], np.sort(full[i])[::-1][:5], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n_docs", [3, SERIAL_BELOW + 5])  # the serial and the threaded kernel
def test_one_level_scores_exactly_the_children_of_the_parents_in_the_beam(n_docs):
    """``score_level`` on its own, against dense margins: a document's row holds exactly the children
    of its beam's parents, each scored from its parent's beam score."""
    rng = np.random.default_rng(n_docs)
    n_features, n_nodes, n_parents = 40, 24, 6
    W = sp.random(n_features + 1, n_nodes, density=0.3, format="csc", dtype=np.float32, random_state=rng)
    parent_of = rng.permutation(np.arange(n_nodes) % n_parents)  # children not in node-id order
    C = sp.csr_matrix((np.ones(n_nodes, np.float32), (np.arange(n_nodes), parent_of)), shape=(n_nodes, n_parents))
    X = sp.random(n_docs, n_features, density=0.3, format="csr", dtype=np.float32, random_state=rng)
    beam = sp.random(n_docs, n_parents, density=0.4, format="csr", dtype=np.float32, random_state=rng)
    beam.data = rng.uniform(0.2, 1.0, beam.nnz).astype(np.float32)
    out = score_level(X, beam, ChunkedLevel.build(W, C, bias_value=1.5), n_nodes, "sigmoid")
    assert out.shape == (n_docs, n_nodes)
    Xb = sp.hstack([X, np.full((n_docs, 1), 1.5, np.float32)]).tocsr()
    expected = combine_dense((Xb @ W).toarray(), beam.toarray()[:, parent_of], "sigmoid")
    for i in range(n_docs):
        children = np.flatnonzero(np.isin(parent_of, beam[i].indices))
        row = out[i]
        np.testing.assert_array_equal(np.sort(row.indices), children)
        np.testing.assert_allclose(row.toarray().ravel()[children], expected[i, children], rtol=1e-5)
    out.sort_indices()  # rows come grouped by parent, so the matrix must not claim sorted indices
    assert all(np.all(np.diff(out[i].indices) > 0) for i in range(n_docs))
    first_only = sp.csr_matrix((np.ones(n_docs, np.float32), np.zeros(n_docs, np.int32), np.arange(n_docs + 1)),
                               shape=(n_docs, n_parents))  # the last nodes are never reached
    assert score_level(X, first_only, ChunkedLevel.build(W, C, bias_value=1.5), n_nodes, "sigmoid").shape == out.shape


def test_narrow_beam_returns_top_k_per_row_sorted_subset(fitted):
    model, X = fitted
    out = model.predict(X, top_k=3, beam_size=1)
    assert np.all(np.diff(out.indptr) == 3)
    full = exhaustive(model, X, "l3-hinge")
    # a width-1 beam can only miss labels, never invent scores
    for i in range(10):
        np.testing.assert_allclose(out[i].data, full[i, out[i].indices], rtol=1e-4, atol=1e-6)


def test_beam_config_rejects_bad_values():
    with pytest.raises(ValueError):
        BeamConfig(top_k=0)


def _rebuilt_from_chunks(level: ChunkedLevel, n_features: int) -> np.ndarray:
    """Dense (n_features, n_grouped_children) from the parent chunks, read entry by entry."""
    dense = np.zeros((n_features, level.child_ids.size), np.float32)
    for parent in range(level.child_ptr.size - 1):
        for k in range(level.feat_ptr[parent], level.feat_ptr[parent + 1]):
            for e in range(level.entry_ptr[k], level.entry_ptr[k + 1]):
                dense[level.feats[k], level.child_ptr[parent] + level.entry_child[e]] = level.entry_val[e]
    return dense


@pytest.mark.parametrize("seed", range(4))
def test_chunked_level_holds_exactly_the_weights(seed):
    rng = np.random.default_rng(seed)
    n_features, n_nodes, n_parents = 30, 24, 5
    W = sp.random(n_features + 1, n_nodes, density=0.3, format="csc", dtype=np.float32, random_state=seed)
    if seed % 2:  # some nodes without a bias weight, and an empty column
        keep_rows, keep_cols = np.r_[np.ones(n_features), 0.0], np.ones(n_nodes)
        keep_cols[3] = 0
        W = sp.csc_matrix(W.multiply(keep_rows[:, None]).multiply(keep_cols[None, :]), dtype=np.float32)
        W.eliminate_zeros()
    parents = np.sort(np.r_[np.arange(n_parents), rng.integers(0, n_parents, n_nodes - n_parents)])
    nodes = rng.permutation(n_nodes)  # children not in node-id order
    C = sp.csr_matrix((np.ones(n_nodes, np.float32), (nodes, parents)), shape=(n_nodes, n_parents))
    level = ChunkedLevel.build(W, C, bias_value=2.0)
    expected = W.toarray()[:, level.child_ids]
    np.testing.assert_array_equal(_rebuilt_from_chunks(level, n_features), expected[:n_features])
    np.testing.assert_array_equal(level.bias, 2.0 * expected[n_features])
    assert level.entry_child.dtype == level.feats.dtype == np.int32


def _edge_weights(case: str) -> sp.csc_matrix:
    """(5 features + bias row, 4 nodes) weights with the column patterns that trip bias detection."""
    W = np.zeros((6, 4))
    if case == "bias-only first node, empty node after a bias":
        W[5, 0] = 0.5                          # node 0: a bias and nothing else
        W[[1, 5], 1] = [1.0, -2.0]             # node 1 ends on its bias; node 2 is empty
        W[[0, 3], 3] = [3.0, 4.0]              # node 3: features only, none in the last feature row
    elif case == "one bias weight":
        W[5, 2] = 1.5
    elif case == "float64 features only":
        W[[0, 2], [1, 3]] = [0.1, 0.2]
    return sp.csc_matrix(W) if case.startswith("float64") else sp.csc_matrix(W, dtype=np.float32)


@pytest.mark.parametrize("case", ["bias-only first node, empty node after a bias", "one bias weight",
                                  "all zero", "float64 features only"])
def test_a_level_holds_exactly_its_weights_whatever_their_pattern(case):
    W = _edge_weights(case)
    C = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 0], [0, 1]], np.float32))
    level = ChunkedLevel.build(W, C, bias_value=2.0)
    expected = W.toarray().astype(np.float32)
    np.testing.assert_array_equal(_rebuilt_from_chunks(level, 5), expected[:5, level.child_ids])
    np.testing.assert_array_equal(level.bias, 2.0 * expected[5, level.child_ids])
    back = level.to_weights()
    assert back.shape == W.shape and back.dtype == np.float32  # empty last rows and nodes included
    np.testing.assert_array_equal(back.toarray(), expected)
    assert level.entry_val.dtype == level.bias.dtype == level.bias_row.dtype == np.float32
    assert level.entry_ptr.dtype == level.feat_ptr.dtype == np.int64


def test_the_beam_keeps_exactly_beam_size_nodes_per_level():
    """16 labels under 4 parents of 4: a beam of b parents leaves exactly the 4 b labels under the
    b best-scored parents (a beam one narrower or wider would return 4 fewer or 4 more)."""
    X, Y = random_problem(n=200, n_labels=16, seed=3)
    model = XRLinear(XRLinearConfig(tree=TreeConfig(max_leaf_size=4, n_splits=4, min_codes=4))).fit(X, Y)
    assert model.tree_.level_sizes == [4, 16]
    parent_of = model.tree_.parent_of(1)
    top_scores = exhaustive_top(model, X)
    for beam_size in (1, 2, 3):
        out = model.predict(X[:30], top_k=16, beam_size=beam_size)
        assert np.all(np.diff(out.indptr) == 4 * beam_size)
        for i in range(30):
            kept = set(parent_of[out[i].indices])
            best = set(np.argsort(-top_scores[i], kind="stable")[:beam_size])
            assert kept == best


def exhaustive_top(model: XRLinear, X: sp.csr_matrix) -> np.ndarray:
    Xb = sp.hstack([X, np.full((X.shape[0], 1), model.config.ranker.bias, np.float32)]).tocsr()
    return (Xb @ model.weights_[0]).toarray()


def test_chunks_list_each_feature_once_per_parent_in_order():
    from xmc.search.chunks import chunk_layout

    W = sp.random(51, 12, density=0.4, format="csc", dtype=np.float32, random_state=1)  # 50 features + bias
    child_ids = np.random.default_rng(1).permutation(12)
    feat_ptr, feats, entry_ptr, entry_child, entry_val = chunk_layout(W, np.array([0, 4, 4, 12]), child_ids)
    assert feat_ptr.tolist()[:3] == [0, feat_ptr[1], feat_ptr[1]]  # the empty parent has no features
    assert feat_ptr.size == 4 and feat_ptr[-1] == feats.size and entry_ptr[-1] == entry_val.size
    for p, (lo, hi) in enumerate([(0, 4), (4, 4), (4, 12)]):
        chunk = feats[feat_ptr[p]:feat_ptr[p + 1]]
        assert np.all(np.diff(chunk) > 0)  # strictly increasing: no feature twice in a chunk
        block = W[:50][:, child_ids[lo:hi]].toarray()
        assert chunk.tolist() == np.flatnonzero(np.abs(block).sum(1)).tolist()
        for j, f in enumerate(chunk, start=feat_ptr[p]):
            children = entry_child[entry_ptr[j]:entry_ptr[j + 1]]
            assert np.all(np.diff(children) > 0)
            np.testing.assert_array_equal(entry_val[entry_ptr[j]:entry_ptr[j + 1]], block[f, children])


@pytest.mark.parametrize("post_processor", ["l3-hinge", "noop"])
def test_one_document_at_a_time_scores_as_the_batch_does(fitted, post_processor):
    """A batch reads busy parents through a lookup table, one document by search: same scores."""
    model, X = fitted
    n = SERIAL_BELOW + 40  # a parallel batch, and many documents per parent
    batch = model.predict(X[:n], top_k=8, beam_size=3, post_processor=post_processor)
    one_by_one = sp.vstack([model.predict(X[i:i + 1], top_k=8, beam_size=3, post_processor=post_processor)
                            for i in range(n)]).tocsr()
    np.testing.assert_array_equal(batch.indices, one_by_one.indices)
    np.testing.assert_allclose(batch.data, one_by_one.data, rtol=1e-5, atol=1e-7)


def test_beam_search_defaults_and_levels_above_the_labels():
    from xmc.search.beam import beam_search

    X, Y = random_problem(n=120, d=300, n_labels=16, seed=4)  # more features than documents
    model = XRLinear(XRLinearConfig(tree=TreeConfig(max_leaf_size=4, n_splits=4, min_codes=4))).fit(X, Y)
    sizes = model.tree_.level_sizes
    default = beam_search(X, model._levels, sizes, beam_size=2, top_k=3)
    explicit = beam_search(X, model._levels, sizes, beam_size=2, top_k=3, post_processor="l3-hinge")
    assert default.shape == (120, 16) and (default != explicit).nnz == 0
    top = beam_search(X, model._levels, sizes, beam_size=2, top_k=2, stop_level=0)
    assert top.shape == (120, sizes[0]) and np.all(np.diff(top.indptr) == 2)


def test_an_unknown_post_processor_lists_the_choices():
    from xmc.exceptions import InvalidInputError
    from xmc.search.postprocess import code

    with pytest.raises(InvalidInputError, match="unknown post-processor 'cubic'; choose from noop, sigmoid, l1-hinge"):
        code("cubic")


def test_a_few_documents_score_on_the_calling_thread_as_a_batch_does(fitted):
    """Below SERIAL_BELOW documents the kernels run without threads; every row must equal its row in
    a batch large enough for the threaded kernels."""
    model, X = fitted
    assert X.shape[0] >= SERIAL_BELOW
    batch = model.predict(X, top_k=5, beam_size=3)
    for i in (0, 7, 150):
        single = model.predict(X[i], top_k=5, beam_size=3)
        assert single.indices.tolist() == batch[i].indices.tolist()
        np.testing.assert_array_equal(single.data, batch[i].data)
    few = model.predict(X[:SERIAL_BELOW - 1], top_k=5, beam_size=3)
    assert (few != batch[:SERIAL_BELOW - 1]).nnz == 0


def test_the_kernel_is_chosen_by_the_number_of_documents(fitted, monkeypatch):
    from xmc.search import beam as beam_module

    asked = []
    real = beam_module.kernel_for
    monkeypatch.setattr(beam_module, "kernel_for",
                        lambda n_rows, *kernels: asked.append(n_rows) or real(n_rows, *kernels))
    model, X = fitted
    for n_docs in (1, SERIAL_BELOW - 1, SERIAL_BELOW):
        asked.clear()
        model.predict(X[:n_docs], top_k=5, beam_size=3)
        assert asked and set(asked) == {n_docs}


@pytest.mark.parametrize("pair", ["beam", "topk"])
def test_the_serial_kernels_are_compiled_and_cached_apart_from_the_parallel_ones(pair):
    """numba's disk cache is keyed by a function's name and line, not its flags: a serial copy under
    the parallel kernel's name loads the parallel machine code (and OpenMP's workers then spin on a
    second core after every one-text call), or the batch kernel loads the serial code."""
    from xmc.search import beam as beam_module
    from xmc.utils import sparse as sparse_module

    parallel, serial = {"beam": (beam_module._score_level, beam_module._score_level_serial),
                        "topk": (sparse_module._topk_rows, sparse_module._topk_rows_serial)}[pair]
    assert parallel.targetoptions.get("parallel") and not serial.targetoptions.get("parallel")
    assert parallel._cache._cache_file._index_name != serial._cache._cache_file._index_name


@pytest.mark.parametrize("seed", range(6))
def test_scoring_one_parent_by_its_hash_finds_every_shared_feature(seed):
    """A document's features are found in a parent chunk through the chunk's own hash table: exactly
    the shared features, the first and last of the chunk included, whatever the other parents'
    chunks hold and however full the table is (a chunk of 1, of 3 slots' load, of thousands)."""
    from xmc.search.lookups import feature_hash_tables, score_by_hash

    rng = np.random.default_rng(seed)
    n_features, width = 5000, 3
    sizes = [1, 3, int(rng.integers(1, 3000)), 0, 12]
    chunks = [np.sort(rng.choice(n_features, size=n, replace=False)).astype(np.int32) for n in sizes]
    feat_ptr = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    feats = np.concatenate(chunks)
    hash_ptr, keys, rows = feature_hash_tables(feat_ptr, feats)
    assert np.all(np.diff(hash_ptr)[np.array(sizes) > 0] * 3 >= 4 * np.array(sizes)[np.array(sizes) > 0] - 3)
    entry_ptr = np.arange(0, width * feats.size + 1, width, dtype=np.int64)  # every child at every feature
    entry_child = np.tile(np.arange(width, dtype=np.int32), feats.size)
    entry_val = rng.standard_normal(entry_child.size).astype(np.float32)
    for p, chunk in enumerate(chunks):
        dense = np.zeros((n_features, width))
        dense[chunk] = entry_val[width * feat_ptr[p]:width * feat_ptr[p + 1]].reshape(-1, width)
        for nx in (3, 7, 40, 2500):
            chosen = rng.choice(n_features, size=nx, replace=False)
            x_idx = np.unique(np.r_[chosen, chunk[:1], chunk[-1:]]).astype(np.int32)
            x_val = rng.standard_normal(x_idx.size).astype(np.float32)
            pad = 3  # the document sits inside a larger CSR
            x_all = np.r_[np.zeros(pad, np.int32), x_idx]
            v_all = np.r_[np.zeros(pad, np.float32), x_val]
            acc = np.zeros(width)
            scratch = [np.empty(x_idx.size, np.int64) for _ in range(3)]
            score_by_hash(x_all, v_all, pad, pad + x_idx.size, keys, rows, hash_ptr[p], hash_ptr[p + 1],
                           feat_ptr[p], entry_ptr, entry_child, entry_val, acc, *scratch)
            np.testing.assert_allclose(acc, x_val @ dense[x_idx], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pp", ["l3-hinge", "sigmoid"])
def test_a_level_every_parent_of_which_is_in_the_beam_scores_as_the_chunked_path(pp):
    """A few documents whose beam holds every parent (the top levels) are scored from the level's
    feature-major weights; the result equals, bit for bit, the chunk-by-chunk kernel's."""
    from xmc.search import beam as B
    from xmc.search.postprocess import code

    X, Y = random_problem(n=120, n_labels=64, seed=5)
    model = XRLinear(XRLinearConfig(tree=TreeConfig(max_leaf_size=4, n_splits=4))).fit(X, Y)
    rng = np.random.default_rng(0)
    for level in model._levels:
        n_parents = level.child_ptr.size - 1
        for n_docs in (1, 3):
            rows = rng.choice(X.shape[0], n_docs, replace=False)
            query = B._query(X[rows])
            beam = (np.arange(0, n_parents * n_docs + 1, n_parents, dtype=np.int64),
                    np.tile(rng.permutation(n_parents).astype(np.int32), n_docs),
                    rng.random(n_parents * n_docs).astype(np.float32))
            fast = B._level_arrays(query, beam, level, code(pp))
            chunked = B._score_level_serial(*query, *beam, level.child_ptr, level.child_ids, level.feat_ptr,
                                            level.feats, level.entry_ptr, level.entry_child, level.entry_val,
                                            level.bias, *level.feature_hash(), code(pp), 1)
            for a, b in zip(fast, chunked, strict=True):
                np.testing.assert_array_equal(a, b)
    assert level.by_feature()[0].size == X.shape[1] + 1
