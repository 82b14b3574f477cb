"""The accept rate at a precision (AR@P90): the threshold, ties, and the figures on a split."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmc.metrics.calibration import accept_key, accept_rate, accept_threshold, fit_calibration, top_predictions


def test_threshold_takes_the_most_documents_at_the_precision():
    top = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    hit = np.array([1, 1, 1, 0, 1, 0])
    # accepting down to 0.8: 3/3; to 0.7: 3/4; to 0.6: 4/5 = 0.8; to 0.5: 4/6
    assert accept_threshold(top, hit, 0.8) == 0.6
    assert accept_threshold(top, hit, 0.9) == 0.8
    assert accept_threshold(top, hit, 1.0) == 0.8
    assert accept_threshold(top, np.zeros(6), 0.5) == float("inf")


def test_threshold_takes_every_tie_of_its_score():
    top = np.array([0.9, 0.8, 0.8, 0.8])
    hit = np.array([1, 1, 0, 0])
    assert accept_threshold(top, hit, 0.6) == 0.9  # 0.8 would take all three ties: 2/4
    assert accept_threshold(top, hit, 0.5) == 0.8


def test_top_predictions_and_rate():
    scores = sp.csr_matrix(np.array([[0.2, 0.9, 0.0], [0.7, 0.1, 0.0], [0.0, 0.0, 0.0]], np.float32))
    truth = sp.csr_matrix(np.array([[0, 1, 0], [0, 1, 0], [1, 0, 0]], np.float32))
    top, hit = top_predictions(scores, truth)
    assert top.tolist()[:2] == [np.float32(0.9), np.float32(0.7)] and top[2] == -np.inf
    assert hit.tolist() == [True, False, False]
    rate, precision = accept_rate(scores, truth, 0.5)
    assert rate == 100 * 2 / 3 and precision == 50.0
    assert accept_rate(scores, truth, 2.0) == (0.0, None)


def test_calibration_reports_a_two_fold_accept_rate():
    rng = np.random.default_rng(0)
    n = 400
    raw = rng.random(n).astype(np.float32)
    right = rng.random(n) < raw  # a higher score is right more often
    cols = np.where(right, 0, 1)
    scores = sp.csr_matrix((raw, cols, np.arange(n + 1)), shape=(n, 2))
    truth = sp.csr_matrix((np.ones(n, np.float32), np.zeros(n, np.int64), np.arange(n + 1)), shape=(n, 2))
    _, info = fit_calibration(scores, truth)
    key = accept_key(0.9)
    assert key == "AR@P90" and info[f"{key}_threshold"] is not None
    # about the documents scoring above ~0.85 are 90% right: a rate near 20%, a precision near 90
    assert 5 < info[key] < 40 and 80 < info[f"{key}_precision"] <= 100
