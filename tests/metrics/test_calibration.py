"""Score calibration against hand-computed values and scikit-learn's isotonic regression."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.isotonic import IsotonicRegression

from xmc.exceptions import ModelFormatError
from xmc.metrics.calibration import (
    ScoreCalibration,
    _two_folds,
    expected_calibration_error,
    fit_calibration,
    prediction_hits,
)
from xmc.utils.io import save_arrays


def test_apply_maps_every_stored_score_and_keeps_the_pattern():
    calibration = ScoreCalibration(np.array([0.0, 1.0, 3.0]), np.array([0.0, 0.5, 1.0]))
    scores = sp.csr_matrix(np.array([[0.5, 0.0, 2.0], [4.0, -1.0, 0.0]]))
    out = calibration.apply(scores)
    assert out.dtype == np.float32 and (out != 0).nnz == 3 and out.nnz == scores.nnz
    np.testing.assert_allclose(out.toarray(), [[0.25, 0.0, 0.75], [1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(out.indices, scores.indices)
    assert scores[0, 0] == 0.5  # the input is not modified


def test_prediction_hits_pair_each_stored_score_with_its_truth():
    scores = sp.csr_matrix(np.array([[0.9, 0.0, 0.2], [0.0, 0.7, 0.6]], np.float32))
    truth = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 0, 1, 0]], np.float32))  # a column past the scores
    raw, hit = prediction_hits(scores, truth)
    np.testing.assert_allclose(raw, [0.9, 0.2, 0.7, 0.6], rtol=1e-6)
    np.testing.assert_array_equal(hit, [1.0, 0.0, 0.0, 1.0])
    assert raw.dtype == hit.dtype == np.float64


def test_ece_by_hand():
    prob = np.array([0.05, 0.15, 0.95, 0.99, 1.0])
    hit = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    # bins: 0 -> {0.05: 0}, 1 -> {0.15: 1}, 9 -> {0.95, 0.99, 1.0: 1, 0, 1}
    expected = (abs(0 - 0.05) + abs(1 - 0.15) + abs(2 - 2.94)) / 5
    assert expected_calibration_error(prob, hit) == pytest.approx(expected)
    assert expected_calibration_error(np.array([]), np.array([])) == 0.0
    assert expected_calibration_error(prob, hit, n_bins=1) == pytest.approx(abs(3 - 3.14) / 5)


def test_ece_keeps_a_probability_of_one_in_the_last_bin_and_counts_every_bin():
    # 0.95 and 1.0 share the last bin: |1 - 1.95| / 2 (apart they would give (0.05 + 1) / 2)
    assert expected_calibration_error(np.array([0.95, 1.0]), np.array([1.0, 0.0])) == pytest.approx(0.475)
    # no probability reaches the upper bins: |0 - 0.1| and |1 - 0.3| over 2
    assert expected_calibration_error(np.array([0.1, 0.3]), np.array([0.0, 1.0])) == pytest.approx(0.4)
    # ten bins by default: 0.52 and 0.58 share bin 5 (eleven would part them)
    assert expected_calibration_error(np.array([0.52, 0.58]), np.array([1.0, 0.0])) == pytest.approx(0.05)


def test_the_two_folds_are_halves_fixed_by_the_seed():
    for n_docs in range(1, 8):
        assert _two_folds(n_docs, 0).sum() == n_docs // 2
    np.testing.assert_array_equal(_two_folds(10, 3), _two_folds(10, 3))
    assert len({tuple(_two_folds(10, seed)) for seed in range(5)}) > 1


def test_the_reported_eces_by_hand():
    """Two documents, each calibrated by the other's pairs (raw, hit): doc 0 (0.9, 1), (0.2, 0),
    (0.07, 0) fits 0 up to 0.2 and rises linearly to 1 at 0.9; doc 1 (0.5, 1), (0.8, 0), (0.3, 0)
    fits 0 at 0.3 and 0.5 from 0.5 on. Calibrated: doc 0 -> 0.5, 0, 0; doc 1 -> 3/7, 6/7, 1/7."""
    scores = sp.csr_matrix(np.array([[0.9, 0.2, 0.07, 0, 0, 0], [0, 0, 0, 0.5, 0.8, 0.3]]))
    truth = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]], np.float32))
    _, report = fit_calibration(scores, truth)
    # bins of the calibrated: 5 {0.5: 1}, 0 {0, 0: 0, 0}, 4 {3/7: 1}, 8 {6/7: 0}, 1 {1/7: 0}
    assert report["ECE"] == round(100 * (0.5 + 4 / 7 + 6 / 7 + 1 / 7) / 6, 4)
    assert report["ECE_raw"] == round(100 * (0.1 + 0.2 + 0.07 + 0.5 + 0.8 + 0.3) / 6, 4)
    assert report == fit_calibration(scores, truth)[1]  # the default seed is fixed
    outside = sp.csr_matrix(np.array([[1.5, -0.5], [-0.5, 1.5]]))  # margins: raw ECE on [0, 1]
    assert fit_calibration(outside, sp.csr_matrix(np.eye(2)))[1]["ECE_raw"] == 0.0


def test_fit_matches_isotonic_regression_and_reports_both_eces():
    rng = np.random.default_rng(0)
    scores = sp.random(300, 20, density=0.2, format="csr", random_state=0, dtype=np.float64)
    truth = sp.csr_matrix((rng.random((300, 20)) < scores.toarray() * 0.8).astype(np.float32))
    calibration, report = fit_calibration(scores, truth, seed=3)
    raw, hit = prediction_hits(scores, truth)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, hit)
    grid = np.linspace(-0.5, 1.5, 41)
    np.testing.assert_allclose(calibration(grid), iso.predict(grid), atol=1e-6)
    assert report["pairs"] == scores.nnz
    assert report["ECE_raw"] == pytest.approx(100 * expected_calibration_error(np.clip(raw, 0, 1), hit), abs=1e-4)
    assert 0 <= report["ECE"] < report["ECE_raw"]
    assert fit_calibration(scores, truth, seed=4)[1]["ECE"] != report["ECE"]  # the folds follow the seed
    assert fit_calibration(scores, truth)[1] == fit_calibration(scores, truth, seed=0)[1]  # seed 0 by default


def test_a_saved_calibration_loads_back_and_a_broken_one_is_refused(tmp_path):
    calibration = ScoreCalibration(np.array([0.0, 2.0]), np.array([0.1, 0.9]))
    calibration.save(tmp_path / "c.npz")
    loaded = ScoreCalibration.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(loaded.x, calibration.x)
    np.testing.assert_array_equal(loaded.y, calibration.y)
    ScoreCalibration(np.array([0.5]), np.array([1.0])).save(tmp_path / "one.npz")  # a constant map, y at 1
    assert ScoreCalibration.load(tmp_path / "one.npz")(np.array([0.0, 9.0])).tolist() == [1.0, 1.0]
    ScoreCalibration(np.array([0.0, 0.5, 0.5, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])).save(tmp_path / "step.npz")
    assert ScoreCalibration.load(tmp_path / "step.npz")(np.array([0.4, 0.6])).tolist() == [0.0, 1.0]  # a step
    save_arrays(tmp_path / "flat.npz", x=np.array([[0.0, 1.0]]), y=np.array([[0.0, 1.0]]))
    with pytest.raises(ModelFormatError):  # 2-D
        ScoreCalibration.load(tmp_path / "flat.npz")
    for x, y in (([1.0, 0.0], [0.1, 0.9]), ([0.0, 1.0], [0.9, 0.1]), ([0.0, 1.0], [-0.1, 0.5]),
                 ([0.0, 1.0], [0.5, 1.5]), ([], []), ([0.0], [0.1, 0.2])):
        ScoreCalibration(np.array(x), np.array(y)).save(tmp_path / "bad.npz")
        with pytest.raises(ModelFormatError, match="calibration needs"):
            ScoreCalibration.load(tmp_path / "bad.npz")
