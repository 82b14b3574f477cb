"""TF-IDF on scikit-learn, saved without pickle (terms + idf + config JSON)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from xmc._config import Config, Interval, option
from xmc.exceptions import InvalidConfigError, InvalidInputError, ModelFormatError
from xmc.utils.io import load_arrays, read_json, read_model_text, save_arrays, write_json, write_text
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
        try:
            X = vec.fit_transform(texts)
        except ValueError as exc:  # scikit-learn's "empty vocabulary" or "max_df < min_df": the texts' fault
            raise InvalidInputError(f"no TF-IDF features from these {len(texts)} texts with min_df="
                                    f"{self.config.min_df}, max_df={self.config.max_df} ({exc})") from None
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
        write_text(folder / "terms.txt", "".join(t + "\n" for t in terms))
        save_arrays(folder / "idf.npz", idf=self.vectorizer_.idf_.astype(np.float64))
        write_json(folder / "tfidf.json", {"config": self.config.to_dict(), "n_features": len(terms)})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> TfidfFeaturizer:
        folder = Path(folder)
        meta = read_json(folder / "tfidf.json")
        where = folder / "tfidf.json"
        if not isinstance(meta, dict):
            raise ModelFormatError(f"{where} must hold a JSON object")
        n_features = meta.get("n_features")
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ModelFormatError(f"{where}: 'n_features' must be a positive int, got {n_features!r}")
        try:
            config = TfidfConfig.from_dict(meta.get("config"))
        except InvalidConfigError as exc:
            raise ModelFormatError(f"{where}: invalid config: {exc}") from None
        terms = _read_terms(folder / "terms.txt")
        idf = load_arrays(folder / "idf.npz", {"idf": ("f", (n_features,))})["idf"]
        if len(terms) != n_features or len(set(terms)) != n_features:
            raise ModelFormatError(f"{folder / 'terms.txt'}: {len(terms)} lines ({len(set(terms))} distinct), "
                                   f"tfidf.json says {n_features} terms")
        if np.any(idf < 1.0):  # smoothed idf is 1 + log(...) >= 1
            raise ModelFormatError(f"{folder / 'idf.npz'}: idf values below 1 cannot come from TF-IDF")
        self = cls(config)
        vec = self._vectorizer(vocabulary={t: j for j, t in enumerate(terms)})
        vec.idf_ = idf
        self.vectorizer_ = vec
        return self


def _read_terms(path: Path) -> list[str]:
    text = read_model_text(path)
    if text and not text.endswith("\n"):
        raise ModelFormatError(f"{path} is truncated (its last line has no line end)")
    return text.split("\n")[:-1]
