from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.features import TfidfConfig, TfidfFeaturizer

TEXTS = ["the cat sat on the mat", "the dog sat on the log", "cats and dogs", "a mat for a cat"]


def test_rows_are_float32_csr_l2_normalised():
    X = TfidfFeaturizer(TfidfConfig(min_df=1)).fit_transform(TEXTS)
    assert X.dtype == np.float32 and X.format == "csr"
    assert np.allclose(np.sqrt(X.multiply(X).sum(axis=1)).A.ravel(), 1.0, atol=1e-6)


def test_bigrams_and_min_df():
    f = TfidfFeaturizer(TfidfConfig(min_df=2, ngram_max=2)).fit(TEXTS)
    vocab = f.vocabulary_
    assert "sat on" in vocab and "on the" in vocab  # bigrams in two documents
    assert "dogs" not in vocab  # only one document


def test_save_load_gives_identical_output(tmp_path):
    f = TfidfFeaturizer(TfidfConfig(min_df=1)).fit(TEXTS)
    f.save(tmp_path / "nested" / "tfidf")  # parents made
    f.save(tmp_path / "nested" / "tfidf")  # and saved again over itself
    assert not list(tmp_path.glob("**/*.pkl"))
    g = TfidfFeaturizer.load(tmp_path / "nested" / "tfidf")
    new = ["the cat and the dog", "unknown words only"]
    a, b = f.transform(new), g.transform(new)
    assert (a != b).nnz == 0 and a.shape == b.shape
    assert g.config == f.config


@pytest.mark.parametrize("sublinear_tf", [True, False])
@pytest.mark.parametrize("ngram_max, min_df, lowercase", [(1, 1, True), (2, 2, False)])
def test_matches_scikit_learn_with_the_same_settings(sublinear_tf, ngram_max, min_df, lowercase):
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = TEXTS + ["The cat, the CAT and the cat again", "dog dog dog dog sat"]
    config = TfidfConfig(sublinear_tf=sublinear_tf, ngram_max=ngram_max, min_df=min_df, lowercase=lowercase)
    ours = TfidfFeaturizer(config).fit_transform(texts)
    ref = TfidfVectorizer(sublinear_tf=sublinear_tf, ngram_range=(1, ngram_max), min_df=min_df,
                          lowercase=lowercase, dtype=np.float64).fit(texts)
    expected = ref.transform(texts)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours.toarray(), expected.toarray(), rtol=1e-6, atol=1e-7)


def _saved(tmp_path):
    f = TfidfFeaturizer(TfidfConfig(min_df=1)).fit(TEXTS)
    f.save(tmp_path / "tfidf")
    return tmp_path / "tfidf", f


def test_saved_files_are_exact(tmp_path):
    folder, f = _saved(tmp_path)
    terms = (folder / "terms.txt").read_text().split("\n")
    assert terms[-1] == "" and len(terms) - 1 == f.n_features_
    assert all(f.vocabulary_[t] == j for j, t in enumerate(terms[:-1]))
    with np.load(folder / "idf.npz") as data:
        assert data["idf"].dtype == np.float64
    assert json.loads((folder / "tfidf.json").read_text()) == {"config": f.config.to_dict(),
                                                                "n_features": f.n_features_}


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "tfidf.json").write_text("[1]"), r"tfidf\.json must hold a JSON object"),
    (lambda d: (d / "tfidf.json").write_text('{"n_features": true, "config": {}}'), "'n_features' must be a positive"),
    (lambda d: (d / "tfidf.json").write_text('{"n_features": 0, "config": {}}'), "'n_features' must be a positive"),
    (lambda d: (d / "tfidf.json").write_text('{"n_features": 1.5, "config": {}}'), "'n_features' must be a positive"),
    (lambda d: _edit_meta(d, config={"ngram_max": 99}), r"tfidf\.json: invalid config"),
    (lambda d: _edit_meta(d, n_features=3), r"idf\.npz: array 'idf' has shape"),
    (lambda d: (d / "terms.txt").write_text("a\na\n" + "".join(f"t{i}\n" for i in range(_n(d) - 2))),
     r"terms\.txt: .* lines \(.* distinct\)"),
    (lambda d: (d / "terms.txt").write_text("a\nb"), r"terms\.txt is truncated"),
    (lambda d: (d / "terms.txt").write_bytes(b"\xff\n"), r"terms\.txt is not UTF-8"),
    (lambda d: (d / "terms.txt").unlink(), r"missing .*terms\.txt"),
    (lambda d: _scale_idf(d, 0.5), r"idf\.npz: idf values below 1"),
])
def test_a_damaged_featuriser_names_the_file(tmp_path, damage, message):
    from xmc.exceptions import ModelFormatError

    folder, _ = _saved(tmp_path)
    damage(folder)
    with pytest.raises(ModelFormatError, match=message):
        TfidfFeaturizer.load(folder)


def test_idf_of_exactly_one_is_valid(tmp_path):
    folder, f = _saved(tmp_path)
    _scale_idf(folder, 0.0, floor=1.0)
    g = TfidfFeaturizer.load(folder)
    assert np.all(g.idf_ == 1.0)


def _n(folder):
    return json.loads((folder / "tfidf.json").read_text())["n_features"]


def _edit_meta(folder, **changes):
    meta = json.loads((folder / "tfidf.json").read_text())
    meta.update(changes)
    (folder / "tfidf.json").write_text(json.dumps(meta))


def _scale_idf(folder, factor, floor=0.0):
    with np.load(folder / "idf.npz") as data:
        idf = np.maximum(data["idf"] * factor, floor)
    np.savez(folder / "idf.npz", idf=idf)


def test_transform_uses_the_fitted_vocabulary_and_float32():
    f = TfidfFeaturizer(TfidfConfig(min_df=1, max_features=3)).fit(TEXTS)
    assert f.n_features_ == 3
    X = f.transform(["cat cat mat"])
    assert X.dtype == np.float32 and X.shape == (1, 3)


def test_unfitted_and_unusable_inputs_are_clear_errors(tmp_path):
    from xmc.exceptions import InvalidInputError, NotFittedError

    with pytest.raises(NotFittedError):
        TfidfFeaturizer().transform(["a"])
    with pytest.raises(InvalidInputError, match="no TF-IDF features from these 3 texts with min_df=2"):
        TfidfFeaturizer().fit(["", "x", "!!"])


def test_a_featuriser_of_a_single_term_saves_and_loads(tmp_path):
    f = TfidfFeaturizer(TfidfConfig(min_df=1, ngram_max=1)).fit(["word", "word word"])
    assert f.n_features_ == 1
    f.save(tmp_path / "t")
    assert TfidfFeaturizer.load(tmp_path / "t").n_features_ == 1


def test_max_df_drops_terms_in_most_documents():
    vocab = TfidfFeaturizer(TfidfConfig(min_df=1, max_df=0.4)).fit(TEXTS).vocabulary_
    assert "the" not in vocab and "dog" in vocab  # 'the' is in 2 of the 4 texts, 'dog' in 1


@pytest.mark.parametrize("norm", ["l1", "l2", "none"])
def test_feature_rows_are_normalised_as_scikit_learn_does(norm):
    from sklearn.preprocessing import normalize

    from xmc.features.normalize import normalize_rows

    X = sp.random(30, 12, density=0.3, format="csr", dtype=np.float32, random_state=2)
    X.data -= 0.4  # negative entries: the l1 norm sums absolute values
    X = sp.vstack([X, sp.csr_matrix((1, 12), dtype=np.float32)]).tocsr()  # an empty row stays empty
    out = normalize_rows(X, norm)
    expected = X.toarray() if norm == "none" else normalize(X.toarray(), norm=norm)
    assert out.dtype == np.float32 and out.shape == X.shape
    np.testing.assert_allclose(out.toarray(), expected, rtol=1e-6, atol=1e-7)
