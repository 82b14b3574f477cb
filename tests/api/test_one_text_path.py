"""The direct one-text path (featuriser rows straight into beam search's arrays) gives exactly what
the general path (SciPy features, the model's checked ``predict``, calibration, ``ranked_labels``)
gives, calibrated ties and ``min_score`` included."""

from __future__ import annotations

import numpy as np
import pytest

from xmc import api
from xmc.models.pipeline import ranked_labels


@pytest.fixture(scope="module")
def pipeline(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "m"
    api.train("xr-linear", small_data, out, overrides=["tree.max_leaf_size=16"])
    loaded = api.load(out)
    assert loaded._direct_path() and loaded.calibration is not None
    return loaded


def _general(pipeline, texts, top_k, min_score, calibrated):
    scores = pipeline.predict(texts, top_k=top_k)
    if calibrated:
        scores = pipeline.calibration.apply(scores)
    return [[(lab, s, pipeline.label_names.get(lab)) for lab, s in row if s >= min_score]
            for row in ranked_labels(scores, pipeline.vocab.labels)]


@pytest.mark.parametrize("top_k, min_score, calibrated", [(5, 0.0, True), (20, 0.0, True), (10, 0.05, True),
                                                           (3, 0.0, False)])
def test_direct_path_equals_the_general_path(pipeline, small_data, top_k, min_score, calibrated):
    texts = api.resolve(small_data).load("dev").texts[:40] + ["", "unknownword", "x"]
    for batch in ([texts[0]], texts[:3], texts):
        direct = pipeline.predict_rows(batch, top_k=top_k, min_score=min_score, calibrated=calibrated)
        assert direct == _general(pipeline, batch, top_k, min_score, calibrated)
    assert any(len(row) > 0 for row in direct)


def test_calibrated_ties_are_ordered_by_label_column(pipeline, small_data):
    """A calibration that maps several raw scores to one probability makes ties the raw order did not
    have; both paths order them by label column."""
    from xmc.metrics.calibration import ScoreCalibration

    flat = ScoreCalibration(np.array([0.0, 1.0]), np.array([0.5, 0.5]))  # every score -> 0.5
    saved, pipeline.calibration = pipeline.calibration, flat
    try:
        texts = api.resolve(small_data).load("dev").texts[:5]
        rows = pipeline.predict_rows(texts, top_k=5)
        assert rows == _general(pipeline, texts, 5, 0.0, True)
        columns = [[pipeline.vocab.index[lab] for lab, _, _ in row] for row in rows]
        assert all(c == sorted(c) for c in columns)
    finally:
        pipeline.calibration = saved
