"""The label-text ranker: its features by hand, its neighbours and training pools, and that what it
learns from the known labels ranks unseen labels that the text cosine alone cannot."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.exceptions import ModelFormatError
from xmc.features.tfidf import TfidfConfig
from xmc.models.label_ranker import (
    FEATURES,
    LabelTextRanker,
    RankerModel,
    _pools,
    neighbour_weights,
    shortlist_features,
)
from xmc.models.label_text import LabelTextConfig, LabelTextScorer
from xmc.utils.io import load_arrays, save_arrays


def test_shortlist_features_worked_by_hand():
    cos = np.array([[0.2, -np.inf, 0.5, 0.1]])
    name = np.array([[0.0, 0.9, 0.4, 0.3]])
    transfer = np.array([[0.3, 0.7, 0.1, 0.2]])
    fed = np.array([[0.6, 0.0, 0.2, 0.4]])
    hub = np.array([0.05, 0.06, 0.07, 0.08])
    feats, cols = shortlist_features(cos, name, transfer, fed, hub, top_k=3)
    assert cols.tolist() == [[2, 0, 3]]  # best cosine first; the -inf column is no candidate
    assert feats.shape == (3, len(FEATURES))
    c, t, f = np.array([0.5, 0.2, 0.1]), np.array([0.1, 0.3, 0.2]), np.array([0.2, 0.6, 0.4])
    want = np.column_stack([c, [0.4, 0.0, 0.3], t, c / 0.5, t / 0.3, np.log1p([0, 1, 2]), [0.07, 0.05, 0.08],
                            t - t.mean(), c - c.mean(), f, f / 0.6, f - f.mean()])
    np.testing.assert_allclose(feats, want, rtol=1e-5, atol=1e-6)
    feats, cols = shortlist_features(cos, name, transfer, fed, hub, top_k=4)  # a row with fewer candidates than k
    assert cols[0, -1] == 1 and feats[-1, 0] == 0.0
    np.testing.assert_allclose(feats[-1, FEATURES.index("cosine - mean")], -c.mean(), rtol=1e-5)  # the 3 real ones
    np.testing.assert_allclose(feats[-1, -1], 0.0 - f.mean(), rtol=1e-5)


def test_shortlists_are_each_rows_best_cosines_in_order_and_centred_per_row():
    rng = np.random.default_rng(5)
    cos = rng.random((200, 60)).astype(np.float32)
    cos[0, 3:] = -np.inf  # a row with 3 candidates and one with 1, beside rows with 60
    cos[2, 1:] = -np.inf
    cos[3] *= 0.5  # a row whose best is not the block's best
    zeros = np.zeros_like(cos)
    feats, cols = shortlist_features(cos, zeros, zeros, cos, np.zeros(60), top_k=10)
    assert feats.dtype == np.float32
    np.testing.assert_array_equal(cols[3:], np.argsort(-cos[3:], axis=1, kind="stable")[:, :10])
    feats = feats.reshape(200, 10, -1)
    centred, best = (feats[..., FEATURES.index(f)] for f in ("cosine - mean", "cosine / best"))
    np.testing.assert_allclose(centred[0, :3], cos[0, cols[0, :3]] - cos[0, :3].mean(), rtol=1e-5)
    np.testing.assert_allclose(centred[3], cos[3, cols[3]] - cos[3, cols[3]].mean(), rtol=1e-5)
    assert centred[2, 0] == 0.0  # a lone candidate is its own mean
    np.testing.assert_allclose(best[3], cos[3, cols[3]] / cos[3].max(), rtol=1e-5)


def test_neighbours_are_the_most_similar_known_texts_never_the_label_itself():
    texts = sp.csr_matrix(np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0.6, 0, 0.8]], dtype=np.float32))
    weights = neighbour_weights(texts, n_known=3, k=1).toarray()
    assert weights.shape == (4, 3)
    assert weights.argmax(1).tolist() == [1, 0, 1, 0]  # label 0's nearest other is 1; 3 (unknown) -> 0
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-6)
    two = neighbour_weights(texts, n_known=3, k=2).toarray()
    np.testing.assert_allclose(two[1], np.array([0.8 ** 2, 0, 0.6 ** 2]) / (0.8 ** 2 + 0.6 ** 2), rtol=1e-5)
    assert two[0, 0] == 0 and two[1, 1] == 0 and two[2, 2] == 0


def test_training_pools_hide_one_own_label_among_labels_the_document_lacks():
    rng = np.random.default_rng(0)
    Y = sp.random(50, 30, density=0.1, random_state=1, format="csr", dtype=np.float32)
    Y = sp.csr_matrix(Y + sp.csr_matrix((np.ones(50), (np.arange(50), np.arange(50) % 30)), shape=(50, 30)))
    pool, hidden = _pools(Y, 8, rng)
    own = Y.toarray() > 0
    assert (pool.sum(1) == 8).all() and pool[np.arange(50), hidden].all() and own[np.arange(50), hidden].all()
    assert ((pool & own).sum(1) == 1).all()  # no other own label among the negatives


def _topic_task(seed=0):
    """Six topics with four labels each; a label's text names its topic and its own keyword, its
    documents use its topic's vocabulary (never the text's words). The last label of each topic has
    no training document: the cosine with its text is 0 on every document, while its text's nearest
    known labels (same topic) have centroids in the right vocabulary."""
    rng = np.random.default_rng(seed)
    topics = [[f"t{t}w{i}" for i in range(6)] for t in range(6)]
    texts, labels = [], []
    for t in range(6):
        for j in range(4):
            texts.append(f"topic{t}; key{t}x{j}")
            labels.append(t * 4 + j)
    known = [lab for lab in labels if lab % 4 != 3]
    order = known + [lab for lab in labels if lab % 4 == 3]

    def doc(lab):
        t = lab // 4
        words = list(rng.choice(topics[t], 4)) + [f"mark{lab}"] * 2 + list(rng.choice(["the", "act", "of"], 3))
        return " ".join(rng.permutation(words))

    train = [(doc(lab), order.index(lab)) for lab in known for _ in range(12)]
    test = [(doc(lab), order.index(lab)) for lab in labels if lab % 4 == 3 for _ in range(6)]
    Y = sp.csr_matrix((np.ones(len(train), np.float32), ([i for i in range(len(train))], [c for _, c in train])),
                      shape=(len(train), len(known)))
    return [t for t, _ in train], Y, [texts[lab] for lab in order], test, len(known)


def _trained_topic_scorer(seed, known_pool=False):
    """A scorer with a ranker trained on ``_topic_task(seed)``; its training texts, the test
    documents and the unseen labels' columns."""
    train_texts, Y, label_texts, test, n_known = _topic_task(seed)
    config = LabelTextConfig(tfidf=TfidfConfig(min_df=1, ngram_max=1), top_k=6, neighbours=3, ranker_docs=60)
    unseen = np.arange(n_known, len(label_texts))
    pools = [unseen.size, n_known] if known_pool else [unseen.size]
    return LabelTextScorer(config).fit(train_texts, label_texts, Y, pool_sizes=pools), train_texts, test, unseen


def test_the_ranker_finds_unseen_labels_through_their_known_neighbours_where_the_cosine_cannot():
    train_texts, Y, label_texts, test, n_known = _topic_task()
    config = LabelTextConfig(tfidf=TfidfConfig(min_df=1, ngram_max=1), top_k=6, neighbours=3, ranker_docs=60)
    unseen = np.arange(n_known, len(label_texts))
    trained = LabelTextScorer(config).fit(train_texts, label_texts, Y, pool_sizes=[unseen.size])
    floor = LabelTextScorer(config.replace(trained=False)).fit(train_texts, label_texts, Y, pool_sizes=[unseen.size])
    assert trained.ranker is not None and floor.ranker is None
    docs, truth = [t for t, _ in test], np.array([c for _, c in test])

    def top1(scorer):
        S = scorer.score(docs, [unseen]).toarray()[:, unseen]
        return np.mean(unseen[S.argmax(1)] == truth), S

    hit, S = top1(trained)
    assert hit >= 0.9 and ((S > 0) & (S < 1)).any(axis=1).all()  # probabilities
    others = np.sort(S, axis=1)[:, :-1]
    assert S.max(1).mean() > 0.4 and others.mean() < 0.15  # calibrated: trained on the hidden labels as positives
    floor_hit, floor_S = top1(floor)
    assert floor_hit <= 0.5 and (floor_S.max(1) == 0).mean() > 0.5  # the texts' words are in no document
    # the centroids kept for prediction are every training document's (the held-out ones too)
    X = trained.featurizer.transform(train_texts)
    sums = (Y.T @ X).toarray()
    np.testing.assert_allclose(trained.ranker.centroids.toarray(), sums / np.linalg.norm(sums, axis=1, keepdims=True),
                               rtol=1e-5, atol=1e-7)


def test_the_ranker_round_trips_and_damaged_arrays_are_refused(tmp_path):
    train_texts, Y, label_texts, test, n_known = _topic_task(1)
    config = LabelTextConfig(tfidf=TfidfConfig(min_df=1, ngram_max=1), top_k=6, neighbours=3, ranker_docs=60)
    unseen = np.arange(n_known, len(label_texts))
    scorer = LabelTextScorer(config).fit(train_texts, label_texts, Y, pool_sizes=[unseen.size, n_known])
    assert scorer.ranker.model.pool_sizes.tolist() == [unseen.size, n_known]
    scorer.save(tmp_path / "s")
    again = LabelTextScorer.load(tmp_path / "s", len(label_texts))
    docs = [t for t, _ in test]
    assert (again.score(docs, [unseen]) != scorer.score(docs, [unseen])).nnz == 0
    arrays = load_arrays(tmp_path / "s" / "ranker.npz")
    arrays["n_indices"] = arrays["n_indices"] + n_known  # neighbours past the known labels
    save_arrays(tmp_path / "s" / "ranker.npz", **arrays)
    with pytest.raises(ModelFormatError, match="ranker arrays do not fit"):
        LabelTextScorer.load(tmp_path / "s", len(label_texts))


def test_the_ranker_keeps_its_transposed_columns_while_the_label_count_stays():
    """Transposing every label's text, name, centroid and feedback rows costs more than a small
    batch's products: done once, and again only for label texts of another count."""
    scorer, train_texts, test, unseen = _trained_topic_scorer(2)
    ranker, X = scorer.ranker, scorer.featurizer.transform([t for t, _ in test])
    first = ranker.score(X, scorer.label_tfidf, scorer.name_tfidf, [unseen], 6)[0]
    columns = ranker._columns
    again = ranker.score(X, scorer.label_tfidf, scorer.name_tfidf, [unseen], 6)[0]
    assert ranker._columns is columns and (again != first).nnz == 0
    ranker.score(X, scorer.label_tfidf[:-1], scorer.name_tfidf[:-1], [unseen[:-1]], 6)
    assert ranker._columns is not columns and ranker._columns[0].shape[1] == scorer.n_labels - 1


def test_a_label_without_text_never_scores_and_one_word_is_text_enough():
    scorer, train_texts, test, unseen = _trained_topic_scorer(3)
    texts = scorer.label_tfidf.tolil()
    empty, one_word = unseen[0], unseen[1]
    texts[empty] = 0.0
    texts[one_word, texts.rows[one_word][1:]] = 0.0  # keep the row's first term alone
    texts = sp.csr_matrix(texts)
    texts.eliminate_zeros()
    assert texts[empty].nnz == 0 and texts[one_word].nnz == 1
    X = scorer.featurizer.transform([t for t, _ in test])
    S = scorer.ranker.score(X, texts, scorer.name_tfidf, [unseen], top_k=unseen.size)[0].tocsc()
    assert S[:, 0].nnz == 0  # a label with an empty text is never a candidate
    assert S[:, 1].nnz == X.shape[0] and S[:, 2:].nnz == X.shape[0] * (unseen.size - 2)  # the others: every one
    fewer = scorer.ranker.score(X, texts, scorer.name_tfidf, [unseen], top_k=3)[0]
    assert np.diff(fewer.indptr).tolist() == [3] * X.shape[0]  # the empty text takes no candidate's place
    assert fewer.tocsc()[:, 0].nnz == 0


def test_groups_of_no_label_one_label_and_more_labels_than_candidates_keep_their_shapes():
    scorer, train_texts, test, unseen = _trained_topic_scorer(4)
    X = scorer.featurizer.transform([t for t, _ in test][:5])  # fewer documents than labels in a group
    none, lone, top_one = scorer.ranker.score(X, scorer.label_tfidf, scorer.name_tfidf,
                                              [np.array([], dtype=np.int64), unseen[:1], unseen], top_k=1)
    assert none.shape == (5, 0) and none.dtype == np.float32 and none.nnz == 0
    assert lone.shape == (5, 1) and lone.nnz == 5 and ((lone.data > 0) & (lone.data < 1)).all()
    # one candidate a document: the group's width stays, whichever of its labels no document ranks first
    assert top_one.shape == (5, unseen.size) and np.diff(top_one.indptr).tolist() == [1] * 5
    assert top_one.dtype == np.float32 and top_one.tocsc()[:, -1].nnz == 0  # so the width is not read off the data


def test_scores_are_the_same_in_chunks_of_documents_and_for_no_document(monkeypatch):
    """More documents than features, scored in chunks of 64 and in one: the same scores; no
    document: an empty float32 matrix per group."""
    import xmc.models.label_ranker as ranker_module

    scorer, train_texts, test, unseen = _trained_topic_scorer(5, known_pool=True)
    n_known = scorer.ranker.centroids.shape[0]
    X = scorer.featurizer.transform(train_texts)
    assert X.shape[0] > X.shape[1] + 64
    groups = [unseen, np.arange(n_known)]
    whole = scorer.ranker.score(X, scorer.label_tfidf, scorer.name_tfidf, groups, top_k=6)
    monkeypatch.setattr(ranker_module, "_CHUNK", 64)
    chunked = scorer.ranker.score(X, scorer.label_tfidf, scorer.name_tfidf, groups, top_k=6)
    for a, b in zip(whole, chunked, strict=True):
        assert a.shape == b.shape == (X.shape[0], a.shape[1]) and (a != b).nnz == 0
        assert np.diff(a.indptr).min() == 6
    empty = scorer.ranker.score(X[:0], scorer.label_tfidf, scorer.name_tfidf, groups, top_k=6)
    assert [(m.shape, m.dtype, m.nnz) for m in empty] == [((0, unseen.size), np.float32, 0),
                                                         ((0, n_known), np.float32, 0)]


def test_the_ranker_model_is_picked_by_the_pool_size_it_was_trained_for():
    n = len(FEATURES)
    model = RankerModel(np.array([90, 3000]), np.zeros((2, n)), np.zeros(2), np.zeros((2, n)), np.ones((2, n)))
    assert [model.for_pool(n) for n in (50, 89, 500, 600, 2000, 10000)] == [0, 0, 0, 1, 1, 1]


def test_centroids_are_unit_sums_of_their_documents_cut_to_the_heaviest_terms():
    from xmc.models.label_ranker import _centroids

    X = sp.csr_matrix(np.array([[3, 0, 1, 0], [1, 2, 0, 0], [0, 0, 0, 5]], np.float32))
    Y = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], np.float32))  # label 2 has no document

    def unit(rows):
        rows = np.array(rows, np.float32)
        return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)

    for terms in (2, 0):
        without, whole = (m.toarray() for m in _centroids(Y, np.array([1]), X, terms))
        # label 0 sums 4 2 1 0 (cut to two: 4 2), 3 0 1 0 without document 1; label 1 only has document 1
        np.testing.assert_allclose(whole, unit([[4, 2, 0, 0] if terms else [4, 2, 1, 0], [1, 2, 0, 0], [0] * 4]),
                                   rtol=1e-6)
        np.testing.assert_allclose(without, unit([[3, 0, 1, 0], [0] * 4, [0] * 4]), rtol=1e-6)


def _ranker_arrays(n_labels=5, n_known=3, n_features=8, n_models=1, pool=4, neighbour_cols=(0, 1)):
    from xmc.models.label_ranker import LabelTextRanker

    centroids = sp.csr_matrix(np.eye(n_known, n_features, dtype=np.float32))
    cols = np.array([neighbour_cols[i % len(neighbour_cols)] for i in range(n_labels)])
    neighbours = sp.csr_matrix((np.ones(n_labels, np.float32), (np.arange(n_labels), cols)), shape=(n_labels, n_known))
    n = len(FEATURES)
    model = RankerModel(np.full(n_models, pool), np.zeros((n_models, n)), np.zeros(n_models), np.zeros((n_models, n)),
                        np.ones((n_models, n)))
    feedback = sp.csr_matrix(np.eye(n_labels, n_features, dtype=np.float32))
    return LabelTextRanker(centroids, neighbours, np.zeros(n_labels, np.float32), feedback, model).arrays()


@pytest.mark.parametrize("change, fits", [
    ({}, True), (dict(n_known=1, neighbour_cols=(0,)), True), (dict(n_known=5), True), (dict(pool=1), True),
    (dict(n_models=0), False), (dict(pool=0), False)])
def test_saved_ranker_arrays_are_checked_at_their_bounds(change, fits):
    from xmc.models.label_ranker import LabelTextRanker

    a = _ranker_arrays(**change)
    if fits:
        ranker = LabelTextRanker.from_arrays(a, 5, 8)
        n_known = change.get("n_known", 3)
        assert ranker.neighbours.shape == (5, n_known) and ranker.centroids.shape == (n_known, 8)
    else:
        with pytest.raises(ModelFormatError, match="do not fit"):
            LabelTextRanker.from_arrays(a, 5, 8)


def test_saved_ranker_arrays_out_of_bounds_are_refused():
    from xmc.models.label_ranker import LabelTextRanker

    empty = {"indices": np.zeros(0, np.int32), "data": np.zeros(0, np.float32)}
    no_known = {**_ranker_arrays(), "c_indptr": np.zeros(1, np.int64), "n_indptr": np.zeros(6, np.int64),
                **{f"{m}_{k}": v for m in "cn" for k, v in empty.items()}}  # nothing else out of place
    past_features = _ranker_arrays()
    past_features["c_indices"] = past_features["c_indices"].copy()
    past_features["c_indices"][-1] = 8  # one past the last feature
    feedback_past = {**_ranker_arrays(), "f_indices": np.array([0, 1, 2, 3, 8], np.int32)}
    feedback_short = {**_ranker_arrays(), "f_indptr": np.arange(5, dtype=np.int64)}  # 4 labels' rows, not 5
    for arrays in (no_known, past_features, feedback_past, feedback_short):
        with pytest.raises(ModelFormatError, match="do not fit"):
            LabelTextRanker.from_arrays(arrays, 5, 8)


def test_feedback_centroids_worked_by_hand():
    from xmc.models.label_ranker import feedback_centroids

    X_ref = sp.csr_matrix(np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32))
    Y_ref = sp.csr_matrix(np.array([[1, 0], [0, 0], [0, 1], [0, 0]], dtype=np.float32))  # 2 known labels
    texts = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]], dtype=np.float32))  # label 2 is unseen
    got = feedback_centroids(texts, X_ref, Y_ref, docs=2, terms=0).toarray()
    # labels 0 and 1 skip their own documents (0 and 2): only document 1 matches either (the second pick
    # has cosine 0 and weighs nothing); the unseen label reads documents 0 and 1, weighted 1 and 0.6 ** 2
    both = np.array([1.0, 0, 0]) + 0.36 * np.array([0.6, 0.8, 0])
    np.testing.assert_allclose(got, [[0.6, 0.8, 0], [0.6, 0.8, 0], both / np.linalg.norm(both)], rtol=1e-6, atol=1e-7)
    one_doc = feedback_centroids(texts, X_ref, Y_ref, docs=1, terms=0).toarray()
    np.testing.assert_allclose(one_doc[2], [1, 0, 0], atol=1e-7)  # only the best document
    cut = feedback_centroids(texts, X_ref, Y_ref, docs=2, terms=1).toarray()
    np.testing.assert_allclose(cut, [[0, 1, 0], [0, 1, 0], [1, 0, 0]], atol=1e-7)  # each row's heaviest term
    for empty in (feedback_centroids(texts, X_ref, Y_ref, docs=0, terms=0),  # no feedback asked
                  feedback_centroids(texts, X_ref[:0], Y_ref[:0], docs=2, terms=0)):  # no reference document
        assert empty.shape == (3, 3) and empty.dtype == np.float32 and empty.nnz == 0
    # one reference document, and more terms than labels: shapes are read from the right axes
    wide = sp.csr_matrix(np.hstack([texts.toarray(), np.zeros((3, 2), np.float32)]))
    single = feedback_centroids(wide, sp.csr_matrix(np.array([[0.6, 0.8, 0, 0, 0]], np.float32)), Y_ref[1:2], docs=2,
                                terms=0)
    np.testing.assert_allclose(single.toarray(), [[0.6, 0.8, 0, 0, 0]] * 3, atol=1e-7)
    assert feedback_centroids(wide, sp.csr_matrix((0, 5), dtype=np.float32), Y_ref[:0], 2, 0).shape == (3, 5)


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_the_logistic_fit_is_scikit_learns_solution(C):
    from sklearn.linear_model import LogisticRegression

    from xmc.models.label_ranker import fit_logistic

    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 4))
    y = (X @ np.array([2.0, -1.0, 0.0, 0.5]) + 0.7 + rng.logistic(size=600)) > 0
    coef, intercept = fit_logistic(X, y, C=C, tol=1e-10)
    reference = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(coef, reference.coef_.ravel(), atol=1e-4)
    assert intercept == pytest.approx(reference.intercept_[0], abs=1e-4)
    assert abs(coef[2]) < 0.2 and coef[0] > 1.0 and intercept > 0.3  # it learnt the signs, not just zeros


def test_hubness_is_the_mean_of_each_labels_best_document_cosines():
    from xmc.models import label_ranker

    rng = np.random.default_rng(0)
    sims = rng.random((120, 6)).astype(np.float32)
    sims[:, 2] = 0.9  # a text that matches every document alike: the most hub-like
    got = label_ranker.hubness(sims)
    top = label_ranker.HUB_TOP
    expected = np.sort(sims, axis=0)[-top:].mean(0)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.argmax() == 2
    np.testing.assert_allclose(label_ranker.hubness(sims[:3]), sims[:3].mean(0), rtol=1e-6)  # fewer docs than top


def test_the_ranker_models_probability_is_the_logistic_of_standardised_features():
    model = RankerModel(np.array([10]), np.array([[2.0, -1.0]]), np.array([0.5]), np.array([[1.0, 3.0]]),
                        np.array([[2.0, 4.0]]))
    features = np.array([[5.0, 3.0], [1.0, 11.0]], np.float32)
    # standardised: (2, 0) and (0, 2); z = 2*2 + 0.5 = 4.5 and -1*2 + 0.5 = -1.5
    got = model.probability(0, features)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-np.array([4.5, -1.5]))), rtol=1e-6)


def test_the_ranker_keeps_float32_whatever_the_dtypes_it_is_given():
    """Double-precision TF-IDF rows and integer label counts: the ranker's arrays stay float32 (half
    the memory of its centroids and feedback rows) and count a label twice on a document as once."""
    train_texts, Y, label_texts, _, n_known = _topic_task(6)
    config = LabelTextConfig(tfidf=TfidfConfig(min_df=1, ngram_max=1), top_k=6, neighbours=3)
    scorer = LabelTextScorer(config)
    scorer.fit(train_texts, label_texts, None)  # the TF-IDF only
    X = sp.csr_matrix(scorer.featurizer.transform(train_texts), dtype=np.float64)
    counts = sp.csr_matrix(Y * 2, dtype=np.int64)
    fit = dict(top_k=6, neighbours=3, ranker_docs=60, centroid_terms=0, feedback_docs=2)
    ranker = LabelTextRanker.fit(X, counts, scorer.label_tfidf, scorer.name_tfidf, [6], **fit)
    assert ranker.centroids.dtype == ranker.feedback.dtype == np.float32
    plain = LabelTextRanker.fit(X.astype(np.float32), Y, scorer.label_tfidf, scorer.name_tfidf, [6], **fit)
    np.testing.assert_allclose(ranker.centroids.toarray(), plain.centroids.toarray(), rtol=1e-6)
    np.testing.assert_allclose(ranker.model.coef, plain.model.coef, rtol=1e-5, atol=1e-6)


def test_the_ranker_trains_one_model_per_pool_size_on_held_documents_that_have_labels(monkeypatch):
    from xmc.models import label_ranker

    train_texts, Y, label_texts, _, n_known = _topic_task()
    Y = sp.vstack([Y, sp.csr_matrix((40, Y.shape[1]), dtype=np.float32)]).tocsr()  # 40 documents without labels
    train_texts = train_texts + ["the act of"] * 40
    config = LabelTextConfig(tfidf=TfidfConfig(min_df=1, ngram_max=1), top_k=6, neighbours=3)
    scorer = LabelTextScorer(config)
    scorer.fit(train_texts, label_texts, None)  # the TF-IDF only
    X = scorer.featurizer.transform(train_texts)
    seen_pools = []

    def pools(Y_held, size, rng):
        seen_pools.append((np.diff(Y_held.indptr).min(), Y_held.shape[0], size))
        return real_pools(Y_held, size, rng)

    def logistic(features, target):
        spread = features.std(0)
        fitted.append((np.abs(features.mean(0)).max(), np.abs(spread[spread > 1e-6] - 1).max(), target.mean()))
        return real_logistic(features, target)

    def centroids(Y_, held, X_, terms):
        seen_held.append(held)
        return real_centroids(Y_, held, X_, terms)

    def feedback(texts, X_ref, Y_ref, docs, terms):
        references.append((X_ref, Y_ref))
        return real_feedback(texts, X_ref, Y_ref, docs, terms)

    real_pools, real_logistic, fitted = label_ranker._pools, label_ranker.fit_logistic, []
    real_centroids, real_feedback = label_ranker._centroids, label_ranker.feedback_centroids
    seen_held, references = [], []
    monkeypatch.setattr(label_ranker, "_pools", pools)
    monkeypatch.setattr(label_ranker, "fit_logistic", logistic)
    monkeypatch.setattr(label_ranker, "_centroids", centroids)
    monkeypatch.setattr(label_ranker, "feedback_centroids", feedback)
    ranker = label_ranker.LabelTextRanker.fit(X, Y, scorer.label_tfidf, scorer.name_tfidf, [0, 1, 6, 6], top_k=6,
                                              neighbours=3, ranker_docs=10_000, centroid_terms=2, feedback_docs=2)
    assert ranker.model.pool_sizes.tolist() == [1, 6]  # no model for an empty group, one for each other size
    n_with_labels = int((np.diff(Y.indptr) > 0).sum())
    assert [p[0] > 0 for p in seen_pools] == [True, True]  # every held document has a label to hide
    assert {p[1] for p in seen_pools} == {n_with_labels // 2}  # at most half of them are held out
    assert np.diff(ranker.centroids.indptr).max() == 2  # centroid_terms cuts the centroids
    # the feedback documents are every document not held out (fewer than FEEDBACK_POOL), each once
    rest = np.setdiff1d(np.arange(X.shape[0]), seen_held[0])
    (X_ref, Y_ref), = references
    assert (X_ref != X[rest]).nnz == 0 and (Y_ref != Y[rest]).nnz == 0
    # each model learns from standardised features which candidate is the hidden label (one per document)
    assert [(m < 1e-4, s < 1e-3) for m, s, _ in fitted] == [(True, True)] * 2
    assert [share for *_, share in fitted] == pytest.approx([1 / 6] * 2)  # one hidden label in a document's 6 rows
