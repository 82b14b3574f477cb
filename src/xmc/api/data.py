"""Datasets: look-up, description, download, synthetic sets and derived text fields."""

from __future__ import annotations

import os
from pathlib import Path

from xmc.data.datasets import Dataset, resolve
from xmc.exceptions import XMCError


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


def import_dataset(path: str | os.PathLike, out: str | os.PathLike, *, text_fields: tuple[str, ...] = ("text",),
                   labels_field: str = "labels", label_sep: str | None = None, id_field: str | None = None,
                   split_field: str | None = None, fractions: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0,
                   skip_bad: bool = False, file_format: str | None = None,
                   label_names: str | os.PathLike | None = None, overwrite: bool = False):
    """``xmc data import``: a JSONL, CSV/TSV or Parquet file into a dataset folder
    (:mod:`xmc.data.importer`); returns its :class:`~xmc.data.importer.ImportReport`."""
    from xmc.data.importer import ImportSpec, import_file

    spec = ImportSpec(tuple(text_fields), labels_field, label_sep, id_field, split_field, tuple(fractions), seed,
                      skip_bad, file_format)
    return import_file(path, out, spec, label_names, overwrite)
