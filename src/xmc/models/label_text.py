"""Labels known by their text: a document scored against each label's text, blended with a model's
own scores, so that labels with no training document (zero-shot) can be predicted and labels with
few can be helped.

- :class:`LabelTextScorer`: the cosine of a document and a label's text in TF-IDF (fitted on the
  training texts and the label texts together), optionally averaged with the cosine of their
  sentence-encoder embeddings (``encoder``: the packaged all-MiniLM-L6-v2 or a folder). When it is
  fitted with the training labels (``trained``, the default), each document's ``top_k`` candidates
  by that cosine are re-ranked by a :class:`xmc.models.label_ranker.LabelTextRanker` trained on the
  known labels as if they were unseen.
- :class:`LabelTextBlend`: the pipeline's part. Its label columns are the model's (known labels)
  followed by the labels known only by their text. A known label with at most ``few_shot_max``
  training documents scores ``model + w_few x cosine``; a label without documents scores
  ``w_zero x cosine``, and at least ``ZERO_SHOT_FLOOR x cosine``: when dev says zero-shot labels
  should not compete with known ones (``w_zero`` 0), they still rank below them, in their text's
  order, so that the zero-shot group keeps its own ranking; other labels keep the model's score.
  The two weights are chosen on the held-out split (dev), on the few-shot labels for ``w_few``
  (few-shot RP@5, as long as P@5 and frequent-label RP@5 lose no more than 0.3 and 0.5) and on
  every label's ranking for ``w_zero`` (nDCG@5 over all labels, known and not, within the same
  limits): never on test.

TF-IDF only needs NumPy and SciPy; the encoder part imports torch when it is asked for.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmc._config import Config, Interval, option
from xmc.data.label_texts import SEPARATOR
from xmc.exceptions import ModelFormatError
from xmc.features.tfidf import TfidfConfig, TfidfFeaturizer
from xmc.models.label_ranker import ARRAY_SPEC, LabelTextRanker
from xmc.utils.io import load_arrays, save_arrays, write_json
from xmc.utils.sparse import l2_normalize_rows, topk_per_row

FEW_SHOT_GRID = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
ZERO_SHOT_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
ZERO_SHOT_FLOOR = 1e-6  # a zero-shot label's least weight: below the known labels' scores, never dropped


@dataclass(frozen=True, kw_only=True)
class LabelTextConfig(Config):
    tfidf: TfidfConfig = field(default_factory=TfidfConfig)
    encoder: str = option("", "sentence encoder whose cosine is averaged with TF-IDF's ('' = TF-IDF only; "
                              "minilm-l6 = the packaged all-MiniLM-L6-v2, or a model folder)")
    encoder_weight: float = option(0.5, "share of the encoder's cosine in the label-text score",
                                   Interval(float, 0, 1))
    max_seq_len: int = option(128, "tokens of a document the encoder reads", Interval(int, 8, 4096))
    top_k: int = option(50, "label-text candidates kept per document (and re-ranked by the trained ranker)",
                        Interval(int, 1, None))
    trained: bool = option(True, "re-rank the candidates with a ranker trained on the labels that have training "
                                 "documents (xmc.models.label_ranker; TF-IDF only: not with an encoder)")
    neighbours: int = option(30, "known labels of nearest text whose documents a label's transfer score reads",
                             Interval(int, 1, None))
    ranker_docs: int = option(3000, "training documents held out of the centroids to train the ranker on",
                              Interval(int, 10, None))
    feedback_docs: int = option(20, "training documents a label's text matches best whose mean the ranker compares "
                                    "documents with (pseudo-relevance feedback; 0 = none)", Interval(int, 0, None))
    centroid_terms: int = option(1000, "terms kept per known label's centroid (0 = all; fewer is faster, coarser)",
                                 Interval(int, 0, None))
    few_shot_max: int = option(50, "known labels with at most this many training documents get text help "
                                   "(the EURLEX57K papers' few-shot group)", Interval(int, 0, None))


class LabelTextScorer:
    """cos(document, label text) for a fixed list of label texts."""

    def __init__(self, config: LabelTextConfig | None = None):
        self.config = config or LabelTextConfig()
        self.featurizer: TfidfFeaturizer | None = None
        self.label_tfidf: sp.csr_matrix | None = None  # (n_labels, n_features), rows L2-normalised
        self.label_emb: np.ndarray | None = None  # (n_labels, dim), rows L2-normalised
        self.name_tfidf: sp.csr_matrix | None = None  # (n_labels, n_features): each text's first part
        self.ranker: LabelTextRanker | None = None
        self.ranker_seconds = 0.0  # training the ranker took (not saved)

    def fit(self, train_texts: list[str], label_texts: list[str], Y: sp.csr_matrix | None = None,
            pool_sizes: list[int] = (), shared: tuple[TfidfFeaturizer, sp.csr_matrix] | None = None
            ) -> LabelTextScorer:
        """``label_texts[j]`` is label j's text ('' for a label without one: it never scores). With
        ``Y`` (the training documents' labels: the first ``Y.shape[1]`` labels) and ``trained``, a
        ranker is trained for groups of each of ``pool_sizes`` candidates.

        The TF-IDF is fitted on ``train_texts`` followed by the non-empty label texts, unless
        ``shared`` gives that featuriser already (the model's own, fitted so by ``xmc train``) and
        its rows of ``train_texts``; one with other settings than ``config.tfidf`` is not used."""
        if shared is not None and shared[0].config == self.config.tfidf:
            self.featurizer, train_rows = shared
        else:
            self.featurizer = TfidfFeaturizer(self.config.tfidf)
            corpus = self.featurizer.fit_transform(list(train_texts) + [t for t in label_texts if t])
            train_rows = corpus[:len(train_texts)]
        self.label_tfidf = l2_normalize_rows(self.featurizer.transform(label_texts))
        self.name_tfidf = l2_normalize_rows(self.featurizer.transform([t.split(SEPARATOR)[0] for t in label_texts]))
        if self.config.encoder:
            self.label_emb = self._embed(label_texts)
            self.label_emb[[not t for t in label_texts]] = 0.0
        if self.config.trained and not self.config.encoder and Y is not None and Y.shape[1] and any(pool_sizes):
            c = self.config
            X = train_rows  # the featuriser's rows are unit-length already
            start = time.perf_counter()
            self.ranker = LabelTextRanker.fit(X, Y, self.label_tfidf, self.name_tfidf, list(pool_sizes), top_k=c.top_k,
                                              neighbours=c.neighbours, ranker_docs=c.ranker_docs,
                                              centroid_terms=c.centroid_terms, feedback_docs=c.feedback_docs)
            self.ranker_seconds = time.perf_counter() - start
        return self

    @property
    def n_labels(self) -> int:
        return self.label_tfidf.shape[0]

    def score(self, texts: list[str], groups: list[np.ndarray] | None = None) -> sp.csr_matrix:
        """``(n_docs, n_labels)`` CSR of each document's ``top_k`` label-text scores within each of
        ``groups`` (column index arrays; default: one group of every label)."""
        X = l2_normalize_rows(self.featurizer.transform(texts))
        emb = self._embed(texts) if self.label_emb is not None else None
        w = self.config.encoder_weight
        groups = groups if groups is not None else [np.arange(self.n_labels)]
        ranked = (self.ranker.score(X, self.label_tfidf, self.name_tfidf, groups, self.config.top_k)
                  if self.ranker is not None else None)
        parts = []
        for g, cols in enumerate(groups):
            if ranked is not None:
                top = ranked[g]
            else:
                S = (X @ self.label_tfidf[cols].T).toarray()
                if emb is not None:
                    S = (1 - w) * S + w * np.clip(emb @ self.label_emb[cols].T, 0.0, None)
                top = topk_per_row(sp.csr_matrix(S.astype(np.float32)), self.config.top_k)
            parts.append(sp.csr_matrix((top.data, cols[top.indices], top.indptr), shape=(len(texts), self.n_labels)))
        return sp.csr_matrix(sum(parts[1:], parts[0]))

    def _embed(self, texts: list[str]) -> np.ndarray:
        from xmc.nn.sentence import sentence_embeddings

        emb = sentence_embeddings(texts, self.config.encoder, self.config.max_seq_len)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        return (emb / np.maximum(norms, 1e-12)).astype(np.float32)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.featurizer.save(folder / "tfidf")
        arrays = {"data": self.label_tfidf.data, "indices": self.label_tfidf.indices,
                  "indptr": self.label_tfidf.indptr, "shape": np.array(self.label_tfidf.shape)}
        if self.label_emb is not None:
            arrays["emb"] = self.label_emb
        names = self.name_tfidf
        arrays.update(name_data=names.data, name_indices=names.indices, name_indptr=names.indptr)
        save_arrays(folder / "labels.npz", **arrays)
        if self.ranker is not None:
            save_arrays(folder / "ranker.npz", **self.ranker.arrays())
        write_json(folder / "config.json", self.config.to_dict())

    @classmethod
    def load(cls, folder: Path, n_labels: int) -> LabelTextScorer:
        try:
            config = LabelTextConfig.from_dict(json.loads((folder / "config.json").read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise ModelFormatError(f"{folder / 'config.json'}: {exc}") from None
        scorer = cls(config)
        scorer.featurizer = TfidfFeaturizer.load(folder / "tfidf")
        spec = {"data": ("f", (None,)), "indices": ("iu", (None,)), "indptr": ("iu", (n_labels + 1,)),
                "shape": ("iu", (2,))}
        if config.encoder:
            spec["emb"] = ("f", (n_labels, None))
        a = load_arrays(folder / "labels.npz", spec)
        shape = (n_labels, scorer.featurizer.n_features_)
        if tuple(a["shape"]) != shape or (a["indices"].size and a["indices"].max() >= shape[1]):
            raise ModelFormatError(f"{folder / 'labels.npz'}: label texts of shape {tuple(a['shape'])}, "
                                   f"expected {shape}")
        scorer.label_tfidf = sp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=shape)
        scorer.name_tfidf = scorer.label_tfidf  # a folder saved before names were kept: the whole text
        if "name_indptr" in a:
            indices = a["name_indices"]
            if a["name_indptr"].size != n_labels + 1 or (indices.size and indices.max() >= shape[1]):
                raise ModelFormatError(f"{folder / 'labels.npz'}: label names do not fit {shape}")
            scorer.name_tfidf = sp.csr_matrix((a["name_data"], a["name_indices"], a["name_indptr"]), shape=shape)
        scorer.label_emb = a.get("emb")
        if (folder / "ranker.npz").exists():
            scorer.ranker = LabelTextRanker.from_arrays(load_arrays(folder / "ranker.npz", ARRAY_SPEC), n_labels,
                                                        shape[1])
        return scorer


@dataclass
class LabelTextBlend:
    """The model's scores over its ``n_known`` labels, extended to ``scorer.n_labels`` columns."""

    scorer: LabelTextScorer
    n_known: int
    label_freq: np.ndarray  # training documents of each of the scorer's labels (0 past n_known)
    w_few: float = 0.0
    w_zero: float = 0.0
    fit_seconds: dict[str, float] = field(default_factory=dict)  # scorer and weight fitting (not saved)

    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks over the columns: few-shot known labels, and labels without documents."""
        few = (self.label_freq >= 1) & (self.label_freq <= self.scorer.config.few_shot_max)
        return few, self.label_freq == 0

    def text_scores(self, texts: list[str]) -> sp.csr_matrix:
        """Label-text scores of the few-shot and of the zero-shot labels (``top_k`` of each)."""
        few, zero = self.groups()
        return self.scorer.score(texts, [np.flatnonzero(few), np.flatnonzero(zero)])

    def predict(self, texts: list[str], model_scores: sp.csr_matrix, top_k: int) -> sp.csr_matrix:
        """Each document's ``top_k`` blended labels, and besides them its ``top_k`` best labels among
        those without training documents (stored below or among the others by their blended score):
        the zero-shot group is then evaluated on its own ranking, as the EURLEX57K papers do."""
        blended = self.apply(texts, model_scores)
        _, zero = self.groups()
        only_zero = sp.csr_matrix(blended.multiply(zero[None, :].astype(np.float32)))
        union = topk_per_row(blended, top_k).maximum(topk_per_row(only_zero, top_k))
        return sp.csr_matrix(union)

    def apply(self, texts: list[str], model_scores: sp.csr_matrix, text_scores: sp.csr_matrix | None = None,
              w_few: float | None = None, w_zero: float | None = None) -> sp.csr_matrix:
        """``model_scores`` ``(n, n_known)`` blended with the label-text scores into ``(n, n_labels)``."""
        w_few = self.w_few if w_few is None else w_few
        w_zero = self.w_zero if w_zero is None else w_zero
        text = self.text_scores(texts) if text_scores is None else text_scores
        few, zero = self.groups()
        weight = np.where(few, w_few, np.where(zero, max(w_zero, ZERO_SHOT_FLOOR), 0.0)).astype(np.float32)
        text = sp.csr_matrix(text.multiply(weight[None, :]))
        model = sp.csr_matrix(model_scores, dtype=np.float32)
        model = sp.csr_matrix((model.data, model.indices, model.indptr), shape=(model.shape[0], self.scorer.n_labels))
        out = (model + text).tocsr()
        out.eliminate_zeros()
        return out

    def fit_weights(self, texts: list[str], model_scores: sp.csr_matrix, truth: sp.csr_matrix, k: int = 5) -> dict:
        """Choose ``w_few`` and ``w_zero`` on a held-out split (see the module docstring)."""
        from xmc.metrics.groups import rank_metrics, restrict
        from xmc.metrics.ranking import ndcg_at_k, precision_at_k

        text = self.text_scores(texts)
        few, _ = self.groups()
        frequent = self.label_freq > self.scorer.config.few_shot_max
        cols_few, cols_freq = np.flatnonzero(few), np.flatnonzero(frequent)

        def measure(w_few, w_zero):
            blended = topk_per_row(self.apply(texts, model_scores, text, w_few, w_zero), max(k, 10))
            return (precision_at_k(truth, blended, k),
                    rank_metrics(restrict(truth, cols_few), restrict(blended, cols_few), (k,))[f"RP@{k}"],
                    rank_metrics(restrict(truth, cols_freq), restrict(blended, cols_freq), (k,))[f"RP@{k}"])

        base = measure(0.0, 0.0)
        best_few, best = 0.0, base[1]
        for w in FEW_SHOT_GRID[1:]:
            p, rp_few, rp_freq = measure(w, 0.0)
            if rp_few > best and 100 * p >= 100 * base[0] - 0.3 and rp_freq >= base[2] - 0.5:
                best_few, best = w, rp_few
        def ndcg(w_zero):  # rank-sensitive: a zero-shot label should come first when its text fits best
            return ndcg_at_k(truth, topk_per_row(self.apply(texts, model_scores, text, best_few, w_zero), k), k)

        best_zero, best_g = 0.0, ndcg(0.0)
        for w in ZERO_SHOT_GRID[1:]:
            g = ndcg(w)
            p, _, rp_freq = measure(best_few, w)
            if g > best_g and 100 * p >= 100 * base[0] - 0.3 and rp_freq >= base[2] - 0.5:
                best_zero, best_g = w, g
        self.w_few, self.w_zero = best_few, best_zero
        return {"w_few": best_few, "w_zero": best_zero, "few_RP@5_before": base[1], "few_RP@5_after": best}


def label_text_list(labels: list[str], texts: dict[str, str]) -> list[str]:
    return [texts.get(label, "") for label in labels]


def save_blend(folder: Path, blend: LabelTextBlend) -> None:
    blend.scorer.save(folder)
    write_json(folder / "blend.json", {"n_known": blend.n_known, "w_few": blend.w_few, "w_zero": blend.w_zero})


def load_blend(folder: str | os.PathLike, label_freq: np.ndarray, n_known: int) -> LabelTextBlend:
    folder = Path(folder)
    try:
        info = json.loads((folder / "blend.json").read_text())
        w_few, w_zero, saved_known = float(info["w_few"]), float(info["w_zero"]), int(info["n_known"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFormatError(f"{folder / 'blend.json'}: {exc}") from None
    if saved_known != n_known:
        raise ModelFormatError(f"{folder / 'blend.json'}: blends {saved_known} known labels, the model has {n_known}")
    return LabelTextBlend(LabelTextScorer.load(folder, label_freq.size), n_known, label_freq, w_few, w_zero)
