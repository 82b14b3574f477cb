"""Datasets: readers and writers of the text and bag-of-words layouts, label vocabulary."""

from xmc.data.datasets import DATA_DIR_ENV, Dataset, Split, available, resolve
from xmc.data.formats import read_bow, read_lines, read_text_split, write_bow, write_text_split
from xmc.data.vocab import Encoded, LabelVocab

__all__ = [
    "DATA_DIR_ENV",
    "Dataset",
    "Encoded",
    "LabelVocab",
    "Split",
    "available",
    "read_bow",
    "read_lines",
    "read_text_split",
    "resolve",
    "write_bow",
    "write_text_split",
]
