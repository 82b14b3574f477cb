"""A trained pipeline: featuriser (for text data) + label vocabulary + model, saved as one folder.

Layout::

    model_dir/
      xmc.json          kind "pipeline": method, configs, propensity constants, last metrics
      labels.txt        the label vocabulary, one label per line (column order of the scores)
      label_stats.npz   training label frequencies (for propensity-scored metrics)
      tfidf/            the featuriser (text datasets and feature-based methods only)
      model/            the model folder (its own xmc.json + arrays)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmc.data.vocab import LabelVocab
from xmc.exceptions import ModelFormatError, XMCError
from xmc.features.tfidf import TfidfFeaturizer
from xmc.metrics.propensity import DEFAULT_A, DEFAULT_B, inv_propensity_from_counts
from xmc.models.base import XMCModel, model_class, read_manifest, write_manifest
from xmc.utils.io import atomic_folder, load_arrays, save_arrays, write_json


class Pipeline:
    """What ``xmc train`` produces and ``xmc predict`` / ``evaluate`` / ``serve`` use."""

    def __init__(self, model: XMCModel, vocab: LabelVocab, featurizer: TfidfFeaturizer | None,
                 label_freq: np.ndarray, n_train: int, propensity: tuple[float, float] = (DEFAULT_A, DEFAULT_B),
                 metrics: dict[str, Any] | None = None, dataset: str | None = None):
        self.model, self.vocab, self.featurizer = model, vocab, featurizer
        self.label_freq, self.n_train = np.asarray(label_freq, np.int64), int(n_train)
        self.propensity = tuple(propensity)
        self.metrics = metrics or {}
        self.dataset = dataset

    @property
    def method(self) -> str:
        return self.model.method

    def inputs(self, texts: list[str] | None = None, features: sp.csr_matrix | None = None):
        """What the model consumes: TF-IDF rows, raw texts, or given features."""
        if self.model.input_kind == "texts":
            if texts is None:
                raise XMCError(f"{self.method} needs raw texts; this dataset only has bag-of-words features")
            return texts
        if self.featurizer is not None:
            if texts is None:
                raise XMCError("this model was trained on texts; give texts, not a feature matrix")
            return self.featurizer.transform(texts)
        if features is None:
            raise XMCError("this model was trained on bag-of-words features; give features, not texts")
        return features

    def predict(self, texts: list[str] | None = None, features: sp.csr_matrix | None = None,
                **kwargs) -> sp.csr_matrix:
        return self.model.predict(self.inputs(texts, features), **kwargs)

    def inv_propensity(self, n_labels: int) -> np.ndarray:
        """Weights over ``n_labels`` columns; columns past the vocabulary are unseen labels."""
        freq = np.concatenate([self.label_freq, np.zeros(max(0, n_labels - self.label_freq.size), np.int64)])
        return inv_propensity_from_counts(freq, self.n_train, *self.propensity)

    def save(self, folder: str | os.PathLike) -> Path:
        with atomic_folder(folder) as tmp:
            self.vocab.save(tmp / "labels.txt")
            save_arrays(tmp / "label_stats.npz", label_freq=self.label_freq, n_train=np.array(self.n_train))
            if self.featurizer is not None:
                self.featurizer.save(tmp / "tfidf")
            self.model.save(tmp / "model")
            write_manifest(tmp, "pipeline", self.method, None, featurizer="tfidf" if self.featurizer else None,
                           n_labels=len(self.vocab), propensity=list(self.propensity), metrics=self.metrics,
                           dataset=self.dataset)
        return Path(folder)

    def update_metrics(self, folder: str | os.PathLike, key: str, metrics: dict[str, Any]) -> None:
        """Record an evaluation in the folder's manifest."""
        manifest = read_manifest(folder)
        manifest.setdefault("metrics", {})[key] = metrics
        self.metrics = manifest["metrics"]
        write_json(Path(folder) / "xmc.json", manifest)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Pipeline:
        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest.get("kind") != "pipeline":
            raise ModelFormatError(f"{folder} holds a bare {manifest.get('method')} model, not a trained pipeline")
        model_manifest = read_manifest(folder / "model")
        model = model_class(model_manifest["method"]).load(folder / "model")
        vocab = LabelVocab.load(folder / "labels.txt")
        stats = load_arrays(folder / "label_stats.npz")
        featurizer = TfidfFeaturizer.load(folder / "tfidf") if manifest.get("featurizer") == "tfidf" else None
        if len(vocab) != manifest.get("n_labels"):
            raise ModelFormatError(f"{folder}: labels.txt has {len(vocab)} labels, "
                                   f"xmc.json says {manifest.get('n_labels')}")
        return cls(model, vocab, featurizer, stats["label_freq"], int(stats["n_train"]),
                   tuple(manifest.get("propensity", (DEFAULT_A, DEFAULT_B))), manifest.get("metrics"),
                   manifest.get("dataset"))


def load(folder: str | os.PathLike) -> Pipeline | XMCModel:
    """Load whatever ``folder`` holds: a trained pipeline or a bare model."""
    manifest = read_manifest(folder)
    if manifest.get("kind") == "pipeline":
        return Pipeline.load(folder)
    return model_class(manifest["method"]).load(folder)
