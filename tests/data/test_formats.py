from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.cli.main import main
from xmc.data import LabelVocab, read_bow, read_text_split, resolve, write_bow, write_text_split
from xmc.exceptions import DataFormatError, DatasetNotFoundError


def test_bow_round_trip_plain_and_gzip(tmp_path):
    X = sp.csr_matrix(np.array([[0, 1.5, 0], [0, 0, 0], [2, 0, 0.25]], np.float32))
    Y = sp.csr_matrix(np.array([[1, 0], [0, 0], [1, 1]], np.float32))
    for name in ("d.txt", "d.txt.gz"):
        write_bow(tmp_path / name, X, Y)
        X2, Y2 = read_bow(tmp_path / name)
        assert (X2 != X).nnz == 0 and (Y2 != Y).nnz == 0
        assert X2.shape == (3, 3) and Y2.shape == (3, 2)


@pytest.mark.parametrize(
    "body, message",
    [
        ("2 3 2\n0 1:1\n1,5 0:1\n", r"d\.txt:3: label index 5 outside \[0, 2\)"),
        ("2 3 2\n0 1:1\n1 7:1\n", r"d\.txt:3: feature index 7 outside \[0, 3\)"),
        ("2 3 2\n0 1:1\n1 1-1\n", r"d\.txt:3: malformed line"),
        ("2 3\n", r"d\.txt:1: header must be three integers"),
        ("3 3 2\n0 1:1\n", r"header says 3 points but the file has 1"),
        ("1 3 2\n0 1:1\n1 0:1\n", r"^\S*d\.txt: header says 1 points but the file has more lines$"),
    ],
)
def test_bow_errors_name_file_and_line(tmp_path, body, message):
    (tmp_path / "d.txt").write_text(body)
    with pytest.raises(DataFormatError, match=message):
        read_bow(tmp_path / "d.txt")


def _text_dataset(tmp_path, texts, labels, name="Toy"):
    folder = tmp_path / name
    write_text_split(folder, "train", texts, labels)
    return folder


def test_empty_documents_and_documents_without_labels_are_valid(tmp_path):
    folder = _text_dataset(tmp_path, ["a b", "", "c"], [["x"], ["y", "x"], []])
    split = resolve(folder).load("train")
    assert split.texts == ["a b", "", "c"]
    assert split.labels == [["x"], ["y", "x"], []]


def test_mismatched_line_counts(tmp_path):
    folder = _text_dataset(tmp_path, ["a", "b"], [["x"], ["y"]])
    with gzip.open(folder / "train_labels.txt.gz", "wt") as f:
        f.write("x\n")
    with pytest.raises(DataFormatError, match="has 1 lines but .* has 2"):
        resolve(folder).load("train")


def test_invalid_utf8_names_line(tmp_path):
    folder = tmp_path / "Bad"
    folder.mkdir()
    (folder / "train_texts.txt").write_bytes(b"fine\nbad \xff byte\n")
    (folder / "train_labels.txt").write_text("a\nb\n")
    with pytest.raises(DataFormatError, match=r"train_texts\.txt:2: invalid UTF-8"):
        resolve(folder).load("train")


def test_missing_split_lists_available(tmp_path):
    folder = _text_dataset(tmp_path, ["a"], [["x"]])
    with pytest.raises(DatasetNotFoundError, match="no split 'dev'.*available: train"):
        resolve(folder).load("dev")


def test_dataset_names_resolve_through_data_dir(tmp_path, monkeypatch):
    _text_dataset(tmp_path, ["a"], [["x"]], name="MySet")
    monkeypatch.setenv("XMC_DATA_DIR", f"/nonexistent:{tmp_path}")
    assert resolve("myset").path == tmp_path / "MySet"


@pytest.mark.parametrize("case", ["mismatch", "utf8", "missing_split", "bow_range"])
def test_cli_reports_bad_input_in_one_line_with_exit_2(tmp_path, capsys, case):
    folder = tmp_path / "D"
    folder.mkdir()
    if case == "mismatch":
        (folder / "train_texts.txt").write_text("a\nb\n")
        (folder / "train_labels.txt").write_text("x\n")
    elif case == "utf8":
        (folder / "train_texts.txt").write_bytes(b"\xc3\x28\n")
        (folder / "train_labels.txt").write_text("x\n")
    elif case == "missing_split":
        (folder / "dev_texts.txt").write_text("a\n")
    else:
        (folder / "train_data.txt").write_text("1 2 2\n3 0:1\n")
    code = main(["train", "--data", str(folder), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("xmc: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_vocab_counts_unseen_labels_and_keeps_them_as_extra_columns():
    vocab = LabelVocab.build([["a", "b"], ["b", "c"]])
    enc = vocab.encode([["a", "z"], ["q", "z", "c"]])
    assert enc.unseen_labels == ("z", "q") and enc.unseen_assignments == 3
    assert enc.Y.shape == (2, 3) and enc.Y.toarray().tolist() == [[1, 0, 0], [0, 0, 1]]
    kept = vocab.encode([["a", "z"], ["q", "z", "c"]], keep_unseen=True)
    assert kept.Y.shape == (2, 5)
    assert kept.Y.toarray().tolist() == [[1, 0, 0, 1, 0], [0, 0, 1, 1, 1]]


def test_vocab_save_load(tmp_path):
    vocab = LabelVocab(["b", "a", "c"])
    vocab.save(tmp_path / "labels.txt")
    assert LabelVocab.load(tmp_path / "labels.txt").labels == ["b", "a", "c"]


def test_plain_text_splits_round_trip_and_only_a_leading_bom_is_dropped(tmp_path):
    write_text_split(tmp_path, "train", ["a  b\nc", "d"], [["x", "y"], []], gz=False)
    assert (tmp_path / "train_texts.txt").read_text() == "a b c\nd\n"
    assert (tmp_path / "train_labels.txt").read_text() == "x y\n\n"
    (tmp_path / "train_texts.txt").write_bytes(b"\xef\xbb\xbffirst\r\n\xef\xbb\xbfsecond\r\n")
    texts, labels = read_text_split(tmp_path / "train_texts.txt", tmp_path / "train_labels.txt")
    assert texts == ["first", "\ufeffsecond"] and labels == [["x", "y"], []]
    assert read_text_split(tmp_path / "train_texts.txt", None)[1] == [[], []]
