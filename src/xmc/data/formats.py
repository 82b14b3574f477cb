"""Readers and writers of the two on-disk layouts.

Text layout: ``{split}_texts.txt[.gz]`` (one document per line) and ``{split}_labels.txt[.gz]``
(the same line's labels, space separated). Bag-of-words layout (Extreme Classification
Repository): a header ``N D L`` then ``l1,l2 f:v f:v ...`` per line, 0-based indices.
Every malformed input raises :class:`DataFormatError` naming the file and the line.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from xmc.exceptions import DataFormatError
from xmc.utils.io import open_text


def read_lines(path: str | os.PathLike) -> list[str]:
    """All lines of a plain or gzip UTF-8 file, without their line ends."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    lines = []
    try:
        with opener(path, "rb") as f:
            for line_no, raw in enumerate(f, 1):
                try:
                    lines.append(raw.decode("utf-8").rstrip("\r\n"))
                except UnicodeDecodeError as exc:
                    raise DataFormatError(
                        f"{path}:{line_no}: invalid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DataFormatError(f"{path}: cannot read ({exc})") from None
    return lines


def read_text_split(texts_path: str | os.PathLike, labels_path: str | os.PathLike | None):
    """Texts and label-token lists of one split; labels are ``[]`` for every doc when absent."""
    texts = read_lines(texts_path)
    if labels_path is None:
        return texts, [[] for _ in texts]
    label_lines = read_lines(labels_path)
    if len(label_lines) != len(texts):
        raise DataFormatError(
            f"{labels_path}: has {len(label_lines)} lines but {texts_path} has {len(texts)}; "
            "line i of both files must describe the same document"
        )
    return texts, [line.split() for line in label_lines]


def write_text_split(folder: str | os.PathLike, split: str, texts, label_lists, gz: bool = True) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".txt.gz" if gz else ".txt"
    with open_text(folder / f"{split}_texts{suffix}", "wt") as f:
        for text in texts:
            f.write(" ".join(text.split()) + "\n")  # one line per document, whitespace collapsed
    with open_text(folder / f"{split}_labels{suffix}", "wt") as f:
        for labels in label_lists:
            f.write(" ".join(labels) + "\n")


def read_bow(path: str | os.PathLike) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Features ``X`` (N x D) and labels ``Y`` (N x L) from an XC-repository file."""
    lines = read_lines(path)
    if not lines:
        raise DataFormatError(f"{path}:1: empty file, expected a header 'N D L'")
    head = lines[0].split()
    if len(head) != 3 or not all(h.isdigit() for h in head):
        raise DataFormatError(f"{path}:1: header must be three integers 'N D L', got {lines[0]!r}")
    n, d, n_labels = map(int, head)
    body = lines[1:]
    if len(body) != n:
        raise DataFormatError(f"{path}: header says {n} points but the file has {len(body)}")
    x_ptr, x_idx, x_val, y_ptr, y_idx = [0], [], [], [0], []
    for line_no, line in enumerate(body, 2):
        _parse_bow_line(line, line_no, path, d, n_labels, x_idx, x_val, y_idx)
        x_ptr.append(len(x_idx))
        y_ptr.append(len(y_idx))
    X = sp.csr_matrix(
        (np.asarray(x_val, np.float32), np.asarray(x_idx, np.int32), np.asarray(x_ptr, np.int64)), shape=(n, d)
    )
    Y = sp.csr_matrix(
        (np.ones(len(y_idx), np.float32), np.asarray(y_idx, np.int32), np.asarray(y_ptr, np.int64)),
        shape=(n, n_labels),
    )
    X.sum_duplicates()
    Y.sum_duplicates()
    Y.data[:] = 1.0
    return X, Y


def _parse_bow_line(line, line_no, path, d, n_labels, x_idx, x_val, y_idx) -> None:
    tokens = line.split(" ")
    first = tokens[0] if tokens else ""
    feats = tokens[1:]
    if ":" in first:  # a point without labels starts directly with features
        feats, first = tokens, ""
    try:
        for lab in filter(None, first.split(",")):
            j = int(lab)
            if not 0 <= j < n_labels:
                raise DataFormatError(f"{path}:{line_no}: label index {j} outside [0, {n_labels})")
            y_idx.append(j)
        for tok in filter(None, feats):
            f, v = tok.split(":")
            f = int(f)
            if not 0 <= f < d:
                raise DataFormatError(f"{path}:{line_no}: feature index {f} outside [0, {d})")
            x_idx.append(f)
            x_val.append(float(v))
    except ValueError as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(
            f"{path}:{line_no}: malformed line, expected 'l1,l2 f:v f:v ...': {line[:80]!r}") from None


def write_bow(path: str | os.PathLike, X: sp.csr_matrix, Y: sp.csr_matrix) -> None:
    X, Y = sp.csr_matrix(X), sp.csr_matrix(Y)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
    with open_text(path, "wt") as f:
        f.write(f"{X.shape[0]} {X.shape[1]} {Y.shape[1]}\n")
        for i in range(X.shape[0]):
            labs = ",".join(str(j) for j in Y.indices[Y.indptr[i] : Y.indptr[i + 1]])
            lo, hi = X.indptr[i], X.indptr[i + 1]
            feats = " ".join(f"{j}:{v:.6g}" for j, v in zip(X.indices[lo:hi], X.data[lo:hi], strict=True))
            f.write(f"{labs} {feats}".rstrip() + "\n" if feats else f"{labs}\n")
