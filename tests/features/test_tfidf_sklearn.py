"""The parallel featuriser against scikit-learn's ``TfidfVectorizer``, the reference it replaces:
same terms in the same columns, rows equal to 1e-6, on real EURLEX57K texts and on generated ones."""

from __future__ import annotations

import gzip
import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from xmc.features import TfidfConfig, TfidfFeaturizer
from xmc.features import tfidf as tfidf_module


def _reference(config: TfidfConfig) -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, config.ngram_max), min_df=config.min_df, max_df=config.max_df,
                           max_features=config.max_features, sublinear_tf=config.sublinear_tf,
                           lowercase=config.lowercase, dtype=np.float32)


def assert_same_as_sklearn(fit_texts, config: TfidfConfig, other_texts=None):
    ours = TfidfFeaturizer(config)
    X = ours.fit_transform(fit_texts)
    ref = _reference(config)
    R = ref.fit_transform(fit_texts)
    assert ours.terms_ == ref.get_feature_names_out().tolist()
    np.testing.assert_allclose(ours.idf_, ref.idf_, rtol=1e-6)
    _assert_rows_equal(X, R)
    for texts in (fit_texts, other_texts or []):
        if texts:
            _assert_rows_equal(ours.transform(texts), ref.transform(texts))
    assert ours.transform([]).shape == (0, len(ours.terms_))
    return ours


def _assert_rows_equal(X, R):
    assert X.shape == R.shape and X.dtype == np.float32 and X.has_sorted_indices
    R = sp.csr_matrix(R)
    R.sort_indices()
    np.testing.assert_array_equal(X.indptr, R.indptr)
    np.testing.assert_array_equal(X.indices, R.indices)
    np.testing.assert_allclose(X.data, R.data, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def eurlex_texts(shared_data):
    with gzip.open(shared_data / "EURLEX57K" / "train_texts.txt.gz", "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in itertools.islice(f, 1200)]


@pytest.mark.parametrize("config", [
    TfidfConfig(),
    # a vocabulary cut at max_features: the tie order among equal totals is scikit-learn's
    TfidfConfig(min_df=1, max_features=3000, ngram_max=3, sublinear_tf=False),
    TfidfConfig(min_df=3, max_df=0.5, lowercase=False),
], ids=["defaults", "max-features-ties", "max-df-case"])
def test_real_eurlex_texts_match_scikit_learn(eurlex_texts, config, monkeypatch):
    monkeypatch.setattr(tfidf_module, "CHUNK_CODES", 200_000)  # several chunks, several tables grown
    assert_same_as_sklearn(eurlex_texts[:1000], config, eurlex_texts[1000:])


UNICODE_TEXTS = [
    "İstanbul ΑΣ ὈΔΥΣΣΕΎΣ café cafe\u0301 naïve Straße STRASSE ǅemal ﬁne",  # lower() longer, final sigma
    "x_y __init__ a_b 12 3.14 ½½ ²² Ⅻ Ⅻ ٣٣ ๓๓ 一二 三四 五六 一二",  # numerals of every kind, CJK
    "emoji 😀😀 tag #hashtag @user e-mail foo@bar.com http://x.org/a?b=c",
    "\u0301\u0301 combining marks alone e\u0301e\u0301 \u200d\u200d zero width",
    "tabs\tand\nnewlines\r\nand\x00nul \ud800 lone surrogate",
    "", "   ", "a", "word", "!!", "ab",
    "long " * 3000 + "tail",
    "Ärger ärger ÄRGER Öl öl ÓL",
]


@pytest.mark.parametrize("config", [TfidfConfig(min_df=1), TfidfConfig(min_df=1, ngram_max=3, lowercase=False),
                                    TfidfConfig(min_df=1, max_features=7, max_df=0.5)])
def test_unicode_accents_empty_one_word_and_long_texts(config):
    assert_same_as_sklearn(UNICODE_TEXTS, config, ["ΑΣ café", "", "x", "ǆemal İİ", "long long long"])


def test_generated_texts_match_scikit_learn():
    rng = np.random.default_rng(0)
    alphabet = list("abcdeé ÅΣσς_1½ \u0301\t.,-İ一") + ["  "]
    texts = ["".join(rng.choice(alphabet, size=rng.integers(0, 60))) for _ in range(300)]
    assert_same_as_sklearn(texts, TfidfConfig(min_df=1, ngram_max=2))
    assert_same_as_sklearn(texts, TfidfConfig(min_df=2, ngram_max=3, max_features=40, sublinear_tf=False))


def test_a_folder_saved_by_the_scikit_learn_featuriser_gives_the_same_rows(tmp_path, eurlex_texts):
    """Model folders written before the parallel featuriser (terms of scikit-learn's vocabulary, its
    idf as float64) load and give scikit-learn's rows."""
    import json

    ref = _reference(TfidfConfig()).fit(eurlex_texts[:500])
    folder = tmp_path / "tfidf"
    folder.mkdir()
    (folder / "terms.txt").write_text("".join(t + "\n" for t in ref.get_feature_names_out()), encoding="utf-8")
    np.savez(folder / "idf.npz", idf=ref.idf_.astype(np.float64))
    (folder / "tfidf.json").write_text(json.dumps({"config": TfidfConfig().to_dict(), "n_features": len(ref.idf_)}))
    loaded = TfidfFeaturizer.load(folder)
    _assert_rows_equal(loaded.transform(eurlex_texts[500:800]), ref.transform(eurlex_texts[500:800]))


def test_one_text_and_many_texts_take_the_serial_and_parallel_kernels_to_the_same_rows(eurlex_texts):
    f = TfidfFeaturizer().fit(eurlex_texts[:300])
    many = f.transform(eurlex_texts[300:500])
    for i in (0, 57, 199):
        one = f.transform([eurlex_texts[300 + i]])
        _assert_rows_equal(one, many[i])


def test_word_characters_are_those_of_python_re():
    import re

    table = tfidf_module.word_char_table()
    sample = [0x5F, 0x41, 0x30, 0xB2, 0xBD, 0x2160, 0x301, 0x200D, 0x4E00, 0x1F600, 0x10FFFF, 0xD800]
    for c in sample + list(range(0, 0x3000, 7)):
        assert table[c] == bool(re.fullmatch(r"\w", chr(c))), hex(c)
