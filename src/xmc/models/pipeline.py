"""A trained pipeline: featuriser (for text data) + label vocabulary + model, saved as one folder.

Layout::

    model_dir/
      xmc.json          kind "pipeline": method, configs, propensity constants, last metrics
      labels.txt        the label vocabulary, one label per line (column order of the scores)
      label_stats.npz   training label frequencies (for propensity-scored metrics)
      tfidf/            the featuriser (text datasets and feature-based methods only)
      model/            the model folder (its own xmc.json + arrays)
      label_names.tsv   readable names of the labels, when the dataset had them
      calibration.npz   the map from raw scores to probabilities, fitted on the evaluation split
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmc.data.label_names import read_label_tsv
from xmc.data.vocab import LabelVocab
from xmc.exceptions import ModelFormatError, XMCError
from xmc.features.cache import cached_transform
from xmc.features.normalize import NORMS, normalize_rows
from xmc.features.tfidf import TfidfFeaturizer
from xmc.metrics.calibration import ScoreCalibration
from xmc.metrics.propensity import DEFAULT_A, DEFAULT_B, inv_propensity_from_counts
from xmc.models.base import (
    MANIFEST,
    XMCModel,
    check_no_links,
    manifest_field,
    model_class,
    read_manifest,
    write_manifest,
)
from xmc.models.label_text import LabelTextBlend, load_blend, save_blend
from xmc.utils.folders import atomic_folder
from xmc.utils.io import load_arrays, save_arrays, write_json, write_text
from xmc.utils.sparse import topk_per_row
from xmc.utils.validation import check_features

log = logging.getLogger(__name__)


class Pipeline:
    """What ``xmc train`` produces and ``xmc predict`` / ``evaluate`` / ``serve`` use."""

    def __init__(self, model: XMCModel, vocab: LabelVocab, featurizer: TfidfFeaturizer | None,
                 label_freq: np.ndarray, n_train: int, propensity: tuple[float, float] = (DEFAULT_A, DEFAULT_B),
                 metrics: dict[str, Any] | None = None, dataset: str | None = None,
                 label_names: dict[str, str] | None = None, calibration: ScoreCalibration | None = None,
                 calibration_info: dict[str, Any] | None = None, feature_norm: str = "none",
                 label_text: LabelTextBlend | None = None):
        self.model, self.vocab, self.featurizer = model, vocab, featurizer
        self.label_freq, self.n_train = np.asarray(label_freq, np.int64), int(n_train)
        self.propensity = tuple(propensity)
        self.metrics = metrics or {}
        self.dataset = dataset
        self.label_names = {k: v for k, v in (label_names or {}).items() if k in vocab.index}
        self.calibration, self.calibration_info = calibration, calibration_info or {}
        self.feature_norm = feature_norm  # applied to given feature rows, as at training time
        self.label_text = label_text  # labels known by their text (zero-shot), blended with the model's scores
        self.fitted_on: dict[str, str] = {}  # each choice made on data (calibration, ...) -> the documents it saw

    @property
    def method(self) -> str:
        return self.model.method

    @property
    def input_kind(self) -> str:
        """What :meth:`predict` takes: raw texts (a featuriser or a text model), or feature rows."""
        return "texts" if self.featurizer is not None or self.model.input_kind == "texts" else "features"

    @property
    def n_labels_(self) -> int:
        return len(self.vocab)

    @property
    def n_features_in_(self) -> int | None:
        return getattr(self.model, "n_features_in_", None) if self.input_kind == "features" else None

    def _check_fitted(self) -> None:
        self.model._check_fitted()

    def inputs(self, texts: list[str] | None = None, features: sp.csr_matrix | None = None):
        """What the model consumes: TF-IDF rows, raw texts, or given features."""
        if self.model.input_kind == "texts":
            if texts is None:
                raise XMCError(f"{self.method} needs raw texts; this dataset only has bag-of-words features")
            return texts
        if self.featurizer is not None:
            if texts is None:
                raise XMCError("this model was trained on texts; give texts, not a feature matrix")
            return cached_transform(self.featurizer, texts)
        if features is None:
            raise XMCError("this model was trained on bag-of-words features; give features, not texts")
        return normalize_rows(check_features(features), self.feature_norm)

    def predict(self, texts: list[str] | None = None, features: sp.csr_matrix | None = None, *,
                backend: str = "local", workers: int = 2, address: str | None = None, **kwargs) -> sp.csr_matrix:
        """Scores of the texts or feature rows; ``backend="ray"`` cuts the rows into ``workers`` Ray
        tasks (:func:`xmc.linear.distributed.predict_ray`)."""
        if backend == "ray":
            from xmc.linear.distributed import predict_ray

            scores = predict_ray(self.model, self.inputs(texts, features), workers, address, **kwargs)
        else:
            scores = self.model.predict(self.inputs(texts, features), **kwargs)
        if self.label_text is None:
            return scores
        if texts is None:
            raise XMCError("this model scores labels by their text: give texts, not a feature matrix")
        top_k = kwargs.get("top_k") or int(np.diff(scores.indptr).max(initial=0)) or 1
        return self.label_text.predict(texts, scores, top_k)

    def inv_propensity(self, n_labels: int) -> np.ndarray:
        """Weights over ``n_labels`` columns; columns past the vocabulary are unseen labels."""
        freq = np.concatenate([self.label_freq, np.zeros(max(0, n_labels - self.label_freq.size), np.int64)])
        return inv_propensity_from_counts(freq, self.n_train, *self.propensity)

    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the pipeline folder atomically; an existing xmc model there is replaced only with
        ``overwrite``, and nothing else is ever replaced (:mod:`xmc.utils.folders`)."""
        with atomic_folder(folder, overwrite) as tmp:
            self.vocab.save(tmp / "labels.txt")
            save_arrays(tmp / "label_stats.npz", label_freq=self.label_freq, n_train=np.array(self.n_train))
            if self.featurizer is not None:
                self.featurizer.save(tmp / "tfidf")
            self.model.save(tmp / "model")
            if self.label_names:
                write_text(tmp / "label_names.tsv", "".join(f"{k}\t{' '.join(self.label_names[k].split())}\n"
                                                            for k in self.vocab.labels if k in self.label_names))
            if self.calibration is not None:
                self.calibration.save(tmp / "calibration.npz")
            if self.label_text is not None:
                save_blend(tmp / "label_text", self.label_text)
            write_manifest(tmp, "pipeline", self.method, None, featurizer="tfidf" if self.featurizer else None,
                           n_labels=len(self.vocab), propensity=list(self.propensity), metrics=self.metrics,
                           dataset=self.dataset, label_names=bool(self.label_names),
                           calibration=self.calibration_info if self.calibration is not None else None,
                           feature_norm=self.feature_norm, label_text=self.label_text is not None,
                           fitted_on=self.fitted_on)
        return Path(folder)

    def predict_rows(self, texts: list[str] | None = None, features: sp.csr_matrix | None = None, *,
                     top_k: int | None = None, min_score: float = 0.0, beam_size: int | None = None,
                     calibrated: bool = True) -> list[list[tuple[str, float, str | None]]]:
        """Each document's labels, best first, as ``(label, score, name)``: the score is the calibrated
        probability when the pipeline has a calibration (and ``calibrated``), else the raw score;
        labels below ``min_score`` are dropped."""
        if texts is not None and self._direct_path():
            return self._predict_rows_direct(texts, top_k, min_score, beam_size, calibrated)
        scores = self.predict(texts, features, top_k=top_k, beam_size=beam_size)
        if self.label_text is not None:  # its extra zero-shot entries serve evaluation, not a reader
            scores = topk_per_row(scores, top_k or int(np.diff(scores.indptr).max(initial=0)) or 1)
        if calibrated and self.calibration is not None:
            scores = self.calibration.apply(scores)
        return [[(label, score, self.label_names.get(label)) for label, score in row if score >= min_score]
                for row in ranked_labels(scores, self.vocab.labels)]

    def _direct_path(self) -> bool:
        """Texts straight to an XR-Linear ranker (XR-Linear itself): the featuriser's raw rows go into
        beam search's arrays and the top-k arrays come out, no SciPy matrix or validating copy on the
        way (the request path of ``xmc serve``)."""
        return (self.featurizer is not None and self.label_text is None and self.model.input_kind == "features"
                and hasattr(self.model, "predict_arrays"))

    def _predict_rows_direct(self, texts, top_k, min_score, beam_size, calibrated):
        ptr, idx, counts = self.featurizer.count_rows(texts)
        ptr, idx, val = self.model.predict_arrays(ptr, idx, self.featurizer.values(ptr, idx, counts), top_k=top_k,
                                                  beam_size=beam_size)
        if calibrated and self.calibration is not None:
            val = self.calibration(val)
        labels, names, rows = self.vocab.labels, self.label_names, []
        for i in range(ptr.size - 1):
            lo, hi = ptr[i], ptr[i + 1]
            order = np.lexsort((idx[lo:hi], -val[lo:hi]))  # the order of ranked_labels, calibrated ties included
            rows.append([(labels[idx[lo + j]], float(val[lo + j]), names.get(labels[idx[lo + j]]))
                         for j in order if val[lo + j] >= min_score])
        return rows

    def update_metrics(self, folder: str | os.PathLike, key: str, metrics: dict[str, Any]) -> bool:
        """Record an evaluation in the folder's manifest (an atomic rewrite of ``xmc.json``).

        Best effort: a read-only folder (or any other write failure) logs a warning and returns
        False, so evaluating a model one may not modify still works."""
        self.metrics = {**self.metrics, key: metrics}
        try:
            manifest = read_manifest(folder)
            manifest["metrics"] = {**(manifest.get("metrics") or {}), key: metrics}
            write_json(Path(folder) / MANIFEST, manifest)
        except OSError as exc:
            log.warning("metrics not recorded in %s (%s)", folder, exc.strerror or exc)
            return False
        return True

    def quantize(self) -> bool:
        """int8 CPU inference for the transformer encoders inside (:meth:`XMCModel.quantize`)."""
        return self.model.quantize()

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Pipeline:
        folder = Path(folder)
        manifest = read_manifest(folder)
        where = folder / MANIFEST
        if manifest["kind"] != "pipeline":
            raise ModelFormatError(f"{folder} holds a bare {manifest['method']} model, not a trained pipeline")
        n_labels = manifest_field(manifest, "n_labels", int, where, low=1)
        featurizer_kind = manifest_field(manifest, "featurizer", (str, type(None)), where, choices=("tfidf", None))
        propensity = manifest_field(manifest, "propensity", list, where)
        if len(propensity) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                           for v in propensity):
            raise ModelFormatError(f"{where}: 'propensity' must be two positive numbers (A, B)")
        metrics = manifest_field(manifest, "metrics", (dict, type(None)), where, optional=True)
        dataset = manifest_field(manifest, "dataset", (str, type(None)), where, optional=True)
        has_names = manifest_field(manifest, "label_names", bool, where, optional=True)
        feature_norm = manifest_field(manifest, "feature_norm", str, where, optional=True, choices=NORMS) or "none"
        calibration_info = manifest_field(manifest, "calibration", (dict, type(None)), where, optional=True)
        check_no_links(folder)
        model = _load_model(folder / "model")
        vocab = LabelVocab.load(folder / "labels.txt")
        stats = load_arrays(folder / "label_stats.npz", {"label_freq": ("iu", (n_labels,)), "n_train": ("iu", ())})
        featurizer = TfidfFeaturizer.load(folder / "tfidf") if featurizer_kind == "tfidf" else None
        if len(vocab) != n_labels:
            raise ModelFormatError(f"{folder}: labels.txt has {len(vocab)} labels, xmc.json says {n_labels}")
        has_text = manifest_field(manifest, "label_text", bool, where, optional=True)
        label_text = load_blend(folder / "label_text", stats["label_freq"], model.n_labels_) if has_text else None
        if model.n_labels_ != n_labels and (label_text is None or label_text.scorer.n_labels != n_labels):
            raise ModelFormatError(f"{folder}: the model scores {model.n_labels_} labels, xmc.json says {n_labels}")
        reads_tfidf = featurizer is not None and model.input_kind == "features"
        if reads_tfidf and model.n_features_in_ != featurizer.n_features_:
            raise ModelFormatError(f"{folder}: the featuriser gives {featurizer.n_features_} features, the model "
                                   f"reads {model.n_features_in_}")
        if np.any(stats["label_freq"] < 0) or int(stats["n_train"]) < 1:
            raise ModelFormatError(f"{folder / 'label_stats.npz'}: negative label counts or no training documents")
        if has_names and not (folder / "label_names.tsv").is_file():
            raise ModelFormatError(f"{folder / 'label_names.tsv'} is missing (xmc.json says the model has names)")
        names = read_label_tsv(folder / "label_names.tsv") if has_names else {}
        if set(names) - set(vocab.index):
            raise ModelFormatError(f"{folder / 'label_names.tsv'} names labels the model does not have")
        calibration = ScoreCalibration.load(folder / "calibration.npz") if calibration_info is not None else None
        fitted_on = manifest_field(manifest, "fitted_on", (dict, type(None)), where, optional=True) or {}
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in fitted_on.items()):
            raise ModelFormatError(f"{where}: 'fitted_on' must map choices to the documents they were made on")
        pipeline = cls(model, vocab, featurizer, stats["label_freq"], int(stats["n_train"]), tuple(propensity),
                       metrics, dataset, names, calibration, calibration_info, feature_norm, label_text)
        pipeline.fitted_on = fitted_on
        return pipeline


def ranked_labels(scores: sp.csr_matrix, labels: list[str]) -> list[list[tuple[str, float]]]:
    """Each row's stored ``(label, score)`` pairs, best first (ties: lower column first)."""
    scores = sp.csr_matrix(scores)
    rows = []
    for i in range(scores.shape[0]):
        lo, hi = scores.indptr[i], scores.indptr[i + 1]
        order = np.lexsort((scores.indices[lo:hi], -scores.data[lo:hi]))
        rows.append([(labels[scores.indices[lo + j]], float(scores.data[lo + j])) for j in order])
    return rows


def _load_model(folder: Path) -> XMCModel:
    method = read_manifest(folder)["method"]
    try:
        cls = model_class(method)
    except XMCError as exc:
        raise ModelFormatError(f"{folder}: {exc}") from None
    return cls.load(folder)


def load(folder: str | os.PathLike) -> Pipeline | XMCModel:
    """Load whatever ``folder`` holds: a trained pipeline or a bare model."""
    if read_manifest(folder)["kind"] == "pipeline":
        return Pipeline.load(folder)
    return _load_model(Path(folder))
