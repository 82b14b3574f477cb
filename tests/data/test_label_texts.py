"""Label texts: the plain layout, EUROVOC descriptors, and what ``xmc data info`` counts."""

from __future__ import annotations

import gzip
import json

import pytest

from xmc.data.datasets import Dataset
from xmc.data.info import describe, format_stats
from xmc.data.label_texts import find_label_texts, read_descriptor_json, read_label_texts
from xmc.exceptions import DataFormatError


def test_plain_label_texts(tmp_path):
    path = tmp_path / "label_texts.txt"
    path.write_text("a\tfirst   label\n\nb\tsecond label, with a comma\n", encoding="utf-8")
    assert read_label_texts(path) == {"a": "first label", "b": "second label, with a comma"}
    path.write_text("a first label\n")
    with pytest.raises(DataFormatError, match="label_texts.txt:1"):
        read_label_texts(path)
    path.write_text("a\t   \n")
    with pytest.raises(DataFormatError):
        read_label_texts(path)


def test_descriptors_join_alternatives_and_parents(tmp_path):
    raw = {"1": {"label": "school legislation", "alt_labels": ["education law"], "parents": ["2"]},
           "2": {"label": "education policy", "alt_labels": [], "parents": []},
           "3": "plain name"}
    path = tmp_path / "Set.json.gz"
    path.write_bytes(gzip.compress(json.dumps(raw).encode()))
    assert read_descriptor_json(path) == {"1": "school legislation; education law; education policy",
                                          "2": "education policy", "3": "plain name"}
    assert find_label_texts(tmp_path, "Set") == read_descriptor_json(path)
    (tmp_path / "label_texts.txt").write_text("1\tmine\n")
    assert find_label_texts(tmp_path, "Set") == {"1": "mine"}  # the plain file comes first
    (tmp_path / "Bad.json").write_text("[1, 2]")
    with pytest.raises(DataFormatError, match="Bad.json"):
        read_descriptor_json(tmp_path / "Bad.json")


def test_info_counts_labels_with_text(tmp_path):
    (tmp_path / "train_texts.txt").write_text("x\ny\n")
    (tmp_path / "train_labels.txt").write_text("a\na b\n")
    (tmp_path / "dev_texts.txt").write_text("z\n")
    (tmp_path / "dev_labels.txt").write_text("c\n")
    (tmp_path / "label_texts.txt").write_text("a\tletter a\nc\tletter c\nd\tletter d\n")
    stats = describe(Dataset(tmp_path))
    assert (stats.labels_with_text, stats.text_without_train_docs, stats.unseen_with_text) == (3, 2, 1)
    assert "labels with a text: 3   of them without training documents: 2   zero-shot labels with a text: 1" \
        in format_stats(stats)


def test_eurlex57k_descriptors(shared_data):
    texts = Dataset(shared_data / "EURLEX57K").label_texts()
    assert len(texts) == 7201 and texts["1597"].startswith("school legislation")
