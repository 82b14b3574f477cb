"""Label vocabulary: label tokens <-> column indices of ``Y``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import InvalidInputError, ModelFormatError
from xmc.utils.io import read_model_text, write_text


@dataclass(frozen=True)
class Encoded:
    """Labels of one split as a matrix, plus what the vocabulary could not place."""

    Y: sp.csr_matrix
    unseen_labels: tuple[str, ...]  # distinct labels absent from the vocabulary
    unseen_assignments: int  # (doc, label) pairs whose label is not in the vocabulary


class LabelVocab:
    """An ordered label list; built on the training split so unseen labels can be counted."""

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}
        if len(self.index) != len(self.labels):
            raise ValueError("label vocabulary has duplicate entries")

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def build(cls, label_lists: Iterable[Sequence[str]]) -> LabelVocab:
        """Labels in order of first appearance, which keeps ids stable across runs."""
        seen: dict[str, None] = {}
        for labels in label_lists:
            for label in labels:
                seen.setdefault(label, None)
        return cls(list(seen))

    def encode(self, label_lists: Sequence[Sequence[str]], keep_unseen: bool = False) -> Encoded:
        """Labels as a 0/1 matrix with one column per vocabulary entry.

        With ``keep_unseen`` the matrix gets one extra column per unseen label (after the
        vocabulary's columns), so an evaluation counts those labels as misses instead of
        silently dropping them.
        """
        ptr, idx = [0], []
        unseen: dict[str, int] = {}
        n_unseen_pairs = 0
        for labels in label_lists:
            cols = set()
            for label in labels:
                j = self.index.get(label)
                if j is None:
                    n_unseen_pairs += 1
                    j = unseen.setdefault(label, len(self) + len(unseen))
                    if not keep_unseen:
                        continue
                cols.add(j)
            idx.extend(sorted(cols))
            ptr.append(len(idx))
        width = len(self) + (len(unseen) if keep_unseen else 0)
        Y = sp.csr_matrix(
            (np.ones(len(idx), np.float32), np.asarray(idx, np.int32), np.asarray(ptr, np.int64)),
            shape=(len(label_lists), width),
        )
        return Encoded(Y, tuple(unseen), n_unseen_pairs)

    def decode(self, indices: Iterable[int]) -> list[str]:
        return [self.labels[i] for i in indices]

    def save(self, path: str | os.PathLike) -> None:
        if any(not label or any(c.isspace() for c in label) for label in self.labels):
            raise InvalidInputError("labels must be non-empty and contain no whitespace to be saved as text")
        write_text(path, "".join(label + "\n" for label in self.labels))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelVocab:
        path = Path(path)
        text = read_model_text(path, "label vocabulary ")
        labels = text.split("\n")
        if labels[-1] != "":
            raise ModelFormatError(f"{path} is truncated (its last line has no line end)")
        labels.pop()
        bad = next((i for i, label in enumerate(labels) if not label or any(c.isspace() for c in label)), None)
        if bad is not None:
            raise ModelFormatError(f"{path}:{bad + 1}: a label must be one non-empty token")
        if len(set(labels)) != len(labels):
            raise ModelFormatError(f"{path} lists a label twice")
        return cls(labels)
