"""Summary statistics of a dataset (``xmc data info``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from xmc.data.datasets import Dataset

HEAD_MIN_DOCS = 50  # "frequent" in the EURLEX57K paper: at least 50 training documents
TAIL_MAX_DOCS = 9


@dataclass
class SplitStats:
    split: str
    n_docs: int
    n_labels_used: int
    labels_per_doc: float
    tokens_per_doc: float | None
    tokens_median: float | None
    empty_docs: int
    unlabelled_docs: int


@dataclass
class DatasetStats:
    name: str
    kind: str
    splits: list[SplitStats]
    n_labels_total: int
    n_train_labels: int
    unseen_in_train: int  # labels used in some other split but never in train
    head: int
    torso: int
    tail: int
    freq_quantiles: dict[str, float] = field(default_factory=dict)
    labels_with_text: int = 0  # labels the folder gives a text for (label_texts.txt or descriptors)
    text_without_train_docs: int = 0  # of those, labels with no training document (zero-shot candidates)
    unseen_with_text: int = 0  # labels used outside train, never in train, that have a text


def describe(dataset: Dataset) -> DatasetStats:
    per_split, counters = [], {}
    for split in dataset.splits:
        data = dataset.load(split)
        counts = Counter(label for labels in data.labels for label in labels)
        counters[split] = counts
        if data.texts is not None:
            tokens = np.array([len(t.split()) for t in data.texts], dtype=np.int64)
        else:
            tokens = np.diff(data.features.indptr)
        n = len(data)
        per_split.append(
            SplitStats(
                split=split,
                n_docs=n,
                n_labels_used=len(counts),
                labels_per_doc=sum(counts.values()) / n if n else 0.0,
                tokens_per_doc=float(tokens.mean()) if n else None,
                tokens_median=float(np.median(tokens)) if n else None,
                empty_docs=int((tokens == 0).sum()),
                unlabelled_docs=sum(1 for labels in data.labels if not labels),
            )
        )
    all_labels = set().union(*counters.values()) if counters else set()
    train = counters.get("train") or counters.get("all") or Counter()
    freqs = np.array(sorted(train.values()), dtype=np.int64)
    quantiles = {}
    if freqs.size:
        for q in (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0):
            quantiles[f"q{int(q * 100)}"] = float(np.quantile(freqs, q))
    return DatasetStats(
        name=dataset.name,
        kind=dataset.kind,
        splits=per_split,
        n_labels_total=len(all_labels),
        n_train_labels=len(train),
        unseen_in_train=len(all_labels - set(train)),
        head=int((freqs >= HEAD_MIN_DOCS).sum()),
        torso=int(((freqs > TAIL_MAX_DOCS) & (freqs < HEAD_MIN_DOCS)).sum()),
        tail=int((freqs <= TAIL_MAX_DOCS).sum()),
        freq_quantiles=quantiles,
        **_text_counts(dataset, set(train), all_labels),
    )


def _text_counts(dataset: Dataset, train: set[str], used: set[str]) -> dict[str, int]:
    texts = set(dataset.label_texts())
    return {"labels_with_text": len(texts), "text_without_train_docs": len(texts - train),
            "unseen_with_text": len((used - train) & texts)}


def format_stats(stats: DatasetStats) -> str:
    lines = [f"dataset {stats.name} ({stats.kind})", ""]
    unit = "tokens" if stats.kind == "text" else "features"
    lines.append(f"{'split':<8}{'docs':>9}{'labels used':>13}{'labels/doc':>12}{unit + '/doc':>14}"
                 f"{'median':>9}{'empty':>7}{'no label':>10}")
    for s in stats.splits:
        tok = f"{s.tokens_per_doc:.1f}" if s.tokens_per_doc is not None else "-"
        med = f"{s.tokens_median:.0f}" if s.tokens_median is not None else "-"
        lines.append(
            f"{s.split:<8}{s.n_docs:>9,}{s.n_labels_used:>13,}{s.labels_per_doc:>12.2f}{tok:>14}{med:>9}"
            f"{s.empty_docs:>7}{s.unlabelled_docs:>10}"
        )
    lines += [
        "",
        f"labels in all splits: {stats.n_labels_total:,}   in train: {stats.n_train_labels:,}   "
        f"never in train (zero-shot): {stats.unseen_in_train:,}",
        f"train label frequency: head (>= {HEAD_MIN_DOCS} docs) {stats.head:,}   "
        f"torso ({TAIL_MAX_DOCS + 1}-{HEAD_MIN_DOCS - 1}) {stats.torso:,}   tail (<= {TAIL_MAX_DOCS}) {stats.tail:,}",
    ]
    if stats.labels_with_text:
        lines.append(f"labels with a text: {stats.labels_with_text:,}   of them without training documents: "
                     f"{stats.text_without_train_docs:,}   zero-shot labels with a text: {stats.unseen_with_text:,}")
    if stats.freq_quantiles:
        quantiles = "  ".join(f"{k}={v:g}" for k, v in stats.freq_quantiles.items())
        lines.append("docs per train label, quantiles: " + quantiles)
    return "\n".join(lines)
