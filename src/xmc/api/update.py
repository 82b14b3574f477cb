"""``xmc update``: a trained model learns the labels of a dataset that it does not know yet, without a
full retraining (:mod:`xmc.models.label_update`), and is saved as a normal model folder."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmc.api import holdout
from xmc.api.prediction import load, predict_split
from xmc.api.training import _calibrate, _report
from xmc.data.datasets import Split, resolve
from xmc.data.vocab import LabelVocab
from xmc.exceptions import XMCError
from xmc.features.cache import cached_transform
from xmc.features.normalize import normalize_rows
from xmc.metrics.report import RECALL_K
from xmc.models.label_update import LabelUpdate, add_labels
from xmc.models.pipeline import Pipeline
from xmc.utils.folders import check_target
from xmc.utils.validation import check_features

log = logging.getLogger(__name__)
UPDATABLE = ("xr-linear", "xr-transformer")


@dataclass
class UpdateResult:
    pipeline: Pipeline
    update: LabelUpdate
    new_labels: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    eval_split: str | None = None
    path: Path | None = None
    report_name: str | None = None


def update(model: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike | None = None, *,
           split: str = "train", eval_split: str | None = "auto", retrain_known: bool = False,
           overwrite: bool = False) -> UpdateResult:
    """Add the labels of ``data``'s ``split`` that the model at ``model`` does not know, train their
    rankers and those of the clusters they join, evaluate on ``eval_split`` (``"auto"``: dev, else
    test) and save to ``out``. The calibration is fitted on dev, or, without one, on a seeded slice
    of ``data``'s split held out of the update (:mod:`xmc.api.holdout`), never on test. Known labels
    keep their rankers unless ``retrain_known``, which trains
    again those that have more documents in ``data`` than the model was trained on; the featuriser
    keeps its vocabulary."""
    if out is not None:
        check_target(out, overwrite)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    pipeline = load(model)
    if not isinstance(pipeline, Pipeline) or pipeline.method not in UPDATABLE:
        method = pipeline.method if isinstance(pipeline, Pipeline) else "a bare model"
        raise XMCError(f"xmc update adds labels to {' and '.join(UPDATABLE)} models; {model} holds {method}")
    dataset = resolve(data)
    runs = holdout.plan(dataset, dataset.load(split), split, eval_split)
    train_split = runs.fit
    new_labels = [label for label in LabelVocab.build(train_split.labels).labels if label not in pipeline.vocab.index]
    vocab = LabelVocab(pipeline.vocab.labels + new_labels)
    Y = vocab.encode(train_split.labels).Y
    n_known = len(pipeline.vocab)
    counts = np.diff(sp.csc_matrix(Y).indptr)
    gained = np.flatnonzero(counts[:n_known] > pipeline.label_freq) if retrain_known else np.array([], np.int64)
    if not new_labels and not gained.size:
        raise XMCError(f"every label of {dataset.name}/{split} is already known to the model"
                       f"{' and none gained documents' if retrain_known else ''}: nothing to add")
    seconds["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    X = _ranker_inputs(pipeline, train_split)
    seconds["features"] = time.perf_counter() - t0
    linear = pipeline.model.ranker_ if pipeline.method == "xr-transformer" else pipeline.model
    report = add_labels(linear, X, Y, n_known, retrain_known=gained)
    seconds.update(report.seconds)
    freq = np.concatenate([pipeline.label_freq, counts[n_known:]])
    freq[gained] = counts[gained]
    updated = Pipeline(pipeline.model, vocab, pipeline.featurizer, freq, max(pipeline.n_train, Y.shape[0]),
                       pipeline.propensity,
                       dataset=pipeline.dataset, label_names={**pipeline.label_names, **dataset.label_names()},
                       feature_norm=pipeline.feature_norm)
    result = UpdateResult(updated, report, new_labels, seconds)
    _evaluate(result, runs)
    if out is not None:
        result.path = updated.save(out, overwrite=overwrite)
    return result


def _ranker_inputs(pipeline: Pipeline, split: Split) -> sp.csr_matrix:
    """The rows the XR-Linear inside reads, made by the model's own featuriser (and encoder)."""
    if pipeline.method == "xr-transformer":
        if split.texts is None:
            raise XMCError("xr-transformer reads raw texts; this dataset has bag-of-words features only")
        return pipeline.model.ranker_features(split.texts)
    if pipeline.featurizer is not None:
        if split.texts is None:
            raise XMCError("the model was trained on texts; this dataset has bag-of-words features only")
        return cached_transform(pipeline.featurizer, split.texts)
    if split.features is None:
        raise XMCError("the model was trained on bag-of-words features; this dataset has texts")
    return normalize_rows(check_features(split.features, pipeline.model.n_features_in_), pipeline.feature_norm)


def _evaluate(result: UpdateResult, runs: holdout.Plan) -> None:
    """The calibration fitted on the choice split (dev, or documents held out of the update's data),
    the metrics of the report split."""
    if runs.choose is None:
        return
    t0 = time.perf_counter()
    pipeline = result.pipeline
    scores = predict_split(pipeline, runs.choose, top_k=RECALL_K)
    _calibrate(pipeline, runs.choose, scores, runs.choose_name)
    pipeline.fitted_on = {"calibration": runs.choose_name} if pipeline.calibration is not None else {}
    if runs.report is not None:
        _report(result, pipeline, runs, scores)
    result.seconds["evaluate"] = time.perf_counter() - t0
