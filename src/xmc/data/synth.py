"""Synthetic bag-of-words datasets with the shape of the large XC sets (``xmc data synth``).

No public set with hundreds of thousands of labels is available offline, so one is generated:

- label frequencies follow a power law (label j is drawn with weight ``(j + 1) ** -alpha``), which
  gives a few head labels and a long tail seen a handful of times;
- about ``labels_per_doc`` labels per document (1 + Poisson) and ``nnz_per_doc`` nonzero features;
- every label has a *topic*: a small set of features it emits; a document draws most of its words
  from its labels' topics and the rest from a global Zipf background, so features predict labels
  (P@k is far above chance and separates methods) without being trivial.

Everything is deterministic from ``seed`` and generated in chunks of documents, so memory is bounded
by the topics (labels x topic size) plus one chunk, whatever the number of documents. The files are
the XC format (``train_data.txt.gz`` / ``test_data.txt.gz``, header ``N D L``), values are counts.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numba as nb
import numpy as np

from xmc.exceptions import InvalidInputError
from xmc.utils.folders import atomic_folder, check_target
from xmc.utils.progress import progress


@dataclass(frozen=True)
class SynthSpec:
    n_train: int
    n_test: int
    n_features: int
    n_labels: int
    labels_per_doc: float = 5.0
    nnz_per_doc: int = 75
    topic_size: int = 24
    topic_share: float = 0.7  # share of a document's words drawn from its labels' topics
    alpha: float = 0.85  # power-law exponent of label frequencies
    seed: int = 0


PRESETS = {
    "amazon-670k": SynthSpec(490_449, 153_025, 135_909, 670_091),
    "1m": SynthSpec(600_000, 150_000, 200_000, 1_000_000),
    "100k": SynthSpec(150_000, 30_000, 100_000, 100_000),
    "10k": SynthSpec(50_000, 10_000, 50_000, 10_000),
}
CHUNK = 20_000


def _zipf_weights(n: int, alpha: float) -> np.ndarray:
    w = (np.arange(1, n + 1, dtype=np.float64)) ** -alpha
    return w / w.sum()


def _topics(spec: SynthSpec) -> np.ndarray:
    """``(n_labels, topic_size)`` feature ids; each label's topic mixes Zipf-popular features with
    uniformly chosen ones, so labels share some words but are told apart by others."""
    rng = np.random.default_rng([spec.seed, 1])
    popular = rng.choice(spec.n_features, size=(spec.n_labels, spec.topic_size // 3),
                         p=_zipf_weights(spec.n_features, 1.0))
    rare = rng.integers(0, spec.n_features, size=(spec.n_labels, spec.topic_size - spec.topic_size // 3))
    return np.concatenate([popular, rare], axis=1).astype(np.int32)


@nb.njit(cache=True)
def _format(label_ptr, labels, feat_ptr, feats, counts, out):
    """The XC lines of a chunk into ``out`` (bytes); returns the number of bytes written."""
    pos = 0
    for i in range(label_ptr.size - 1):
        for j in range(label_ptr[i], label_ptr[i + 1]):
            if j > label_ptr[i]:
                out[pos] = 44  # ,
                pos += 1
            pos = _write_int(labels[j], out, pos)
        for j in range(feat_ptr[i], feat_ptr[i + 1]):
            out[pos] = 32
            pos += 1
            pos = _write_int(feats[j], out, pos)
            out[pos] = 58  # :
            pos += 1
            pos = _write_int(counts[j], out, pos)
        out[pos] = 10
        pos += 1
    return pos


@nb.njit(cache=True, inline="always")
def _write_int(value, out, pos):
    if value == 0:
        out[pos] = 48
        return pos + 1
    start = pos
    while value > 0:
        out[pos] = 48 + value % 10
        value //= 10
        pos += 1
    out[start:pos] = out[start:pos][::-1].copy()
    return pos


def _chunk(spec: SynthSpec, topics: np.ndarray, label_p: np.ndarray, feat_p: np.ndarray, split: int, c: int,
           n: int) -> bytes:
    rng = np.random.default_rng([spec.seed, 2, split, c])
    n_labels = np.minimum(1 + rng.poisson(spec.labels_per_doc - 1, size=n), 50)
    labels = rng.choice(spec.n_labels, size=int(n_labels.sum()), p=label_p).astype(np.int32)
    label_ptr = np.concatenate([[0], np.cumsum(n_labels)])
    doc_of_label = np.repeat(np.arange(n), n_labels)
    n_topic = rng.binomial(spec.nnz_per_doc, spec.topic_share, size=n)
    # topic words: for each word, one of the document's labels, then one word of that label's topic
    pick = (rng.random(int(n_topic.sum())) * np.repeat(n_labels, n_topic)).astype(np.int64)
    which = label_ptr[np.repeat(np.arange(n), n_topic)] + pick
    topic_words = topics[labels[which], rng.integers(0, spec.topic_size, size=which.size)]
    background = rng.choice(spec.n_features, size=int((spec.nnz_per_doc - n_topic).sum()), p=feat_p)
    docs = np.concatenate([np.repeat(np.arange(n), n_topic), np.repeat(np.arange(n), spec.nnz_per_doc - n_topic)])
    words = np.concatenate([topic_words, background]).astype(np.int64)
    key = np.unique(docs.astype(np.int64) * spec.n_features + words, return_counts=True)
    doc_ids, feat_ids = key[0] // spec.n_features, (key[0] % spec.n_features).astype(np.int32)
    feat_ptr = np.searchsorted(doc_ids, np.arange(n + 1)).astype(np.int64)
    # labels of a document sorted and unique (a label drawn twice counts once)
    lkey = np.unique(doc_of_label.astype(np.int64) * spec.n_labels + labels)
    l_doc, l_ids = lkey // spec.n_labels, (lkey % spec.n_labels).astype(np.int32)
    l_ptr = np.searchsorted(l_doc, np.arange(n + 1)).astype(np.int64)
    out = np.empty(int(24 * (l_ids.size + feat_ids.size) + 2 * n), np.uint8)
    size = _format(l_ptr, l_ids, feat_ptr, feat_ids, key[1].astype(np.int64), out)
    return out[:size].tobytes()


def generate(spec: SynthSpec, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the dataset folder ``out`` (``train_data.txt.gz``, ``test_data.txt.gz``)."""
    for name in ("n_train", "n_features", "n_labels", "nnz_per_doc", "topic_size"):
        if getattr(spec, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be at least 1")
    if spec.n_test < 0 or spec.labels_per_doc < 1 or not 0 <= spec.topic_share <= 1 or spec.alpha <= 0:
        raise InvalidInputError("synthetic data needs labels_per_doc >= 1, topic_share in [0, 1], alpha > 0")
    out = Path(out)
    check_target(out, overwrite, owned=lambda p: (p / "train_data.txt.gz").is_file())
    topics = _topics(spec)
    label_p = _zipf_weights(spec.n_labels, spec.alpha)
    label_p = label_p[np.random.default_rng([spec.seed, 3]).permutation(spec.n_labels)]  # head labels anywhere
    feat_p = _zipf_weights(spec.n_features, 1.0)
    with atomic_folder(out, overwrite, owned=lambda p: (p / "train_data.txt.gz").is_file()) as tmp:
        for split, (name, n) in enumerate((("train", spec.n_train), ("test", spec.n_test))):
            if n == 0:
                continue
            with gzip.open(tmp / f"{name}_data.txt.gz", "wb", compresslevel=3) as f:
                f.write(f"{n} {spec.n_features} {spec.n_labels}\n".encode())
                for c, start in enumerate(progress(range(0, n, CHUNK), desc=f"synth {name}", unit="chunk")):
                    f.write(_chunk(spec, topics, label_p, feat_p, split, c, min(CHUNK, n - start)))
        (tmp / "README.txt").write_text(f"synthetic XC dataset: {spec}\n", encoding="utf-8")
    return out
