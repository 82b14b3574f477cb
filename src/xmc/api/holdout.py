"""Where a training run makes its choices and where it reports: never the test split.

Every choice made on data (a neural method's best epoch, the score calibration and its thresholds,
the label-text blend's weights, ``update``'s calibration) is made on the dataset's dev split (or
``valid``) when it has one. A dataset with train and test only gets a seeded slice held out of its
training split instead (10%, at most 5,000 documents; those documents are not used to fit the
model). The test split is only reported on, and labelled so. Each choice records the documents it
was made on as ``fitted_on`` in the model folder's ``xmc.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xmc.data.datasets import Dataset, Split

DEV_SPLITS = ("dev", "valid")
HOLDOUT_FRACTION = 0.1
HOLDOUT_MAX = 5_000
HOLDOUT_MIN_TRAIN = 20  # below this many training documents nothing is held out (and nothing chosen)
HOLDOUT_SEED = 0


@dataclass
class Plan:
    """The documents the model is fitted on, those choices are made on, and those reported on."""

    fit: Split
    choose: Split | None = None
    choose_name: str | None = None  # e.g. "EURLEX57K/dev" or "Bibtex/train held out (739 of 7,395, seed 0)"
    report: Split | None = None
    report_name: str | None = None

    @property
    def same(self) -> bool:
        """The report split is the choice split (dev): one prediction serves both."""
        return self.report is self.choose


def dev_split(dataset: Dataset, train_split: str) -> str | None:
    return next((s for s in DEV_SPLITS if s != train_split and dataset.has_split(s)), None)


def plan(dataset: Dataset, train: Split, train_name: str, eval_split: str | None) -> Plan:
    """The :class:`Plan` of a run that trains on ``train`` (the split named ``train_name``) and was
    asked to evaluate on ``eval_split`` (``"auto"``: dev, else test; ``None``: neither choose nor
    report)."""
    if eval_split is None:
        return Plan(train)
    dev = dev_split(dataset, train_name)
    if dev is not None:
        fit, choose, choose_name = train, dataset.load(dev), f"{dataset.name}/{dev}"
    else:
        fit, choose, choose_name = hold_out(train, dataset.name, train_name)
    if eval_split == "auto":
        eval_split = dev or next((s for s in ("test",) if s != train_name and dataset.has_split(s)), None)
    if eval_split is None:
        return Plan(fit, choose, choose_name, choose, choose_name)
    if eval_split == dev:
        return Plan(fit, choose, choose_name, choose, choose_name)
    report_name = f"{dataset.name}/{eval_split}"
    return Plan(fit, choose, choose_name, dataset.load(eval_split), report_name)


def hold_out(train: Split, dataset_name: str, train_name: str) -> tuple[Split, Split | None, str | None]:
    """``train`` less a seeded random slice, and the slice (None when the split is too small)."""
    n = len(train)
    if n < HOLDOUT_MIN_TRAIN:
        return train, None, None
    k = max(1, min(HOLDOUT_MAX, round(HOLDOUT_FRACTION * n)))
    order = np.random.default_rng(HOLDOUT_SEED).permutation(n)
    held, kept = np.sort(order[:k]), np.sort(order[k:])
    name = f"{dataset_name}/{train_name} held out ({k:,} of {n:,} documents, seed {HOLDOUT_SEED})"
    return subset(train, kept, train.name), subset(train, held, f"{train_name}-held-out"), name


def subset(split: Split, rows: np.ndarray, name: str) -> Split:
    return Split(name, [split.labels[i] for i in rows],
                 texts=None if split.texts is None else [split.texts[i] for i in rows],
                 features=None if split.features is None else split.features[rows],
                 n_labels=split.n_labels)
