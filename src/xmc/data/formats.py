"""Readers and writers of the two on-disk layouts.

Text layout: ``{split}_texts.txt[.gz]`` (one document per line) and ``{split}_labels.txt[.gz]``
(the same line's labels, space separated). Bag-of-words layout (Extreme Classification
Repository): a header ``N D L`` then ``l1,l2 f:v f:v ...`` per line, 0-based indices.
Every malformed input raises :class:`DataFormatError` naming the file and the line.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

from xmc.data.bow import read_bow, write_bow
from xmc.exceptions import DataFormatError
from xmc.utils.io import open_text

__all__ = ["read_bow", "read_lines", "read_text_split", "write_bow", "write_text_split"]


def read_lines(path: str | os.PathLike) -> list[str]:
    """All lines of a plain or gzip UTF-8 file, without their line ends (``\\n`` or ``\\r\\n``) and
    without a leading byte-order mark."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    lines = []
    try:
        with opener(path, "rb") as f:
            for line_no, raw in enumerate(f, 1):
                try:
                    lines.append(raw.decode("utf-8-sig" if line_no == 1 else "utf-8").rstrip("\r\n"))
                except UnicodeDecodeError as exc:
                    raise DataFormatError(
                        f"{path}:{line_no}: invalid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError, zlib.error) as exc:
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


def write_text_split(folder: str | os.PathLike, split: str, texts, label_lists, gz: bool = True,
                     collapse: bool = True) -> None:
    """``{split}_texts`` and ``{split}_labels``; ``collapse=False`` when every text is known to be
    one line with single spaces already (whitespace is otherwise collapsed here)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".txt.gz" if gz else ".txt"
    with open_text(folder / f"{split}_texts{suffix}", "wt") as f:
        if collapse:
            texts = (" ".join(text.split()) for text in texts)  # one line per document, whitespace collapsed
        f.writelines(text + "\n" for text in texts)
    with open_text(folder / f"{split}_labels{suffix}", "wt") as f:
        for labels in label_lists:
            f.write(" ".join(labels) + "\n")
