"""Loading a trained pipeline and predicting with it: splits, prediction files, raw texts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmc.data.datasets import Split, resolve
from xmc.data.vocab import LabelVocab
from xmc.exceptions import InvalidInputError, XMCError
from xmc.models.pipeline import Pipeline, ranked_labels
from xmc.models.pipeline import load as load_any
from xmc.utils.folders import OutputExistsError
from xmc.utils.io import atomic_file, save_csr
from xmc.utils.validation import check_k, check_texts


def load(folder: str | os.PathLike, *, quantize: bool = False) -> Pipeline:
    """A trained pipeline from its folder (bare model folders load with ``xmc.load``). ``quantize``:
    int8 CPU inference for the transformer encoders inside (faster on a CPU, a little less exact;
    ``benchmarks/results/serve.md`` has both); an error for a model without one."""
    obj = load_any(folder)
    if not isinstance(obj, Pipeline):
        raise XMCError(f"{folder} holds a bare model; train with `xmc train` to get a pipeline folder")
    if quantize and not obj.quantize():
        raise XMCError(f"{folder} holds a {obj.method} model, which has no transformer encoder to quantise")
    return obj


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
