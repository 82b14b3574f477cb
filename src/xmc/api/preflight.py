"""``xmc train --dry-run``: what a training run will cost, from short measured runs, before it runs.

The data are read once, here. Then the same featuriser and model are fitted on random samples of
the training documents (by default 1/16, 1/8 and 1/4 of them, at most 100,000; 1/64, 1/32 and 1/16 for
the neural methods, whose time is epochs times documents), each in a fresh
process of its own that reports its time and its peak resident memory (Python, modules, the
sample's data, the fit: what the real run's process will hold, at a smaller size), and one more on
100 documents gives the baseline of memory (Python, modules, compiled kernels). Time is the
least-squares line ``a + b n`` through the samples read at every document; memory is the baseline
plus a share per document and a share per label seen, fitted on the samples and read at the full
run's documents and labels (see :func:`_extrapolate`).

The estimate covers featurising and fitting; evaluating on the dev split and saving come after
the fit and are not timed.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import traceback
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls

from xmc.api.config import features_config, method_config
from xmc.api.training import build_model, fit_inputs, training_labels
from xmc.data.datasets import Split, resolve
from xmc.exceptions import XMCError
from xmc.tree.label_tree import TreeConfig, tree_shape
from xmc.utils.memory import available_bytes, format_size, parse_size, peak_rss_bytes, rss_bytes

log = logging.getLogger(__name__)
FRACTIONS = (1 / 16, 1 / 8, 1 / 4)  # on EURLEX57K, 1/32-1/8 overestimated the peak by 45%: too
# small a sample to see the vocabulary and the labels level off
NEURAL_FRACTIONS = (1 / 64, 1 / 32, 1 / 16)  # a neural fit's time is epochs x documents: small samples do
MIN_SAMPLE = 500
BASELINE_SAMPLE = 100  # smaller samples measure start-up costs more than the work
MAX_SAMPLE = 100_000


@dataclass
class Sample:
    n_docs: int
    n_labels: int
    n_features: int
    seconds: float
    peak_bytes: int  # the sample's process at its peak: Python, modules, the sample's data and the fit


@dataclass
class Preflight:
    method: str
    data: str
    n_docs: int
    n_labels: int
    n_features: int
    features_measured: bool  # False: the TF-IDF vocabulary size is extrapolated from the samples
    levels: list[int] | None
    samples: list[Sample] = field(default_factory=list)
    baseline_bytes: int = 0  # peak of a fit on BASELINE_SAMPLE documents
    peak_bytes: int = 0
    seconds: float = 0.0
    max_memory: int | None = None
    max_memory_source: str = ""

    def summary(self) -> str:
        features = f"{self.n_features:,}" if self.features_measured else f"about {self.n_features:,} (TF-IDF)"
        lines = [f"dry run: {self.method} on {self.data}",
                 f"  documents {self.n_docs:,}   labels {self.n_labels:,}   features {features}"]
        if self.levels:
            lines.append(f"  label tree: {len(self.levels)} levels of {', '.join(f'{n:,}' for n in self.levels)} "
                         "nodes")
        if self.baseline_bytes:
            lines.append(f"  baseline (a fit on {BASELINE_SAMPLE} documents): peak memory "
                         f"{format_size(self.baseline_bytes)}")
        for s in self.samples:
            lines.append(f"  measured on {s.n_docs:,} documents ({s.n_labels:,} labels): {s.seconds:.1f} s, "
                         f"peak memory {format_size(s.peak_bytes)}")
        limit = (f"{format_size(self.max_memory)} {self.max_memory_source}" if self.max_memory is not None
                 else "unknown on this system")
        lines.append(f"  estimate for {self.n_docs:,} documents: peak memory {format_size(self.peak_bytes)} "
                     f"(limit {limit}), time {_duration(self.seconds)} to featurise and fit")
        return "\n".join(lines)

    def check(self) -> None:
        """Refuse a run estimated to need more memory than allowed."""
        if self.max_memory is not None and self.peak_bytes > self.max_memory:
            raise XMCError(f"{self.method} on {self.data} is estimated to need {format_size(self.peak_bytes)} at its "
                           f"peak, more than the {format_size(self.max_memory)} {self.max_memory_source}; train on "
                           f"a machine with more memory, or raise the bound with --max-memory")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def preflight(method: str, data: str, *, split: str = "train", overrides: list[str] | tuple[str, ...] = (),
              ensemble: int = 1, max_memory: str | int | None = None, fractions: tuple[float, ...] | None = None,
              seed: int = 0, min_sample: int = MIN_SAMPLE) -> Preflight:
    """Estimate the peak memory and time of ``xmc train`` with these arguments (see the module doc)."""
    dataset = resolve(data)
    model_cfg, tfidf_cfg = method_config(method, overrides)
    norm = features_config(overrides).norm
    train_split = dataset.load(split)
    _, Y = training_labels(dataset, train_split)
    n = Y.shape[0]
    tree = getattr(model_cfg, "tree", None)
    report = Preflight(method, f"{dataset.name}/{split}", n, Y.shape[1],
                       train_split.features.shape[1] if train_split.features is not None else 0,
                       train_split.features is not None, tree_shape(Y.shape[1], tree)
                       if isinstance(tree, TreeConfig) else None)
    if fractions is None:
        fractions = NEURAL_FRACTIONS if build_model(method, model_cfg, 1).input_kind == "texts" else FRACTIONS
    rng = np.random.default_rng(seed)
    sizes = _sample_sizes(n, fractions, min_sample)
    if len(sizes) > 1:  # the baseline: a fit on a handful of documents
        few = min(BASELINE_SAMPLE, sizes[0] // 2)
        rows = np.sort(rng.choice(n, few, replace=False))
        args = (method, model_cfg, tfidf_cfg, norm, ensemble, _subset(train_split, rows), Y[rows], dataset.name)
        report.baseline_bytes = _measure(few, args).peak_bytes
    for size in sizes:
        rows = np.sort(rng.choice(n, size, replace=False))
        report.samples.append(_measure(size, (method, model_cfg, tfidf_cfg, norm, ensemble,
                                              _subset(train_split, rows), Y[rows], dataset.name)))
    _extrapolate(report, getattr(tfidf_cfg, "max_features", None))
    report.max_memory, report.max_memory_source = _memory_bound(max_memory)
    return report


def _sample_sizes(n: int, fractions: tuple[float, ...], min_sample: int) -> list[int]:
    if n <= min_sample * 4:
        return [n]  # small enough to measure the run itself
    return sorted({int(np.clip(round(f * n), min_sample, min(MAX_SAMPLE, n))) for f in fractions})


def _subset(split: Split, rows: np.ndarray) -> Split:
    return Split(split.name, [split.labels[i] for i in rows],
                 texts=[split.texts[i] for i in rows] if split.texts is not None else None,
                 features=split.features[rows] if split.features is not None else None, n_labels=split.n_labels)


def _extrapolate(report: Preflight, max_features: int | None) -> None:
    """Time: the least-squares line ``a + b n`` through the samples, read at every document (slope and
    intercept at least 0). Memory: the baseline (a fit on a handful of documents: Python, modules,
    compiled kernels) plus what grows with the documents and with the labels they bring, fitted by
    non-negative least squares on the samples and read at the full run's documents and labels (a sample
    sees only some labels; the line in documents alone overshot by a third at 100k labels). The TF-IDF
    vocabulary: Heaps' law through the samples."""
    n = np.array([s.n_docs for s in report.samples], float)
    y = np.array([s.seconds for s in report.samples], float)
    if n.size > 1:
        slope, intercept = np.polyfit(n, y, 1)
        report.seconds = max(intercept, 0.0) + max(slope, 0.0) * report.n_docs
    else:
        report.seconds = y[0] * report.n_docs / n[0]
    # more documents never take less: where the samples' time is mostly fixed costs (start-up, kernels
    # loading) their noise can tilt the line below the largest sample, which is a floor
    report.seconds = max(report.seconds, float(y.max()))
    base = report.baseline_bytes
    grown = np.array([s.peak_bytes for s in report.samples], float) - base
    labels = np.array([s.n_labels for s in report.samples], float)
    if n.size > 1:
        (per_doc, per_label), _ = nnls(np.c_[n, labels], np.maximum(grown, 0.0))
        report.peak_bytes = int(round(base + per_doc * report.n_docs + per_label * report.n_labels))
    else:
        report.peak_bytes = int(round(base + max(grown[0], 0.0) * report.n_docs / n[0]))
    report.peak_bytes = max(report.peak_bytes, max(s.peak_bytes for s in report.samples))
    if not report.features_measured:
        v = np.array([s.n_features for s in report.samples], float)
        if n.size > 1 and np.all(v > 0):
            beta, log_k = np.polyfit(np.log(n), np.log(v), 1)
            report.n_features = int(round(np.exp(log_k) * report.n_docs ** min(max(beta, 0.0), 1.0)))
            report.n_features = min(report.n_features, max_features or report.n_features)
        else:
            report.n_features = int(v[-1])


def _memory_bound(max_memory: str | int | None) -> tuple[int | None, str]:
    if max_memory is not None:
        return parse_size(max_memory), "set by --max-memory"
    available = available_bytes()
    if available is None:
        return None, ""
    return available + rss_bytes(), "available now"


def _fit_sample(method, model_cfg, tfidf_cfg, norm, ensemble, split, Y, name) -> tuple[int, int]:
    """Featurise and fit on a sample the way ``xmc train`` does; its (labels, features)."""
    keep = np.flatnonzero(np.diff(sp.csc_matrix(Y).indptr))  # labels with a document in the sample
    Y = sp.csr_matrix(Y[:, keep])
    model = build_model(method, model_cfg, ensemble)
    inputs, featurizer = fit_inputs(model, split, tfidf_cfg, norm, name)
    model.fit(inputs, Y)
    n_features = featurizer.n_features_ if featurizer is not None else getattr(inputs, "shape", (0, 0))[1]
    return Y.shape[1], int(n_features)


def _measure(size: int, args: tuple) -> Sample:
    """Fit in a fresh (spawned) process; its seconds and its whole peak of resident memory.

    Spawned, not forked: a process that has already run OpenMP threads (numba, torch) cannot fork
    safely, and a fresh process is what the real run will be. The sample goes through a pipe after
    the start, not as the process's arguments: a child that dies early then shows as a broken pipe
    here (CPython's spawn blocks for ever writing large arguments to a child that is gone)."""
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=_child, args=(there,), daemon=True)
    child.start()
    there.close()
    try:
        here.send(args)
        result = here.recv()
    except (EOFError, OSError):
        child.join()
        raise XMCError(f"the dry run's sample fit died (exit code {child.exitcode}; out of memory?)") from None
    finally:
        here.close()
    child.join()
    if "error" in result:
        raise XMCError(f"the dry run's sample fit failed: {result['error']}")
    return Sample(**{**result, "n_docs": size})


def _child(conn) -> None:
    try:
        args = conn.recv()
        t0 = time.perf_counter()
        n_labels, n_features = _fit_sample(*args)
        conn.send({"n_labels": n_labels, "n_features": n_features, "seconds": time.perf_counter() - t0,
                   "peak_bytes": peak_rss_bytes()})
    except BaseException as exc:  # reported to the parent, which raises it as a user-facing error
        log.debug("sample fit failed:\n%s", traceback.format_exc())
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()
