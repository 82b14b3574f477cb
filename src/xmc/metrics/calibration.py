"""Scores a user can threshold: a monotone map from a model's raw scores to the probability that a
predicted label is right, fitted on held-out predictions (isotonic regression), and the expected
calibration error (ECE) that says how well it holds.

Every method's raw scores mean something different (XR-Linear's products of hinge scores, a
neural model's sigmoid products, an ensemble's averages); after calibration a score of 0.5 means
"right about half the time" for all of them, so ``--min-score 0.5`` means the same across methods.
The map is non-decreasing, so it never reorders a document's labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import ModelFormatError
from xmc.utils.io import load_arrays, save_arrays

ACCEPT_PRECISION = 0.9  # the precision at which documents are accepted automatically (AR@P90)


@dataclass
class ScoreCalibration:
    """``probability = interp(raw, x, y)`` with ``x`` increasing and ``y`` non-decreasing in [0, 1]."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, raw: np.ndarray, hit: np.ndarray) -> ScoreCalibration:
        from sklearn.isotonic import IsotonicRegression

        raw, hit = np.asarray(raw, np.float64), np.asarray(hit, np.float64)
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, hit)
        return cls(np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64))

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(raw, np.float64), self.x, self.y).astype(np.float32)

    def apply(self, scores: sp.csr_matrix) -> sp.csr_matrix:
        out = sp.csr_matrix(scores, dtype=np.float32, copy=True)
        out.data = self(out.data)
        return out

    def save(self, path: str | os.PathLike) -> None:
        save_arrays(path, x=self.x, y=self.y)

    @classmethod
    def load(cls, path: str | os.PathLike) -> ScoreCalibration:
        arrays = load_arrays(path, {"x": ("f", (None,)), "y": ("f", (None,))})
        x, y = arrays["x"], arrays["y"]
        if (x.size == 0 or x.shape != y.shape or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0)
                or y.min() < 0 or y.max() > 1):
            raise ModelFormatError(f"{path}: a calibration needs increasing x and non-decreasing y in [0, 1]")
        return cls(x, y)


def prediction_hits(scores: sp.csr_matrix, truth: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Every stored prediction's raw score and whether its label is true (1.0) or not (0.0)."""
    scores = sp.csr_matrix(scores)
    truth = sp.csr_matrix(truth)[:, : scores.shape[1]].tocsr()
    truth.sort_indices()
    rows = np.repeat(np.arange(scores.shape[0], dtype=np.int64), np.diff(scores.indptr))
    width = np.int64(scores.shape[1])
    keys = rows * width + scores.indices
    true_rows = np.repeat(np.arange(truth.shape[0], dtype=np.int64), np.diff(truth.indptr))
    true_keys = true_rows * width + truth.indices
    return scores.data.astype(np.float64), np.isin(keys, true_keys).astype(np.float64)


def expected_calibration_error(prob: np.ndarray, hit: np.ndarray, n_bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width probability bins, weighted by their size."""
    prob, hit = np.asarray(prob, np.float64), np.asarray(hit, np.float64)
    if prob.size == 0:
        return 0.0
    bins = np.minimum((prob * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, hit, n_bins) - np.bincount(bins, prob, n_bins))
    return float(gap.sum() / count.sum())


def _two_folds(n_docs: int, seed: int) -> np.ndarray:
    """True for a random half (``n_docs // 2``) of the documents, False for the others."""
    return np.random.default_rng(seed).permutation(n_docs) < n_docs // 2


def fit_calibration(scores: sp.csr_matrix, truth: sp.csr_matrix, seed: int = 0,
                    accept_precision: float = ACCEPT_PRECISION) -> tuple[ScoreCalibration, dict]:
    """A calibration fitted on all of ``scores`` (held-out predictions against ``truth``), and the ECE of
    raw and calibrated scores measured honestly: two-fold, each half calibrated by the other. Also the
    threshold on the calibrated top score that accepts documents automatically at
    ``accept_precision`` (:func:`accept_threshold`), and the accept rate and precision it gives,
    measured two-fold the same way (threshold from one half, applied to the other)."""
    raw, hit = prediction_hits(scores, truth)
    rows = np.repeat(np.arange(scores.shape[0]), np.diff(sp.csr_matrix(scores).indptr))
    doc_fold = _two_folds(scores.shape[0], seed)
    fold = doc_fold[rows]
    calibrated = np.empty_like(raw)
    for side in (True, False):
        part = ScoreCalibration.fit(raw[fold == side], hit[fold == side])
        calibrated[fold != side] = part(raw[fold != side])
    clipped = np.clip(raw, 0.0, 1.0)
    report = {"ECE": round(100 * expected_calibration_error(calibrated, hit), 4),
              "ECE_raw": round(100 * expected_calibration_error(clipped, hit), 4),
              "pairs": int(raw.size)}
    calibration = ScoreCalibration.fit(raw, hit)
    top, top_hit = top_predictions(calibration.apply(scores), truth)
    key = accept_key(accept_precision)
    threshold = accept_threshold(top, top_hit, accept_precision)
    report[f"{key}_threshold"] = threshold if np.isfinite(threshold) else None  # None: no score is precise enough
    accepted = correct = 0
    for side in (True, False):  # the honest figure on the calibration split itself
        t = accept_threshold(top[doc_fold == side], top_hit[doc_fold == side], accept_precision)
        take = top[doc_fold != side] >= t
        accepted += int(take.sum())
        correct += int(top_hit[doc_fold != side][take].sum())
    report[key] = round(100 * accepted / max(scores.shape[0], 1), 4)
    report[f"{key}_precision"] = round(100 * correct / accepted, 4) if accepted else None
    return calibration, report


def accept_key(precision: float) -> str:
    """``AR@P90``: the accept rate at 90% precision (the name ``coverage`` is label coverage's)."""
    return f"AR@P{round(100 * precision)}"


def top_predictions(scores: sp.csr_matrix, truth: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Each document's best score (``-inf`` for a document with no prediction) and whether that
    label is true."""
    scores = sp.csr_matrix(scores)
    truth = sp.csr_matrix(truth)
    n = scores.shape[0]
    top = np.full(n, -np.inf)
    hit = np.zeros(n, dtype=bool)
    for i in range(n):  # one argmax per row: n is the split's documents, at most a few hundred thousand
        lo, hi = scores.indptr[i], scores.indptr[i + 1]
        if hi > lo:
            j = lo + int(np.argmax(scores.data[lo:hi]))
            top[i] = scores.data[j]
            label = scores.indices[j]
            hit[i] = label < truth.shape[1] and label in truth.indices[truth.indptr[i]:truth.indptr[i + 1]]
    return top, hit


def accept_threshold(top: np.ndarray, hit: np.ndarray, precision: float) -> float:
    """The lowest score t such that the documents whose top score is at least t have a top label
    right at least ``precision`` of the time (accepting the most documents); ``inf`` when no t does."""
    top, hit = np.asarray(top, np.float64), np.asarray(hit, np.float64)
    keep = np.isfinite(top)
    top, hit = top[keep], hit[keep]
    if top.size == 0:
        return float("inf")
    order = np.argsort(-top, kind="stable")
    s, h = top[order], hit[order]
    prec = np.cumsum(h) / np.arange(1, s.size + 1)
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # a threshold takes every tie of its score
    good = ends[prec[ends] >= precision]
    return float(s[good[-1]]) if good.size else float("inf")


def accept_rate(scores: sp.csr_matrix, truth: sp.csr_matrix, threshold: float) -> tuple[float, float | None]:
    """Percent of documents whose top score reaches ``threshold``, and percent of those right (None
    when none does)."""
    top, hit = top_predictions(scores, truth)
    take = top >= threshold
    n = max(top.size, 1)
    return 100 * float(take.sum()) / n, (100 * float(hit[take].mean()) if take.any() else None)
