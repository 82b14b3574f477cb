"""Dataset folders: name resolution through ``XMC_DATA_DIR`` and loading of splits."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import scipy.sparse as sp

from xmc.data.formats import read_bow, read_lines, read_text_split
from xmc.data.label_names import find_label_names
from xmc.data.label_texts import find_label_texts
from xmc.exceptions import DatasetNotFoundError

DATA_DIR_ENV = "XMC_DATA_DIR"
_TEXT_RE = re.compile(r"^(?P<split>[A-Za-z0-9]+)_texts\.txt(\.gz)?$")
_BOW_RE = re.compile(r"^(?P<split>[A-Za-z0-9]+)_data\.txt(\.gz)?$")


@dataclass
class Split:
    """One split: raw texts (text datasets) or features (bag-of-words), and label tokens."""

    name: str
    labels: list[list[str]]
    texts: list[str] | None = None
    features: sp.csr_matrix | None = None
    n_labels: int | None = None  # bag-of-words only: the header's label count

    def __len__(self) -> int:
        return len(self.labels)


class Dataset:
    """A dataset folder in the text layout or the XC bag-of-words layout."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise DatasetNotFoundError(f"dataset folder {self.path} does not exist")
        self.name = self.path.name
        self._text = self._scan(_TEXT_RE)
        self._bow = self._scan(_BOW_RE)
        if not self._text and not self._bow:
            raise DatasetNotFoundError(
                f"{self.path} holds no '{{split}}_texts.txt[.gz]' nor '{{split}}_data.txt[.gz]' files"
            )

    def _scan(self, pattern: re.Pattern) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for p in sorted(self.path.iterdir()):
            m = pattern.match(p.name)
            if m:
                split = m.group("split")
                split = "all" if split.lower() == self.name.lower() else split
                found.setdefault(split, p)
        return found

    @property
    def kind(self) -> str:
        return "text" if self._text else "bow"

    @property
    def splits(self) -> list[str]:
        order = {"train": 0, "dev": 1, "valid": 1, "test": 2}
        names = self._text or self._bow
        return sorted(names, key=lambda s: (order.get(s, 3), s))

    def has_split(self, split: str) -> bool:
        return split in (self._text or self._bow)

    def load(self, split: str) -> Split:
        if not self.has_split(split):
            raise DatasetNotFoundError(
                f"dataset {self.name} has no split {split!r} in {self.path}; available: {', '.join(self.splits)}"
            )
        if self._text:
            texts_path = self._text[split]
            labels_path = _sibling(texts_path, "_texts", "_labels")
            texts, labels = read_text_split(texts_path, labels_path)
            return Split(split, labels, texts=texts)
        X, Y = read_bow(self._bow[split])
        names = self.bow_label_names(Y.shape[1])
        labels = [[names[j] for j in Y.indices[Y.indptr[i] : Y.indptr[i + 1]]] for i in range(Y.shape[0])]
        return Split(split, labels, features=X, n_labels=Y.shape[1])

    def bow_label_names(self, n_labels: int) -> list[str]:
        """Names from ``labels.txt`` when it has one per label, else the indices as strings."""
        path = self.path / "labels.txt"
        if path.is_file():
            names = [n.strip().replace(" ", "_") for n in read_lines(path)]
            if len(names) == n_labels and len(set(names)) == n_labels and all(names):
                return names
        return [str(j) for j in range(n_labels)]

    def label_names(self) -> dict[str, str]:
        """Readable names of the labels (:mod:`xmc.data.label_names`); ``{}`` when the folder has none."""
        return find_label_names(self.path)  # its name files are named after the folder, as the dataset is

    def label_texts(self) -> dict[str, str]:
        """What each label means, as text (:mod:`xmc.data.label_texts`); ``{}`` when the folder has none.
        It may cover labels no split uses (EUROVOC's concepts without documents)."""
        return find_label_texts(self.path)


def _sibling(path: Path, old: str, new: str) -> Path | None:
    for suffix in (".txt.gz", ".txt"):
        candidate = path.with_name(path.name.split(old)[0] + new + suffix)
        if candidate.is_file():
            return candidate
    return None


def data_dirs() -> list[Path]:
    raw = os.environ.get(DATA_DIR_ENV, "")
    return [Path(p) for p in raw.split(os.pathsep) if p]


def resolve(name_or_path: str | os.PathLike) -> Dataset:
    """A dataset by folder path, or by name (case-insensitive) inside ``XMC_DATA_DIR``."""
    direct = Path(name_or_path)
    if direct.is_dir():
        return Dataset(direct)
    name = str(name_or_path)
    for root in data_dirs():
        if not root.is_dir():
            continue
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name.lower() == name.lower():
                return Dataset(child)
    where = ", ".join(str(p) for p in data_dirs()) or f"nowhere (set {DATA_DIR_ENV})"
    raise DatasetNotFoundError(f"dataset {name!r} not found: not a folder, and not in {where}")


def available() -> list[str]:
    names = []
    for root in data_dirs():
        if root.is_dir():
            names += [c.name for c in sorted(root.iterdir()) if c.is_dir()]
    return names
