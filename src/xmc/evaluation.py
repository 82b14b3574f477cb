"""Evaluation of a model or of a saved prediction file on a dataset split, the way the field reports
it: P@k, nDCG@k, PSP@k, PSnDCG@k, R@k, RP@k and coverage over all labels, optionally per label group
(frequent / few-shot / zero-shot, :mod:`xmc.metrics.groups`). Shared by ``xmc evaluate``,
``xmc report`` and the Python API (:mod:`xmc.api`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmc.data.datasets import Split, resolve
from xmc.data.vocab import LabelVocab
from xmc.exceptions import InvalidInputError, ModelFormatError
from xmc.metrics.calibration import ACCEPT_PRECISION, accept_key, accept_rate
from xmc.metrics.groups import group_metrics, rank_metrics
from xmc.metrics.propensity import DEFAULT_A, DEFAULT_B, inv_propensity_from_counts
from xmc.metrics.report import evaluate_scores
from xmc.utils.io import load_csr

DEFAULT_KS = (1, 3, 5)


@dataclass
class Scored:
    """Predictions against the truth of one split, with what the metrics need besides."""

    truth: sp.csr_matrix  # (n_docs, n_labels + unseen labels)
    scores: sp.csr_matrix  # same width
    labels: list[str]  # the vocabulary (the first columns)
    train_freq: np.ndarray  # training documents per vocabulary label
    n_train: int
    propensity: tuple[float, float]
    unseen_labels: int
    unseen_assignments: int

    def inv_propensity(self) -> np.ndarray:
        width = self.truth.shape[1]
        freq = np.concatenate([self.train_freq, np.zeros(width - self.train_freq.size, np.int64)])
        return inv_propensity_from_counts(freq, self.n_train, *self.propensity)


def scored(scores: sp.csr_matrix, labels: list[str], split: Split, train_freq: np.ndarray, n_train: int,
           propensity=(DEFAULT_A, DEFAULT_B)) -> Scored:
    encoded = LabelVocab(labels).encode(split.labels, keep_unseen=True)
    width = encoded.Y.shape[1]
    scores = sp.csr_matrix(scores)
    if scores.shape[0] != len(split):
        raise InvalidInputError(f"the predictions have {scores.shape[0]} rows but the split has {len(split)} "
                                "documents")
    scores = sp.csr_matrix((scores.data, scores.indices, scores.indptr), shape=(scores.shape[0], width))
    return Scored(encoded.Y, scores, list(labels), np.asarray(train_freq, np.int64), int(n_train), tuple(propensity),
                  len(encoded.unseen_labels), encoded.unseen_assignments)


def metrics_of(s: Scored, ks=DEFAULT_KS, groups: bool = False) -> dict[str, Any]:
    """Every metric in percent (top-level keys such as ``"P@5"``, ``"RP@5"``), the document and unseen
    label counts, the propensity constants; with ``groups``, the same per label group."""
    ks = tuple(sorted(set(ks)))
    recall_k = max(10, *ks)
    out: dict[str, Any] = evaluate_scores(s.truth, s.scores, s.inv_propensity(), ks=ks, recall_k=recall_k)
    ranks = rank_metrics(s.truth, s.scores, ks, skip_empty=False)
    out.update({k: round(v, 4) for k, v in ranks.items() if k.startswith(("RP@", "R@"))})
    out.update(n_docs=int(s.truth.shape[0]), unseen_labels=s.unseen_labels, unseen_assignments=s.unseen_assignments,
               propensity_a=s.propensity[0], propensity_b=s.propensity[1])
    if groups:
        out["groups"] = {name: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in g.items()}
                         for name, g in group_metrics(s.truth, s.scores, s.train_freq, ks).items()}
    return out


def load_predictions(path: str | os.PathLike) -> tuple[sp.csr_matrix, list[str]]:
    """A prediction file of ``xmc predict --out`` and the labels of its columns (``OUT.labels.txt``, or a
    ``labels.txt`` in the same folder)."""
    path = Path(path)
    scores = load_csr(path)
    base = path.with_suffix("") if path.suffix == ".npz" else path
    for candidate in (base.with_name(base.name + ".labels.txt"), path.parent / "labels.txt"):
        if candidate.is_file():
            labels = LabelVocab.load(candidate).labels
            break
    else:
        raise ModelFormatError(f"no {base.name}.labels.txt (or labels.txt) beside {path}: the prediction's columns "
                               "are unknown")
    if len(labels) != scores.shape[1]:
        raise ModelFormatError(f"{path} has {scores.shape[1]} columns but its label file lists {len(labels)}")
    return scores, labels


def train_frequencies(data: str | os.PathLike, labels: list[str]) -> tuple[np.ndarray, int]:
    """Training documents per label of ``labels``, from the dataset's train split (for PSP and groups)."""
    dataset = resolve(data)
    name = "train" if dataset.has_split("train") else dataset.splits[0]
    Y = LabelVocab(labels).encode(dataset.load(name).labels).Y
    return np.diff(sp.csc_matrix(Y).indptr).astype(np.int64), Y.shape[0]


def accept_metrics(pipeline, split: Split, scores: sp.csr_matrix, where: str | None) -> dict[str, Any]:
    """``AR@P90`` (percent of documents whose calibrated top score reaches the threshold chosen on the
    calibration split for 90% precision) and the precision of those documents on this split; on the
    calibration split itself (``where`` = its name), the two-fold figures measured when it was fitted.
    Empty for a model without calibration."""
    info = pipeline.calibration_info
    key = accept_key(ACCEPT_PRECISION)
    if pipeline.calibration is None or f"{key}_threshold" not in info:
        return {}
    if where is not None and where == info.get("fitted_on") and key in info:
        return {key: info[key], f"{key}_precision": info[f"{key}_precision"]}
    threshold = info[f"{key}_threshold"]
    truth = pipeline.vocab.encode(split.labels).Y
    rate, precision = accept_rate(pipeline.calibration.apply(scores), truth,
                                  float("inf") if threshold is None else float(threshold))
    return {key: round(rate, 4), f"{key}_precision": None if precision is None else round(precision, 4)}
