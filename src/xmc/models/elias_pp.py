"""ELIAS++: ELIAS followed by the paper's sparse ranker (nilesh2797/ELIAS, ``elias_utils.py``
``sparse_ranker``), on xmc's own XR-Linear solver and search kernels.

Each label gets a one-vs-rest linear ranker on [L2-normalised ELIAS embedding, TF-IDF], trained on
the documents of which it is a positive or one of ELIAS's top ``rerank`` (100) predictions, so its
negatives are ELIAS's own confusions (XR-Linear's ranker level with every label its own cluster and
ELIAS's predictions as the matching matrix). At prediction the ranker re-scores ELIAS's top
``rerank`` labels, and a label's score is ELIAS's times exp(-max(0, 1 - margin)^3) (PECOS's l3-hinge
post-processor, which the official code sets).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from xmc._config import Interval, option
from xmc.exceptions import ModelFormatError
from xmc.features.join import join_embedding
from xmc.features.tfidf import TfidfFeaturizer
from xmc.linear.ranker import LinearConfig, train_level
from xmc.models.base import manifest_field
from xmc.models.elias import Elias, EliasConfig
from xmc.nn.cascade import topk_to_csr
from xmc.nn.device import autocast
from xmc.nn.tokens import TokenizedTexts, length_sorted_batches
from xmc.search.beam import ChunkedLevel, score_level
from xmc.search.level_files import load_level, save_level
from xmc.utils.progress import progress
from xmc.utils.sparse import binarize, topk_per_row
from xmc.utils.validation import check_is_fitted, check_k, check_texts

POST_PROCESSOR = "l3-hinge"


@dataclass(frozen=True, kw_only=True)
class EliasPlusPlusConfig(EliasConfig):
    ranker: LinearConfig = field(default_factory=LinearConfig)
    rerank: int = option(100, "ELIAS's top labels that the ranker re-scores", Interval(int, 1, None))


class EliasPlusPlus(Elias):
    """ELIAS with a sparse ranker over its top predictions."""

    method = "elias++"
    config_class = EliasPlusPlusConfig

    def __init__(self, config: EliasPlusPlusConfig | None = None):
        super().__init__(config)
        self.tfidf_: TfidfFeaturizer | None = None
        self.ranker_: ChunkedLevel | None = None

    @classmethod
    def default_config(cls) -> EliasPlusPlusConfig:
        return EliasPlusPlusConfig.for_gpu() if torch.cuda.is_available() else EliasPlusPlusConfig.for_cpu()

    def fit(self, texts, Y, **kwargs) -> EliasPlusPlus:
        super().fit(texts, Y, **kwargs)
        t0 = time.perf_counter()
        featurizer, X = self._fit_tfidf
        emb, P = self._embed_and_predict(self._fit_tokens, self.config.rerank)
        Y = sp.csr_matrix(Y)
        features = join_embedding(X, emb)
        identity = sp.identity(Y.shape[1], dtype=np.float32, format="csr")
        W = train_level(features, binarize(Y), binarize(P + Y), identity, self.config.ranker, desc="ELIAS++ ranker")
        self.tfidf_, self.ranker_ = featurizer, ChunkedLevel.build(W, identity, self.config.ranker.bias)
        self._fit_tfidf = self._fit_tokens = None
        self.fit_seconds_["ranker"] = time.perf_counter() - t0
        return self

    def _embed_and_predict(self, tokens: TokenizedTexts, k: int, beam: int | None = None):
        """ELIAS's embedding of every text and its top ``k`` labels (one encoder pass)."""
        n, device = len(tokens), self._placed_net()
        emb = np.zeros((n, self.net_.features[0].dim), np.float32)
        k = min(k, self.n_labels_)
        indices, scores = np.full((n, k), -1, np.int64), np.zeros((n, k), np.float32)
        shortlist = (beam,) if beam else None
        for rows in progress(length_sorted_batches(tokens.lengths, self.config.predict.batch_size), desc="ELIAS",
                             unit="batch"):
            ids, mask = tokens.batch(rows)
            with torch.inference_mode(), autocast(device, self.config.train.amp):
                x = self.net_.feature(ids.to(device), mask.to(device))
                idx, val = self.net_.predict(None, None, k, shortlist, x=x)
            emb[rows] = x.float().cpu().numpy()
            indices[rows, : idx.shape[1]], scores[rows, : val.shape[1]] = idx.cpu().numpy(), val.float().cpu().numpy()
        return emb, topk_to_csr(indices, scores, self.n_labels_)

    def predict(self, texts, *, top_k: int | None = None, beam_size: int | None = None) -> sp.csr_matrix:
        """ELIAS's top ``rerank`` labels re-scored by the ranker; each row's ``top_k`` best."""
        self._check_fitted()
        texts = check_texts(texts, self.method)
        top_k = check_k(top_k, "top_k", self.config.predict.top_k)
        beam = None if beam_size is None else check_k(beam_size, "beam_size")
        emb, P = self._embed_and_predict(self._tokenize(texts), max(self.config.rerank, top_k), beam)
        X = join_embedding(self.tfidf_.transform(texts), emb)
        return topk_per_row(score_level(X, P, self.ranker_, self.n_labels_, POST_PROCESSOR), top_k)

    def _check_fitted(self) -> None:
        super()._check_fitted()
        check_is_fitted(self, "ranker_")

    def _save_arrays(self, folder: Path) -> dict[str, Any]:
        shapes = super()._save_arrays(folder)
        self.tfidf_.save(folder / "tfidf")
        save_level(folder / "ranker", self.ranker_)
        return {**shapes, "ranker_features": int(self.ranker_.n_features)}

    def _load_arrays(self, folder: Path, shapes: dict[str, Any]) -> None:
        super()._load_arrays(folder, shapes)
        n_features = manifest_field(shapes, "ranker_features", int, folder / "xmc.json", low=1)
        self.tfidf_ = TfidfFeaturizer.load(folder / "tfidf")
        if self.tfidf_.n_features_ + self.net_.features[0].dim != n_features:
            raise ModelFormatError(f"{folder / 'xmc.json'}: the ranker reads {n_features} features, but TF-IDF "
                                   f"({self.tfidf_.n_features_}) + the embedding ({self.net_.features[0].dim}) differ")
        identity = sp.identity(self.n_labels_, dtype=np.float32, format="csr")
        self.ranker_ = load_level(folder / "ranker", identity, n_features, self.config.ranker.bias)
