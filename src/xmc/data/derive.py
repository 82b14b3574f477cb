"""Derived datasets: the same documents and labels with another text field (``xmc data derive``).

EURLEX57K-titles, the project's short-text benchmark, is EURLEX57K with each document's ``title``
(from ``{split}_meta.jsonl.gz``) as its text: ``xmc data derive EURLEX57K --text-field title --out
DIR/EURLEX57K-titles``. Labels are copied line for line, and the label names go along as
``label_names.tsv``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from xmc.data.datasets import Dataset
from xmc.data.formats import read_lines, write_text_split
from xmc.data.label_names import TSV_NAME
from xmc.exceptions import DataFormatError, DatasetNotFoundError, XMCError
from xmc.utils.folders import atomic_folder, check_target

META = "{split}_meta.jsonl"


def derive(dataset: Dataset, text_field: str, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``out``: every split of ``dataset`` whose meta file has ``text_field``, with that field
    (whitespace collapsed) as the text; the same labels and label names."""
    if dataset.kind != "text":
        raise XMCError(f"{dataset.name} is a bag-of-words dataset; only text datasets have other text fields")
    out = Path(out)
    check_target(out, overwrite, owned=_is_dataset)
    splits = [s for s in dataset.splits if _meta_path(dataset, s) is not None]
    if not splits:
        raise DatasetNotFoundError(f"{dataset.path} has no '{META.format(split='<split>')}[.gz]' files to take "
                                   f"the field {text_field!r} from")
    with atomic_folder(out, overwrite, owned=_is_dataset) as tmp:
        for split in splits:
            texts = _field(_meta_path(dataset, split), text_field)
            labels = dataset.load(split).labels
            if len(texts) != len(labels):
                raise DataFormatError(f"{_meta_path(dataset, split)} has {len(texts)} lines but the split has "
                                      f"{len(labels)} documents")
            write_text_split(tmp, split, texts, labels)
        names = dataset.label_names()
        if names:
            (tmp / TSV_NAME).write_text("".join(f"{k}\t{' '.join(v.split())}\n" for k, v in sorted(names.items())),
                                        encoding="utf-8")
    return out


def _is_dataset(folder: Path) -> bool:
    return any(folder.glob("*_texts.txt*"))


def _meta_path(dataset: Dataset, split: str) -> Path | None:
    for suffix in (".jsonl.gz", ".jsonl"):
        path = dataset.path / f"{split}_meta{suffix}"
        if path.is_file():
            return path
    return None


def _field(path: Path, name: str) -> list[str]:
    out = []
    for line_no, line in enumerate(read_lines(path), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise DataFormatError(f"{path}:{line_no}: not a JSON object") from None
        value = record.get(name) if isinstance(record, dict) else None
        if not isinstance(value, str):
            raise DataFormatError(f"{path}:{line_no}: no text field {name!r}")
        out.append(" ".join(value.split()))
    return out

