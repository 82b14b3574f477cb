"""Word n-gram TF-IDF on every core, equal to scikit-learn's ``TfidfVectorizer`` and saved without
pickle (terms + idf + config JSON).

scikit-learn's vectoriser spends most of its time in per-token Python (n-gram strings, dict look-ups)
on one core. Here the texts become one code-point array per chunk (``str.lower`` and ``encode`` run
in C), and numba kernels (:mod:`xmc.features.ngram_kernels`) find the words, key the n-grams,
count them per document and build the rows on every core. The features are scikit-learn's: the
same tokens (``(?u)\\b\\w\\w+\\b``), n-grams, ``min_df`` / ``max_df``, ``max_features`` with its tie
order, sublinear tf, smoothed idf and L2 rows; ``tests/features`` checks rows against scikit-learn
on real and generated texts. Fitting reads the texts twice: once to count document frequencies,
once to build the rows and the strings of the kept terms.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numba as nb
import numpy as np
import scipy.sparse as sp

from xmc._config import Config, Interval, option
from xmc.exceptions import InvalidConfigError, InvalidInputError, ModelFormatError
from xmc.features import ngram_kernels as K
from xmc.utils.io import load_arrays, read_json, read_model_text, save_arrays, write_json, write_text
from xmc.utils.progress import progress
from xmc.utils.sparse import SERIAL_BELOW
from xmc.utils.validation import check_is_fitted, check_texts

CHUNK_CODES = 1 << 22  # code points per chunk (16 MiB as uint32): bounds the working memory
REP_SHIFT = 44  # a term's representative: chunk << 44 | word_index * 8 + n - 1
MAX_LOAD = 0.7  # the document-frequency table grows past this load


@dataclass(frozen=True, kw_only=True)
class TfidfConfig(Config):
    ngram_max: int = option(2, "longest word n-gram (1 = unigrams only)", Interval(int, 1, 5))
    min_df: int = option(2, "drop terms seen in fewer training documents", Interval(int, 1, None))
    max_features: int = option(500_000, "keep this many most frequent terms", Interval(int, 1, None))
    sublinear_tf: bool = option(True, "use 1 + log(tf) instead of raw term counts")
    lowercase: bool = option(True, "lowercase before tokenising")
    max_df: float = option(1.0, "drop terms in more than this fraction of documents", Interval(float, 0, 1, "right"))


@lru_cache(maxsize=1)
def word_char_table() -> np.ndarray:
    """``table[c]``: is code point ``c`` a word character for Python's ``re`` (``\\w``: alphanumeric
    or ``_``)? Built from Python's own Unicode database, so tokens match ``re`` exactly."""
    table = np.fromiter(map(str.isalnum, map(chr, range(0x110000))), np.bool_, count=0x110000)
    table[ord("_")] = True
    return table


def _check_texts(texts) -> list[str]:
    return check_texts(texts, "TF-IDF")


class TfidfFeaturizer:
    """Word n-gram TF-IDF whose rows are float32 CSR, L2-normalised.

    Examples
    --------
    >>> f = TfidfFeaturizer(TfidfConfig(min_df=1)).fit(["a cat sat", "a dog sat"])
    >>> f.transform(["cat dog"]).shape[1] == f.n_features_
    True
    >>> f.terms_[:3]
    ['cat', 'cat sat', 'dog']
    """

    def __init__(self, config: TfidfConfig | None = None):
        self.config = config or TfidfConfig()
        self.terms_: list[str] | None = None
        self.idf_: np.ndarray | None = None  # float32, one per term
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None
        self._digest: str | None = None  # the feature cache's fingerprint of the fitted vocabulary

    @property
    def n_features_(self) -> int | None:
        return None if self.terms_ is None else len(self.terms_)

    @property
    def vocabulary_(self) -> dict[str, int]:
        """``term -> column``, as scikit-learn's ``vocabulary_``."""
        check_is_fitted(self, "terms_")
        return {t: j for j, t in enumerate(self.terms_)}

    def fit(self, texts: list[str]) -> TfidfFeaturizer:
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts: list[str]) -> sp.csr_matrix:
        texts = _check_texts(texts)
        counts = _DocumentFrequencies.count(texts, self.config)
        candidates = counts.candidates(self.config, len(texts))
        keys = counts.keys[candidates]
        lookup = _lookup_table(keys, "n-gram")
        rows, strings = _candidate_rows(texts, self.config, lookup, counts.reps[candidates])
        kept = _kept_terms(strings, counts.tf[candidates], self.config.max_features)
        new_ids = np.full(candidates.size, -1, np.int32)
        new_ids[kept] = np.arange(kept.size, dtype=np.int32)
        ptr, cols, tf = K.remap_rows(*rows, new_ids)
        del rows
        self._set_vocabulary([strings[i] for i in kept], _smoothed_idf(counts.df[candidates][kept], len(texts)),
                             keys[kept])
        return self._rows(ptr, cols, tf, len(texts))

    def transform(self, texts: list[str]) -> sp.csr_matrix:
        check_is_fitted(self, "terms_")
        texts = _check_texts(texts)
        return self._rows(*self.count_rows(texts), len(texts))

    def count_rows(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw ``(indptr, indices, counts)`` of ``texts`` over the vocabulary (no checks, no SciPy):
        the one-text path of prediction calls this and :meth:`values` directly."""
        serial = len(texts) < SERIAL_BELOW
        words_fn, rows_fn = (K.words_serial, K.count_rows_serial) if serial else (K.words, K.count_rows)
        parts = []
        for codes, doc_ptr in _encoded_chunks(texts, self.config.lowercase):
            word_ptr, keys, _, _ = words_fn(codes, doc_ptr, word_char_table())
            parts.append(rows_fn(word_ptr, keys, self.config.ngram_max, *self._lookup))
        return _concat_rows(parts)

    def values(self, indptr: np.ndarray, indices: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """TF-IDF values (float32, unit rows) of count rows from :meth:`count_rows`."""
        kernel = K.tfidf_values_serial if indptr.size <= SERIAL_BELOW else K.tfidf_values
        return kernel(indptr, indices, counts, self.idf_, self.config.sublinear_tf)

    def _rows(self, ptr, cols, counts, n_docs: int) -> sp.csr_matrix:
        data = self.values(ptr, cols, counts)
        X = sp.csr_matrix((data, cols, ptr.astype(np.int32) if ptr[-1] < 2**31 else ptr),
                          shape=(n_docs, self.n_features_))
        X.has_sorted_indices = True
        return X

    def _set_vocabulary(self, terms: list[str], idf: np.ndarray, keys: np.ndarray | None = None) -> None:
        if keys is None:
            codes, ptr = _encode(terms, lowercase=False)
            keys = K.term_keys(codes, ptr)
        self._lookup = _lookup_table(keys, "term", terms)
        self.terms_, self.idf_, self._digest = terms, np.asarray(idf, np.float32), None

    def _adopt(self, fitted: TfidfFeaturizer) -> None:
        """Take ``fitted``'s vocabulary (a fit of the same settings read from the feature cache)."""
        self.terms_, self.idf_, self._lookup, self._digest = fitted.terms_, fitted.idf_, fitted._lookup, None

    def save(self, folder: str | os.PathLike) -> None:
        check_is_fitted(self, "terms_")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "terms.txt", "".join(t + "\n" for t in self.terms_))
        save_arrays(folder / "idf.npz", idf=self.idf_.astype(np.float64))
        write_json(folder / "tfidf.json", {"config": self.config.to_dict(), "n_features": len(self.terms_)})

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
        try:
            self._set_vocabulary(terms, idf)
        except InvalidInputError as exc:
            raise ModelFormatError(f"{folder / 'terms.txt'}: {exc}") from None
        return self


# ---- fitting -------------------------------------------------------------------------------------

@dataclass
class _DocumentFrequencies:
    """Every distinct n-gram of the corpus: key, document frequency, total count, first occurrence."""

    keys: np.ndarray
    df: np.ndarray
    tf: np.ndarray
    reps: np.ndarray

    @classmethod
    def count(cls, texts: list[str], config: TfidfConfig) -> _DocumentFrequencies:
        n_parts = 1 << max(0, nb.get_num_threads().bit_length() - 1)  # a power of two, one region a thread
        table = _empty_table(n_parts, 1 << 16)
        filled = np.zeros(n_parts, np.int64)
        chunks = _encoded_chunks(texts, config.lowercase)
        for c, (codes, doc_ptr) in enumerate(progress(chunks, desc="TF-IDF: counting", unit="chunk")):
            word_ptr, word_keys, _, _ = K.words(codes, doc_ptr, word_char_table())
            _, keys, counts, reps = K.unique_ngrams(word_ptr, word_keys, config.ngram_max)
            need = filled + K.region_counts(keys, n_parts)  # at most this many keys after the chunk
            if need.max() > MAX_LOAD * (table[0].size // n_parts):
                table = _grown(table, n_parts, int(need.max() / MAX_LOAD))
            filled += K.count_documents(*table, n_parts, keys, np.ones(keys.size, np.int32), counts, reps,
                                        c << REP_SHIFT)
        used = table[0] != 0
        return cls(*(a[used] for a in table))

    def candidates(self, config: TfidfConfig, n_docs: int) -> np.ndarray:
        """Positions of the n-grams within ``min_df`` and ``max_df`` (scikit-learn's rules and errors)."""
        if self.keys.size == 0:
            raise InvalidInputError(f"no TF-IDF features from these {n_docs} texts with min_df={config.min_df}, "
                                    f"max_df={config.max_df}: no word of two or more letters or digits")
        max_doc_count = config.max_df * n_docs
        if max_doc_count < config.min_df:
            raise InvalidInputError(f"no TF-IDF features from these {n_docs} texts with min_df={config.min_df}, "
                                    f"max_df={config.max_df}: max_df keeps fewer documents than min_df asks")
        chosen = np.flatnonzero((self.df >= config.min_df) & (self.df <= max_doc_count))
        if chosen.size == 0:
            raise InvalidInputError(f"no TF-IDF features from these {n_docs} texts with min_df={config.min_df}, "
                                    f"max_df={config.max_df}: no term is left")
        return chosen


def _empty_table(n_parts: int, region: int) -> tuple[np.ndarray, ...]:
    size = n_parts * region
    return np.zeros(size, np.uint64), np.zeros(size, np.int32), np.zeros(size, np.int64), np.zeros(size, np.int64)


def _grown(table, n_parts: int, at_least: int) -> tuple[np.ndarray, ...]:
    region = 1 << max(16, int(at_least - 1).bit_length())
    keys, df, tf, reps = table
    used = keys != 0
    grown = _empty_table(n_parts, region)
    K.count_documents(*grown, n_parts, keys[used], df[used], tf[used], reps[used], 0)
    return grown


def _candidate_rows(texts, config, lookup, reps):
    """Count rows over the candidate n-grams (columns in candidate order) and each candidate's string."""
    strings = np.empty(reps.size, dtype=object)
    chunk_of = reps >> REP_SHIFT
    by_chunk = np.argsort(chunk_of, kind="stable")
    bounds = np.searchsorted(chunk_of[by_chunk], np.arange(chunk_of.max() + 2))
    parts = []
    for c, (codes, doc_ptr) in enumerate(progress(_encoded_chunks(texts, config.lowercase),
                                                     desc="TF-IDF: rows", unit="chunk")):
        word_ptr, keys, starts, ends = K.words(codes, doc_ptr, word_char_table())
        parts.append(K.count_rows(word_ptr, keys, config.ngram_max, *lookup))
        mine = by_chunk[bounds[c]:bounds[c + 1]] if c + 1 < bounds.size else by_chunk[:0]
        if mine.size:
            local = reps[mine] & ((1 << REP_SHIFT) - 1)
            text = K.term_codes(codes, starts, ends, local, 0).tobytes().decode("utf-32-le", "surrogatepass")
            strings[mine] = text.split("\n")[:-1]
    return _concat_rows(parts), strings


def _kept_terms(strings: np.ndarray, tf: np.ndarray, max_features: int) -> np.ndarray:
    """Candidate positions kept, in alphabetical order of their strings (the column order): the
    ``max_features`` most frequent, ties broken as scikit-learn breaks them (the same ``argsort`` of
    the same float32 totals in alphabetical order)."""
    order = np.array(sorted(range(strings.size), key=strings.__getitem__), dtype=np.int64)
    if order.size <= max_features:
        return order
    totals = tf[order].astype(np.float32)
    return order[np.sort((-totals).argsort()[:max_features])]


def _smoothed_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """``1 + log((1 + n) / (1 + df))`` in float32 arithmetic, as scikit-learn computes it for float32."""
    idf = np.full(df.size, n_docs + 1, np.float32)
    idf /= df.astype(np.float32) + np.float32(1)
    np.log(idf, out=idf)
    idf += np.float32(1)
    return idf


def _lookup_table(keys: np.ndarray, what: str, terms: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    size = 1 << max(3, int(2 * keys.size - 1).bit_length())
    table_keys, table_vals, clash = K.build_lookup(keys, np.arange(keys.size, dtype=np.int32), size)
    if clash >= 0:
        other = int(np.flatnonzero(keys[:clash] == keys[clash])[0])
        names = f" ({terms[other]!r} and {terms[clash]!r})" if terms is not None else ""
        raise InvalidInputError(f"two {what}s share a 64-bit key{names}: a duplicate or a hash collision")
    return table_keys, table_vals


# ---- text -> code points ---------------------------------------------------------------------------

def _encode(texts: list[str], lowercase: bool) -> tuple[np.ndarray, np.ndarray]:
    """One code-point array for ``texts`` and each text's offsets into it (``str.lower`` first, as
    scikit-learn does, so a character whose lower case is longer keeps its whole lower case)."""
    docs = [t.lower() for t in texts] if lowercase else texts
    ptr = np.zeros(len(docs) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, docs), np.int64, count=len(docs)), out=ptr[1:])
    codes = np.frombuffer("".join(docs).encode("utf-32-le", "surrogatepass"), np.uint32)
    return codes, ptr


def _encoded_chunks(texts: list[str], lowercase: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(codes, offsets)`` for consecutive runs of texts of about :data:`CHUNK_CODES` code points."""
    if len(texts) < SERIAL_BELOW:
        yield _encode(texts, lowercase)
        return
    ends = np.cumsum(np.fromiter(map(len, texts), np.int64, count=len(texts)))
    start = 0
    while start < len(texts):
        before = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, before + CHUNK_CODES, side="right")))
        yield _encode(texts[start:stop], lowercase)
        start = stop


def _concat_rows(parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [p[0][-1] for p in parts[:-1]])
    ptr = np.concatenate([parts[0][0][:1]] + [p[0][1:] + o for p, o in zip(parts, offsets, strict=True)])
    return ptr, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


def _read_terms(path: Path) -> list[str]:
    text = read_model_text(path)
    if text and not text.endswith("\n"):
        raise ModelFormatError(f"{path} is truncated (its last line has no line end)")
    return text.split("\n")[:-1]
