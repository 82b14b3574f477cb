"""Training a method on a dataset (and ensembles of trained models), saved as a pipeline folder."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmc._config import Config
from xmc.api import holdout
from xmc.api.config import features_config, method_config
from xmc.api.evaluation import evaluate_split
from xmc.api.prediction import load, predict_split
from xmc.data.datasets import Dataset, Split, resolve
from xmc.data.vocab import LabelVocab
from xmc.exceptions import XMCError
from xmc.features.cache import cached_fit_transform
from xmc.features.normalize import normalize_rows
from xmc.features.tfidf import TfidfFeaturizer
from xmc.metrics.calibration import fit_calibration
from xmc.metrics.report import RECALL_K
from xmc.models.base import model_class
from xmc.models.label_text import LabelTextBlend, LabelTextConfig, LabelTextScorer, label_text_list
from xmc.models.pipeline import Pipeline
from xmc.utils.faults import kill_point
from xmc.utils.folders import check_target

log = logging.getLogger(__name__)
DEFAULT_METHOD = "xr-transformer"
DEFAULT_DATASET = "EURLEX57K"


@dataclass
class TrainResult:
    pipeline: Pipeline
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    eval_split: str | None = None  # the split reported on
    path: Path | None = None
    report_name: str | None = None  # "dataset/split" reported on
    fitted_on: dict[str, str] = field(default_factory=dict)  # each data-driven choice -> the documents it saw


def train(method: str = DEFAULT_METHOD, data: str | os.PathLike = DEFAULT_DATASET,
          out: str | os.PathLike | None = None, *, split: str = "train",
          overrides: list[str] | tuple[str, ...] = (), config: Config | None = None, eval_split: str | None = "auto",
          fit_options: dict[str, Any] | None = None, ensemble: int = 1, overwrite: bool = False,
          zero_shot: str | None = None, label_text: LabelTextConfig | None = None) -> TrainResult:
    """Train ``method`` on ``data``'s ``split``, save it to ``out`` and evaluate it on ``eval_split``
    (``"auto"``: dev, else test, when present; ``None``: skip). Choices made on data (best epoch,
    calibration, label-text weights) are made on dev, or, without one, on a seeded slice held out
    of the training split, never on test (:mod:`xmc.api.holdout`); ``result.fitted_on`` says where.

    ``fit_options`` go to the model's ``fit`` (e.g. ``checkpoint_dir`` and ``resume`` for
    XR-Transformer). Text models also get the evaluation split as ``eval_set`` for their
    per-level log. ``ensemble > 1`` trains that many members with shifted seeds and combines
    their scores (:mod:`xmc.models.ensemble`).

    ``zero_shot`` (``"splits"``: the labels any split of the dataset uses; ``"all"``: every label the
    folder gives a text for) adds the labels known by their text to the model's vocabulary and
    blends label-text scores into its predictions (:mod:`xmc.models.label_text`, configured by
    ``label_text``), the blend's weights chosen on ``eval_split``.

    ``out`` must be new, empty, or (with ``overwrite``) an xmc model folder; this is checked before
    any work starts, and the old model stays intact until the new one is completely written."""
    if zero_shot is not None and zero_shot not in ZERO_SHOT:
        raise XMCError(f"--zero-shot must be one of {', '.join(ZERO_SHOT)}, got {zero_shot!r}")
    if out is not None:
        check_target(out, overwrite)
    dataset = resolve(data)
    model_cfg, tfidf_cfg = method_config(method, overrides)
    feature_norm = features_config(overrides).norm
    if config is not None:
        model_cfg = config
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    runs = holdout.plan(dataset, dataset.load(split), split, eval_split)
    train_split = runs.fit
    vocab, Y = training_labels(dataset, train_split)
    names = dataset.label_names()  # read before training: a broken names file must not cost a training
    seconds["load"] = time.perf_counter() - t0
    model = build_model(method, model_cfg, ensemble)
    native_label_texts = getattr(model, "reads_label_texts", False)
    if native_label_texts:  # the model embeds label texts itself: it learns every label it knows by text
        vocab, Y, label_texts = label_side(dataset, vocab, Y, zero_shot)
    text_side = None  # the labels known by their text, for a model the label-text blend serves
    if zero_shot is not None and not native_label_texts:
        text_side = label_text_columns(dataset, vocab, train_split, zero_shot)
    # one TF-IDF for the model and the label-text scorer when their settings agree: fitted on the
    # training and the label texts together (the scorer's floor), it is not fitted twice
    label_text = label_text or LabelTextConfig()
    shares = text_side is not None and label_text.tfidf == tfidf_cfg and model.input_kind != "texts"
    t0 = time.perf_counter()
    inputs, featurizer = fit_inputs(model, train_split, tfidf_cfg, feature_norm, dataset.name,
                                    extra_texts=[t for t in text_side[1] if t] if shares else ())
    seconds["features"] = time.perf_counter() - t0
    fit_options = dict(fit_options or {})
    if native_label_texts:
        fit_options["label_texts"] = label_texts
    fitted_on: dict[str, str] = {}
    choose = runs.choose
    if model.input_kind == "texts" and choose is not None and choose.texts is not None:
        fit_options.setdefault("eval_set", (choose.texts, vocab.encode(choose.labels).Y))
        fitted_on["best_epoch"] = runs.choose_name
    t0 = time.perf_counter()
    model.fit(inputs, Y, **fit_options)
    seconds["fit"] = time.perf_counter() - t0
    freq = np.diff(sp.csc_matrix(Y).indptr)
    pipeline = Pipeline(model, vocab, featurizer, freq, Y.shape[0], dataset=dataset.name,
                        label_names=names, feature_norm=feature_norm if train_split.features is not None else "none")
    if zero_shot is not None and not native_label_texts:
        t0 = time.perf_counter()
        pipeline = with_label_texts(pipeline, dataset, train_split, choose, zero_shot, label_text,
                                    shared=(featurizer, inputs) if shares else None, columns=text_side)
        if choose is not None and choose.texts is not None:
            fitted_on["label_text_weights"] = runs.choose_name
        seconds["label_text"] = time.perf_counter() - t0
    result = TrainResult(pipeline, seconds)
    if _secondary_process():  # under torchrun, the first process evaluates and saves; the others stop here
        return result
    if choose is not None:
        t0 = time.perf_counter()
        scores = predict_split(pipeline, choose, top_k=RECALL_K)
        _calibrate(pipeline, choose, scores, runs.choose_name)
        if pipeline.calibration is not None:
            fitted_on["calibration"] = runs.choose_name
        if runs.report is not None:
            _report(result, pipeline, runs, scores)
        seconds["evaluate"] = time.perf_counter() - t0
    pipeline.fitted_on = fitted_on
    result.fitted_on = fitted_on
    if out is not None:
        result.path = pipeline.save(out, overwrite=overwrite)
        kill_point("train:saved")
    return result


def _report(result, pipeline: Pipeline, runs: holdout.Plan, choice_scores: sp.csr_matrix) -> None:
    """Metrics on the report split (the choice split's scores when it is the same split)."""
    scores = choice_scores if runs.same else predict_split(pipeline, runs.report, top_k=RECALL_K)
    result.metrics = evaluate_split(pipeline, runs.report, scores)
    result.eval_split = runs.report_name.split("/", 1)[1]
    result.report_name = runs.report_name
    if runs.same:  # the calibration's own measures, on the documents it was fitted on (the dev split)
        result.metrics.update({k: v for k, v in pipeline.calibration_info.items()
                               if k.startswith(("ECE", "AR@")) and not k.endswith("_threshold")})
    pipeline.metrics = {runs.report_name: result.metrics}


ZERO_SHOT = ("splits", "all")


def with_label_texts(pipeline: Pipeline, dataset: Dataset, train_split: Split, held_out: Split | None,
                     zero_shot: str, config: LabelTextConfig | None,
                     shared: tuple[TfidfFeaturizer, sp.csr_matrix] | None = None,
                     columns: tuple[LabelVocab, list[str]] | None = None) -> Pipeline:
    """``pipeline`` with the labels known by their text added after its own, and a fitted blend.
    ``shared``: a featuriser fitted on the training texts and the label texts together, with the
    label-text scorer's settings, and its rows of the training texts (see :meth:`LabelTextScorer.fit`);
    ``columns``: :func:`label_text_columns` of the pipeline's labels, when the caller has them."""
    full, label_texts = columns or label_text_columns(dataset, pipeline.vocab, train_split, zero_shot)
    vocab = pipeline.vocab
    freq = np.concatenate([pipeline.label_freq, np.zeros(len(full) - len(vocab), np.int64)])
    scorer = LabelTextScorer(config)
    blend = LabelTextBlend(scorer, len(vocab), freq)
    start = time.perf_counter()
    scorer.fit(train_split.texts, label_texts, vocab.encode(train_split.labels).Y,
               pool_sizes=[int(group.sum()) for group in blend.groups()], shared=shared)
    blend.fit_seconds.update(scorer=time.perf_counter() - start, ranker=scorer.ranker_seconds)
    if held_out is not None and held_out.texts is not None:
        start = time.perf_counter()
        model_scores = pipeline.predict(held_out.texts, top_k=RECALL_K)
        info = blend.fit_weights(held_out.texts, model_scores, full.encode(held_out.labels).Y)
        blend.fit_seconds["weights"] = time.perf_counter() - start
        log.info("label texts: %d labels added; weights %s", len(full) - len(vocab), info)
    return Pipeline(pipeline.model, full, pipeline.featurizer, freq, pipeline.n_train, pipeline.propensity,
                    dataset=pipeline.dataset, label_names=dataset.label_names(), feature_norm=pipeline.feature_norm,
                    label_text=blend)


def label_text_columns(dataset: Dataset, vocab: LabelVocab, train_split: Split, zero_shot: str
                       ) -> tuple[LabelVocab, list[str]]:
    """The model's labels followed by those ``--zero-shot`` makes it know by their text, and each
    one's text ('' for a label without one)."""
    if zero_shot not in ZERO_SHOT:
        raise XMCError(f"--zero-shot must be one of {', '.join(ZERO_SHOT)}, got {zero_shot!r}")
    if train_split.texts is None:
        raise XMCError("--zero-shot compares raw texts with label texts; this dataset has bag-of-words only")
    texts = zero_shot_texts(dataset, zero_shot)
    full = LabelVocab(vocab.labels + sorted(label for label in texts if label not in vocab.index))
    return full, label_text_list(full.labels, texts)


def zero_shot_texts(dataset: Dataset, zero_shot: str) -> dict[str, str]:
    """The label texts that ``--zero-shot`` makes a model know (``splits``: of the labels any split
    uses; ``all``: every one)."""
    texts = dataset.label_texts()
    if not texts:
        raise XMCError(f"{dataset.name} has no label texts (label_texts.txt or {dataset.name}.json[.gz] in "
                       f"{dataset.path}); --zero-shot needs them")
    if zero_shot == "splits":
        used = {label for split in dataset.splits for labels in dataset.load(split).labels for label in labels}
        texts = {label: text for label, text in texts.items() if label in used}
    return texts


def label_side(dataset: Dataset, vocab: LabelVocab, Y: sp.csr_matrix, zero_shot: str | None
               ) -> tuple[LabelVocab, sp.csr_matrix, list[str]]:
    """For a model that reads label texts: the vocabulary (with ``zero_shot``, the labels known by
    text added after the training labels, with empty columns), and one text per label: its text, else
    its name, else the label itself."""
    texts = dataset.label_texts()
    if zero_shot is not None:
        known = zero_shot_texts(dataset, zero_shot)
        extra = sorted(label for label in known if label not in vocab.index)
        vocab = LabelVocab(vocab.labels + extra)
        Y = sp.csr_matrix((Y.data, Y.indices, Y.indptr), shape=(Y.shape[0], len(vocab)))
    names = dataset.label_names()
    return vocab, Y, [texts.get(label) or names.get(label) or label for label in vocab.labels]


def training_labels(dataset: Dataset, split: Split) -> tuple[LabelVocab, sp.csr_matrix]:
    """The label vocabulary of a training split (for bag-of-words, the header's full label list in
    index order) and its 0/1 label matrix."""
    vocab = LabelVocab.build(split.labels)
    if split.n_labels is not None:
        vocab = LabelVocab(dataset.bow_label_names(split.n_labels))
    return vocab, vocab.encode(split.labels).Y


def fit_inputs(model, split: Split, tfidf_cfg, feature_norm: str, name: str, extra_texts: list[str] | tuple = ()):
    """What ``model.fit`` reads from ``split`` (raw texts, TF-IDF rows or normalised features), and the
    featuriser fitted on the way (None unless TF-IDF), on the split's texts and ``extra_texts``
    (rows of the split's texts only)."""
    if model.input_kind == "texts":
        if split.texts is None:
            raise XMCError(f"{model.method} reads raw texts, but {name} holds bag-of-words features only")
        return split.texts, None
    if split.texts is not None:
        featurizer = TfidfFeaturizer(tfidf_cfg)
        rows = cached_fit_transform(featurizer, list(split.texts) + list(extra_texts))
        return (rows[:len(split.texts)] if extra_texts else rows), featurizer
    return normalize_rows(split.features, feature_norm), None


def _secondary_process() -> bool:
    """True in every process of a torchrun group but the first (read from torchrun's environment, so
    this module never imports torch)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0


def _calibrate(pipeline: Pipeline, split: Split, scores: sp.csr_matrix, where: str) -> None:
    """Fit the map from raw scores to probabilities on the held-out split's predictions."""
    truth = pipeline.vocab.encode(split.labels).Y
    if scores.nnz < 20 or truth.nnz == 0:
        return
    pipeline.calibration, info = fit_calibration(scores, truth)
    pipeline.calibration_info = {**info, "fitted_on": where}


def build_model(method: str, config: Config, ensemble: int):
    cls = model_class(method)
    if ensemble < 1:
        raise XMCError(f"--ensemble must be at least 1, got {ensemble}")
    if ensemble == 1:
        return cls(config)
    from xmc.models.ensemble import Ensemble, reseeded

    return Ensemble(None, [cls(reseeded(config, i)) for i in range(ensemble)])


def ensemble(models: list[str | os.PathLike], out: str | os.PathLike, combine: str = "softmax_average",
             overwrite: bool = False, weights: tuple[float, ...] | list[float] = ()) -> Pipeline:
    """One model folder from several trained ones over the same labels, whatever their methods and
    inputs (each member featurises the raw text itself), combined by score; ``weights`` (one per
    model, in order) weigh the combination, equal when empty."""
    from xmc.models.ensemble import Ensemble, EnsembleConfig, check_weights

    if len(models) < 2:
        raise XMCError("an ensemble needs at least two models")
    try:
        config = EnsembleConfig(combine=combine, weights=tuple(float(w) for w in weights))
        check_weights(config.weights, len(models))
    except ValueError as e:
        raise XMCError(str(e)) from None
    check_target(out, overwrite)
    pipelines = [load(m) for m in models]
    first = pipelines[0]
    for path, p in zip(models[1:], pipelines[1:], strict=True):
        if p.vocab.labels != first.vocab.labels:
            raise XMCError(f"{path} was trained on other labels than {models[0]}; "
                           "ensemble members must share labels.txt")
        if p.input_kind != first.input_kind:
            raise XMCError(f"{path} reads {p.input_kind} but {models[0]} reads {first.input_kind}")
    model = Ensemble(config, pipelines)
    pipeline = Pipeline(model, first.vocab, None, first.label_freq, first.n_train, first.propensity,
                        dataset=first.dataset)
    pipeline.save(out, overwrite=overwrite)
    return pipeline
