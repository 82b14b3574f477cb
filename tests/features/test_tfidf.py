from __future__ import annotations

import numpy as np
import pytest

from xmc.features import TfidfConfig, TfidfFeaturizer

TEXTS = ["the cat sat on the mat", "the dog sat on the log", "cats and dogs", "a mat for a cat"]


def test_rows_are_float32_csr_l2_normalised():
    X = TfidfFeaturizer(TfidfConfig(min_df=1)).fit_transform(TEXTS)
    assert X.dtype == np.float32 and X.format == "csr"
    assert np.allclose(np.sqrt(X.multiply(X).sum(axis=1)).A.ravel(), 1.0, atol=1e-6)


def test_bigrams_and_min_df():
    f = TfidfFeaturizer(TfidfConfig(min_df=2, ngram_max=2)).fit(TEXTS)
    vocab = f.vectorizer_.vocabulary_
    assert "sat on" in vocab and "on the" in vocab  # bigrams in two documents
    assert "dogs" not in vocab  # only one document


def test_save_load_gives_identical_output(tmp_path):
    f = TfidfFeaturizer(TfidfConfig(min_df=1)).fit(TEXTS)
    f.save(tmp_path / "tfidf")
    assert not list(tmp_path.glob("**/*.pkl"))
    g = TfidfFeaturizer.load(tmp_path / "tfidf")
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
