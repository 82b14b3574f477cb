"""The one code path behind the CLI, the Python API and the HTTP server.

>>> import xmc                                                  # doctest: +SKIP
>>> result = xmc.api.train("xr-linear", "Reuters-21578", out="models/reuters")   # doctest: +SKIP
>>> xmc.api.evaluate("models/reuters", "Reuters-21578", "test")["P@1"]          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmc._config import Config
from xmc.data.datasets import Dataset, Split, resolve
from xmc.data.vocab import LabelVocab
from xmc.evaluation import DEFAULT_KS, load_predictions, metrics_of, scored, train_frequencies
from xmc.exceptions import InvalidInputError, XMCError
from xmc.features.normalize import FeaturesConfig, normalize_rows
from xmc.features.tfidf import TfidfConfig, TfidfFeaturizer
from xmc.metrics.calibration import fit_calibration
from xmc.metrics.report import RECALL_K
from xmc.models.base import model_class
from xmc.models.pipeline import Pipeline, ranked_labels
from xmc.models.pipeline import load as load_any
from xmc.utils.faults import kill_point
from xmc.utils.folders import OutputExistsError, check_target
from xmc.utils.io import atomic_file, save_csr
from xmc.utils.validation import check_k

log = logging.getLogger(__name__)
DEFAULT_METHOD = "xr-transformer"
DEFAULT_DATASET = "EURLEX57K"


@dataclass
class TrainResult:
    pipeline: Pipeline
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    eval_split: str | None = None
    path: Path | None = None


def load(folder: str | os.PathLike) -> Pipeline:
    """A trained pipeline from its folder (bare model folders load with ``xmc.load``)."""
    obj = load_any(folder)
    if not isinstance(obj, Pipeline):
        raise XMCError(f"{folder} holds a bare model; train with `xmc train` to get a pipeline folder")
    return obj


def method_config(method: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[Config, TfidfConfig]:
    """The method's default config and the TF-IDF config, with ``a.b=value`` overrides applied
    (keys starting with ``tfidf.`` go to the featuriser, ``features.`` to :func:`features_config`)."""
    cls = model_class(method)
    default = cls.default_config()
    overrides = [s for s in overrides if not s.startswith("features.")]
    if any(f.name == "tfidf" for f in dataclasses.fields(default)):  # the model owns its featuriser
        return default.with_overrides(overrides), TfidfConfig()
    tfidf_sets = [s[len("tfidf."):] for s in overrides if s.startswith("tfidf.")]
    model_sets = [s for s in overrides if not s.startswith("tfidf.")]
    return default.with_overrides(model_sets), TfidfConfig().with_overrides(tfidf_sets)


def features_config(overrides: list[str] | tuple[str, ...] = ()) -> FeaturesConfig:
    """How given feature rows (bag-of-words data) are normalised: ``features.norm=l2|l1|none``."""
    return FeaturesConfig().with_overrides([s[len("features."):] for s in overrides if s.startswith("features.")])


NEURAL_OPTIONS = ("encoder", "max_seq_len", "device", "threads")


def neural_overrides(method: str, **values: Any) -> list[str]:
    """``--set`` strings for the neural options (``encoder``, ``max_seq_len``, ``device``, ``threads``)
    of ``method``, wherever its config keeps them; an XMCError when the method has no such setting."""
    leaf = {"encoder": "name", "max_seq_len": "max_seq_len", "device": "device", "threads": "threads"}
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return []
    rows = [name for name, _, _ in model_class(method).default_config().help_rows()]
    out = []
    for option, value in given.items():
        parent = "encoder." if option in ("encoder", "max_seq_len") else ""
        keys = [r for r in rows if r.endswith("." + leaf[option]) and (not parent or r.startswith(parent))]
        if not keys:
            flags = ", ".join("--" + o.replace("_", "-") for o in NEURAL_OPTIONS)
            raise XMCError(f"{flags} apply to the neural methods, not {method}")
        out.append(f"{keys[0]}={value}")
    return out


def dataset_info(data: str | os.PathLike) -> str:
    """The table ``xmc data info`` prints: documents, labels, tokens and label frequencies per split."""
    from xmc.data.info import describe, format_stats

    return format_stats(describe(resolve(data)))


def fetch_dataset(name: str, to: str | os.PathLike, archive: str | os.PathLike | None = None) -> Path:
    """Download (or convert ``archive``) a public dataset into ``to`` (:mod:`xmc.data.fetch`)."""
    from xmc.data.fetch import fetch

    return fetch(name, to, archive=archive)


def datasets() -> list[str]:
    """The dataset names found in ``XMC_DATA_DIR``."""
    from xmc.data.datasets import available

    return available()


def dataset(data: str | os.PathLike) -> Dataset:
    return resolve(data)


def format_metrics(metrics: dict[str, Any], title: str = "") -> str:
    from xmc.metrics.report import format_report

    return format_report(metrics, title)


def default_config(method: str) -> dict[str, Any]:
    """``xmc config METHOD``: every setting with its default (the TF-IDF ones under ``tfidf``)."""
    model_cfg, tfidf_cfg = method_config(method)
    return {"tfidf": tfidf_cfg.to_dict(), "features": FeaturesConfig().to_dict(), **model_cfg.to_dict()}


def synth_dataset(out: str | os.PathLike, *, preset: str | None = None, n_train: int | None = None,
                  n_test: int | None = None, n_features: int | None = None, n_labels: int | None = None,
                  seed: int = 0, overwrite: bool = False) -> Path:
    """A synthetic XC bag-of-words set (:mod:`xmc.data.synth`): a preset's sizes, or given ones."""
    import dataclasses as dc

    from xmc.data.synth import PRESETS, SynthSpec, generate

    given = {k: v for k, v in dict(n_train=n_train, n_test=n_test, n_features=n_features,
                                   n_labels=n_labels).items() if v is not None}
    if preset is None:
        missing = [k for k in ("n_train", "n_features", "n_labels") if k not in given]
        if missing:
            flags = {"n_train": "--docs", "n_features": "--features", "n_labels": "--labels"}
            raise XMCError(f"give --preset or {', '.join(flags[k] for k in missing)}")
        given.setdefault("n_test", given["n_train"] // 4)
        spec = SynthSpec(**given, seed=seed)
    else:
        spec = dc.replace(PRESETS[preset], **given, seed=seed)
    return generate(spec, out, overwrite)


def derive_dataset(data: str | os.PathLike, text_field: str, out: str | os.PathLike,
                   overwrite: bool = False) -> Path:
    """A text dataset with another field as the text (e.g. EURLEX57K's titles): :mod:`xmc.data.derive`."""
    from xmc.data.derive import derive

    return derive(resolve(data), text_field, out, overwrite)


def _default_eval_split(dataset: Dataset, train_split: str) -> str | None:
    for split in ("dev", "valid", "test"):
        if split != train_split and dataset.has_split(split):
            return split
    return None


def train(method: str = DEFAULT_METHOD, data: str | os.PathLike = DEFAULT_DATASET,
          out: str | os.PathLike | None = None, *, split: str = "train",
          overrides: list[str] | tuple[str, ...] = (), config: Config | None = None, eval_split: str | None = "auto",
          fit_options: dict[str, Any] | None = None, ensemble: int = 1, overwrite: bool = False) -> TrainResult:
    """Train ``method`` on ``data``'s ``split``, save it to ``out`` and evaluate it on ``eval_split``
    (``"auto"``: dev, else test, when present; ``None``: skip).

    ``fit_options`` go to the model's ``fit`` (e.g. ``checkpoint_dir`` and ``resume`` for
    XR-Transformer). Text models also get the evaluation split as ``eval_set`` for their
    per-level log. ``ensemble > 1`` trains that many members with shifted seeds and combines
    their scores (:mod:`xmc.models.ensemble`).

    ``out`` must be new, empty, or (with ``overwrite``) an xmc model folder; this is checked before
    any work starts, and the old model stays intact until the new one is completely written."""
    if out is not None:
        check_target(out, overwrite)
    dataset = resolve(data)
    model_cfg, tfidf_cfg = method_config(method, overrides)
    feature_norm = features_config(overrides).norm
    if config is not None:
        model_cfg = config
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    train_split = dataset.load(split)
    vocab = LabelVocab.build(train_split.labels)
    if train_split.n_labels is not None:  # bag-of-words: the header's full label list, in index order
        vocab = LabelVocab(dataset.bow_label_names(train_split.n_labels))
    Y = vocab.encode(train_split.labels).Y
    names = dataset.label_names()  # read before training: a broken names file must not cost a training
    seconds["load"] = time.perf_counter() - t0
    model = _build_model(method, model_cfg, ensemble)
    featurizer = None
    t0 = time.perf_counter()
    if model.input_kind == "texts":
        if train_split.texts is None:
            raise XMCError(f"{method} reads raw texts, but {dataset.name} holds bag-of-words features only")
        inputs = train_split.texts
    elif train_split.texts is not None:
        featurizer = TfidfFeaturizer(tfidf_cfg)
        inputs = featurizer.fit_transform(train_split.texts)
    else:
        inputs = normalize_rows(train_split.features, feature_norm)
    seconds["features"] = time.perf_counter() - t0
    if eval_split == "auto":
        eval_split = _default_eval_split(dataset, split)
    fit_options = dict(fit_options or {})
    held_out = dataset.load(eval_split) if eval_split is not None else None
    if model.input_kind == "texts" and held_out is not None and held_out.texts is not None:
        fit_options.setdefault("eval_set", (held_out.texts, vocab.encode(held_out.labels).Y))
    t0 = time.perf_counter()
    model.fit(inputs, Y, **fit_options)
    seconds["fit"] = time.perf_counter() - t0
    freq = np.diff(sp.csc_matrix(Y).indptr)
    pipeline = Pipeline(model, vocab, featurizer, freq, Y.shape[0], dataset=dataset.name,
                        label_names=names, feature_norm=feature_norm if train_split.features is not None else "none")
    result = TrainResult(pipeline, seconds)
    if _secondary_process():  # under torchrun, the first process evaluates and saves; the others stop here
        return result
    if eval_split is not None:
        t0 = time.perf_counter()
        scores = predict_split(pipeline, held_out, top_k=RECALL_K)
        result.metrics = evaluate_split(pipeline, held_out, scores)
        result.eval_split = eval_split
        _calibrate(pipeline, held_out, scores, f"{dataset.name}/{eval_split}")
        result.metrics.update({k: v for k, v in pipeline.calibration_info.items() if k.startswith("ECE")})
        pipeline.metrics = {f"{dataset.name}/{eval_split}": result.metrics}
        seconds["evaluate"] = time.perf_counter() - t0
    if out is not None:
        result.path = pipeline.save(out, overwrite=overwrite)
        kill_point("train:saved")
    return result


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


def _build_model(method: str, config: Config, ensemble: int):
    cls = model_class(method)
    if ensemble < 1:
        raise XMCError(f"--ensemble must be at least 1, got {ensemble}")
    if ensemble == 1:
        return cls(config)
    from xmc.models.ensemble import Ensemble, reseeded

    return Ensemble(None, [cls(reseeded(config, i)) for i in range(ensemble)])


def methods() -> tuple[str, ...]:
    from xmc.models.base import method_names

    return method_names()


def combiners() -> tuple[str, ...]:
    from xmc.models.ensemble import COMBINERS

    return COMBINERS


def ensemble(models: list[str | os.PathLike], out: str | os.PathLike, combine: str = "softmax_average",
             overwrite: bool = False) -> Pipeline:
    """One model folder from several trained ones over the same labels, whatever their methods and
    inputs (each member featurises the raw text itself), combined by score."""
    from xmc.models.ensemble import Ensemble, EnsembleConfig

    if len(models) < 2:
        raise XMCError("an ensemble needs at least two models")
    check_target(out, overwrite)
    pipelines = [load(m) for m in models]
    first = pipelines[0]
    for path, p in zip(models[1:], pipelines[1:], strict=True):
        if p.vocab.labels != first.vocab.labels:
            raise XMCError(f"{path} was trained on other labels than {models[0]}; "
                           "ensemble members must share labels.txt")
        if p.input_kind != first.input_kind:
            raise XMCError(f"{path} reads {p.input_kind} but {models[0]} reads {first.input_kind}")
    model = Ensemble(EnsembleConfig(combine=combine), pipelines)
    pipeline = Pipeline(model, first.vocab, None, first.label_freq, first.n_train, first.propensity,
                        dataset=first.dataset)
    pipeline.save(out, overwrite=overwrite)
    return pipeline


def _pipeline(model: Pipeline | str | os.PathLike) -> Pipeline:
    return model if isinstance(model, Pipeline) else load(model)


def predict_split(model: Pipeline | str | os.PathLike, split: Split, *, top_k: int | None = None,
                  beam_size: int | None = None, **backend: Any) -> sp.csr_matrix:
    pipeline = _pipeline(model)
    return pipeline.predict(split.texts, split.features, top_k=top_k, beam_size=beam_size, **backend)


def predict(model: Pipeline | str | os.PathLike, data: str | os.PathLike, split: str = "test", *,
            top_k: int | None = None, beam_size: int | None = None,
            out: str | os.PathLike | None = None, overwrite: bool = False, backend: str = "local", workers: int = 2,
            address: str | None = None) -> sp.csr_matrix:
    """Scores ``(n_docs, n_labels)`` for one split; with ``out``, also written as ``.npz`` and ``.jsonl``
    (existing files there are replaced only with ``overwrite``)."""
    if out is not None:
        _prediction_paths(out, overwrite)
    pipeline = _pipeline(model)
    data_split = resolve(data).load(split)
    scores = predict_split(pipeline, data_split, top_k=top_k, beam_size=beam_size, backend=backend, workers=workers,
                           address=address)
    if out is not None:
        write_predictions(scores, pipeline.vocab, out, overwrite=overwrite)
    return scores


def _prediction_paths(out: str | os.PathLike, overwrite: bool) -> tuple[Path, Path]:
    base = Path(out)
    if base.suffix in (".npz", ".jsonl", ".json"):
        base = base.with_suffix("")
    paths = base.with_name(base.name + ".npz"), base.with_name(base.name + ".jsonl")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{' and '.join(existing)} already exist; pass --overwrite to replace them")
    return paths


def write_predictions(scores: sp.csr_matrix, vocab: LabelVocab, out: str | os.PathLike,
                      overwrite: bool = False) -> tuple[Path, Path]:
    """``OUT.npz`` (CSR scores), ``OUT.labels.txt`` (its columns' labels) and ``OUT.jsonl``
    (``{"id": row, "labels": [[label, score], ...]}`` best first), each written atomically."""
    npz, jsonl = _prediction_paths(out, overwrite)
    npz.parent.mkdir(parents=True, exist_ok=True)
    save_csr(npz, sp.csr_matrix(scores, dtype=np.float32))
    vocab.save(npz.with_name(npz.stem + ".labels.txt"))  # the columns, for `xmc evaluate --pred`
    with atomic_file(jsonl, "w") as f:
        for i, row in enumerate(ranked_rows(scores, vocab)):
            f.write(json.dumps({"id": i, "labels": [[lab, round(s, 6)] for lab, s in row]}, ensure_ascii=False) + "\n")
    return npz, jsonl


def ranked_rows(scores: sp.csr_matrix, vocab: LabelVocab) -> list[list[tuple[str, float]]]:
    """Each row's ``(label, score)`` pairs, best first."""
    return ranked_labels(scores, vocab.labels)


def predict_texts(model: Pipeline | str | os.PathLike, texts: list[str] | None = None, *,
                  features: sp.csr_matrix | None = None, top_k: int | None = 5, min_score: float = 0.0,
                  beam_size: int | None = None) -> list[list[tuple[str, float, str | None]]]:
    """Labels of new texts (or feature rows), best first, as ``(label, score, name)``: the same path
    ``xmc predict --text`` and ``xmc serve`` take. Scores are calibrated probabilities when the model
    has a calibration (fitted on its evaluation split at training time)."""
    pipeline = _pipeline(model)
    if texts is not None:
        texts = check_texts(texts)
    if not isinstance(min_score, (int, float)) or isinstance(min_score, bool) or not 0 <= min_score <= 1:
        raise InvalidInputError(f"min_score must be a number in [0, 1], got {min_score!r}")
    return pipeline.predict_rows(texts, features, top_k=check_k(top_k, "top_k"), min_score=float(min_score),
                                 beam_size=beam_size)


def load_features(path: str | os.PathLike) -> sp.csr_matrix:
    """Feature rows from a ``.npz`` CSR file (SciPy's layout), checked like a model's arrays."""
    from xmc.utils.io import load_csr

    return load_csr(path)


def check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise InvalidInputError(f"texts must be strings; item {bad} is a {type(texts[bad]).__name__}")
    return texts


def evaluate_split(pipeline: Pipeline, split: Split, scores: sp.csr_matrix | None = None, *,
                   ks=DEFAULT_KS, groups: bool = False) -> dict[str, Any]:
    """Metrics in percent (:func:`xmc.evaluation.metrics_of`), plus ``n_docs``, ``unseen_labels``
    (distinct labels absent from the training vocabulary, kept in the truth as misses) and the
    propensity constants; with ``groups``, per label group."""
    if scores is None:
        scores = predict_split(pipeline, split, top_k=max(RECALL_K, *ks))
    s = scored(scores, pipeline.vocab.labels, split, pipeline.label_freq, pipeline.n_train, pipeline.propensity)
    return metrics_of(s, ks, groups)


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
    metrics = evaluate_split(pipeline, part, ks=ks, groups=groups)
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
