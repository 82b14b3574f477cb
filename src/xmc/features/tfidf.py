"""TF-IDF on scikit-learn, saved without pickle (terms + idf + config JSON)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from xmc._config import Config, Interval, option
from xmc.exceptions import ModelFormatError
from xmc.utils.io import load_arrays, read_json, save_arrays, write_json
from xmc.utils.sparse import as_csr_f32
from xmc.utils.validation import check_is_fitted


@dataclass(frozen=True, kw_only=True)
class TfidfConfig(Config):
    ngram_max: int = option(2, "longest word n-gram (1 = unigrams only)", Interval(int, 1, 5))
    min_df: int = option(2, "drop terms seen in fewer training documents", Interval(int, 1, None))
    max_features: int = option(500_000, "keep this many most frequent terms", Interval(int, 1, None))
    sublinear_tf: bool = option(True, "use 1 + log(tf) instead of raw term counts")
    lowercase: bool = option(True, "lowercase before tokenising")
    max_df: float = option(1.0, "drop terms in more than this fraction of documents", Interval(float, 0, 1, "right"))


class TfidfFeaturizer:
    """Word n-gram TF-IDF whose rows are float32 CSR, L2-normalised.

    Examples
    --------
    >>> f = TfidfFeaturizer(TfidfConfig(min_df=1)).fit(["a cat sat", "a dog sat"])
    >>> f.transform(["cat dog"]).shape[1] == f.n_features_
    True
    """

    def __init__(self, config: TfidfConfig | None = None):
        self.config = config or TfidfConfig()
        self.vectorizer_: TfidfVectorizer | None = None

    def _vectorizer(self, vocabulary=None) -> TfidfVectorizer:
        c = self.config
        return TfidfVectorizer(
            ngram_range=(1, c.ngram_max),
            min_df=c.min_df,
            max_df=c.max_df,
            max_features=c.max_features,
            sublinear_tf=c.sublinear_tf,
            lowercase=c.lowercase,
            dtype=np.float32,
            norm="l2",
            vocabulary=vocabulary,
        )

    @property
    def n_features_(self) -> int | None:
        return None if self.vectorizer_ is None else len(self.vectorizer_.vocabulary_)

    def fit(self, texts: list[str]) -> TfidfFeaturizer:
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts: list[str]) -> sp.csr_matrix:
        vec = self._vectorizer()
        X = vec.fit_transform(texts)
        if hasattr(vec, "stop_words_"):
            vec.stop_words_ = None  # the pruned-term set can hold millions of strings; not needed
        self.vectorizer_ = vec
        return as_csr_f32(X)

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        check_is_fitted(self, "vectorizer_")
        return as_csr_f32(self.vectorizer_.transform(texts))

    def save(self, folder: str | os.PathLike) -> None:
        check_is_fitted(self, "vectorizer_")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vocab = self.vectorizer_.vocabulary_
        terms = [""] * len(vocab)
        for term, j in vocab.items():
            terms[j] = term
        (folder / "terms.txt").write_text("".join(t + "\n" for t in terms), encoding="utf-8")
        save_arrays(folder / "idf.npz", idf=self.vectorizer_.idf_.astype(np.float64))
        write_json(folder / "tfidf.json", {"config": self.config.to_dict(), "n_features": len(terms)})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TfidfFeaturizer:
        folder = Path(folder)
        meta = read_json(folder / "tfidf.json")
        try:
            terms = (folder / "terms.txt").read_text(encoding="utf-8").split("\n")[:-1]
        except FileNotFoundError as exc:
            raise ModelFormatError(f"missing {folder / 'terms.txt'}") from exc
        idf = load_arrays(folder / "idf.npz")["idf"]
        if len(terms) != meta["n_features"] or idf.shape != (len(terms),):
            raise ModelFormatError(f"{folder}: terms ({len(terms)}) and idf {idf.shape} disagree with tfidf.json")
        self = cls(TfidfConfig.from_dict(meta["config"]))
        vec = self._vectorizer(vocabulary={t: j for j, t in enumerate(terms)})
        vec.idf_ = idf
        self.vectorizer_ = vec
        return self
