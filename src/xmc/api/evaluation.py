"""Metrics of a model or of a saved prediction file, and the HTML report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import scipy.sparse as sp

from xmc.api.prediction import _pipeline, load, predict_split
from xmc.data.datasets import Split, resolve
from xmc.evaluation import DEFAULT_KS, accept_metrics, load_predictions, metrics_of, scored, train_frequencies
from xmc.exceptions import XMCError
from xmc.metrics.report import RECALL_K
from xmc.models.pipeline import Pipeline
from xmc.utils.validation import check_k


def format_metrics(metrics: dict[str, Any], title: str = "") -> str:
    from xmc.metrics.report import format_report

    return format_report(metrics, title)


def evaluate_split(pipeline: Pipeline, split: Split, scores: sp.csr_matrix | None = None, *,
                   ks=DEFAULT_KS, groups: bool = False, where: str | None = None) -> dict[str, Any]:
    """Metrics in percent (:func:`xmc.evaluation.metrics_of`), plus ``n_docs``, ``unseen_labels``
    (distinct labels absent from the training vocabulary, kept in the truth as misses) and the
    propensity constants; with ``groups``, per label group."""
    if scores is None:
        scores = predict_split(pipeline, split, top_k=max(RECALL_K, *ks))
    s = scored(scores, pipeline.vocab.labels, split, pipeline.label_freq, pipeline.n_train, pipeline.propensity)
    return {**metrics_of(s, ks, groups), **accept_metrics(pipeline, split, scores, where)}


def evaluate(model: Pipeline | str | os.PathLike | None, data: str | os.PathLike, split: str = "test", *,
             record: bool = True, ks=DEFAULT_KS, groups: bool = False,
             pred: str | os.PathLike | None = None) -> dict[str, Any]:
    """Metrics of a saved model on one split (recorded in the model's manifest, best effort, when a
    folder is given), or of a prediction file ``pred`` written by ``xmc predict --out`` (its columns
    follow the ``labels.txt`` beside it; propensities come from the dataset's training split)."""
    ks = tuple(check_k(k, "k") for k in ks)
    dataset = resolve(data)
    part = dataset.load(split)
    if pred is not None:
        scores, labels = load_predictions(pred)
        freq, n_train = train_frequencies(data, labels)
        return metrics_of(scored(scores, labels, part, freq, n_train), ks, groups)
    pipeline = _pipeline(model)
    metrics = evaluate_split(pipeline, part, ks=ks, groups=groups, where=f"{dataset.name}/{split}")
    if record and not isinstance(model, Pipeline):
        pipeline.update_metrics(model, f"{dataset.name}/{split}", metrics)
    return metrics


def report(models: list[str | os.PathLike], data: str | os.PathLike, split: str = "dev",
           out: str | os.PathLike = "report", overwrite: bool = False) -> Path:
    """``xmc report``: an HTML page with plots, the PNGs and ``metrics.json`` (:mod:`xmc.report`)."""
    from xmc.report import build

    if not models:
        raise XMCError("a report needs at least one --model")
    dataset = resolve(data)
    pipelines = [(Path(m).name or str(m), load(m)) for m in models]
    names = [n for n, _ in pipelines]
    if len(set(names)) != len(names):
        pipelines = [(f"{i + 1}: {n}", p) for i, (n, p) in enumerate(pipelines)]
    return build(pipelines, dataset.load(split), dataset.name, split, out, overwrite)
