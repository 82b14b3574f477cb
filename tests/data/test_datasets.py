"""Dataset folders: bag-of-words splits, name resolution, label vocabulary files, label names."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.data import LabelVocab, read_bow, resolve, write_bow
from xmc.data.datasets import DATA_DIR_ENV, available, data_dirs
from xmc.data.label_names import find_label_names, read_label_json, read_label_tsv
from xmc.exceptions import DataFormatError, DatasetNotFoundError, InvalidInputError, ModelFormatError


def _bow_folder(tmp_path, name="Toy", with_names=True):
    folder = tmp_path / name
    folder.mkdir()
    X = sp.csr_matrix(np.array([[0, 1.5, 0], [2, 0, 0], [0, 0, 0.25]], np.float32))
    Y = sp.csr_matrix(np.array([[1, 0], [1, 1], [0, 1]], np.float32))
    write_bow(folder / f"{name}_data.txt", X, Y)
    if with_names:
        (folder / "labels.txt").write_text("red wine\nblue\n")
    return folder, X, Y


def test_a_bag_of_words_dataset_loads_its_split_with_label_names(tmp_path):
    folder, X, _ = _bow_folder(tmp_path)
    dataset = resolve(folder)
    assert dataset.kind == "bow" and dataset.splits == ["all"] and dataset.has_split("all")
    split = dataset.load("all")
    assert split.name == "all" and split.n_labels == 2 and len(split) == 3
    assert split.labels == [["red_wine"], ["red_wine", "blue"], ["blue"]]  # spaces in names become '_'
    assert (split.features != X).nnz == 0 and split.texts is None


def test_label_indices_name_bag_of_words_labels_without_a_usable_labels_file(tmp_path):
    folder, _, _ = _bow_folder(tmp_path, with_names=False)
    assert resolve(folder).load("all").labels == [["0"], ["0", "1"], ["1"]]
    (folder / "labels.txt").write_text("a\na\n")  # duplicates: not usable
    assert resolve(folder).bow_label_names(2) == ["0", "1"]
    (folder / "labels.txt").write_text("a\n")  # too few
    assert resolve(folder).bow_label_names(2) == ["0", "1"]


def test_write_bow_writes_the_xc_format_exactly(tmp_path):
    X = sp.csr_matrix(np.array([[0, 1.5, 0], [0, 0, 0], [2, 0, 0.125]], np.float32))
    Y = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 1]], np.float32))
    write_bow(tmp_path / "d.txt", X, Y)
    assert (tmp_path / "d.txt").read_text() == "3 3 2\n0 1:1.5\n1\n0,1 0:2 2:0.125\n"
    with pytest.raises(ValueError, match="X has 3 rows but Y has 2"):
        write_bow(tmp_path / "e.txt", X, Y[:2])


def test_a_header_alone_and_a_header_without_newline(tmp_path):
    (tmp_path / "d.txt").write_bytes(b"0 4 3")
    X, Y = read_bow(tmp_path / "d.txt")
    assert X.shape == (0, 4) and Y.shape == (0, 3)
    (tmp_path / "d.txt").write_bytes(b"1 4 3")
    with pytest.raises(DataFormatError, match="header says 1 points but the file has 0"):
        read_bow(tmp_path / "d.txt")
    (tmp_path / "d.txt").write_bytes(b"1 4 3\n2 1:1\n")
    X, Y = read_bow(tmp_path / "d.txt")
    assert Y.dtype == np.float32 and Y.toarray().tolist() == [[0, 0, 1]] and X.toarray().tolist() == [[0, 1, 0, 0]]


@pytest.mark.parametrize("header", ["2147483648 1 1", "1 2147483648 1", "1 1 2147483648", "1 1 1234567890123"])
def test_headers_beyond_32_bit_indices_are_refused(tmp_path, header):
    (tmp_path / "d.txt").write_text(header + "\n")
    with pytest.raises(DataFormatError, match=r"d\.txt:1: header"):
        read_bow(tmp_path / "d.txt")


def test_a_header_of_up_to_eleven_digits_is_read(tmp_path):
    (tmp_path / "d.txt").write_text("00000000001 3 2\n0 1:1\n")
    assert read_bow(tmp_path / "d.txt")[0].shape == (1, 3)


@pytest.mark.parametrize("body, line, message", [
    ("3 3 2\n0 1:1\n1 0:1\n1,7 0:1\n", 4, r"label index 7 outside \[0, 2\)"),
    ("2 3 2\n0 1:1 " + "2:1 " * 40 + "9:1\n1 0:1\n", 2, r"feature index 9 outside \[0, 3\)"),
    ("2 3 2\n0 1:1\n1 0:1e39\n", 3, "not a finite float32"),
    ("3 3 2\n0 1:1\n\n1 0:x\n", 4, "malformed line"),
])
def test_errors_name_the_right_line(tmp_path, body, line, message):
    (tmp_path / "d.txt").write_text(body)
    with pytest.raises(DataFormatError, match=rf"d\.txt:{line}: .*{message}"):
        read_bow(tmp_path / "d.txt")


def test_a_malformed_line_is_quoted_in_the_message(tmp_path):
    (tmp_path / "d.txt").write_text("1 3 2\n0 1:1 oops " + "x" * 100 + "\n")
    with pytest.raises(DataFormatError) as info:
        read_bow(tmp_path / "d.txt")
    assert "'0 1:1 oops xxx" in str(info.value) and "x" * 90 not in str(info.value)  # shown, but cut short


def test_gzip_damage_is_a_data_format_error(tmp_path):
    data = gzip.compress(b"1 3 2\n0 1:1\n" * 100)
    (tmp_path / "d.txt.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="cannot read"):
        read_bow(tmp_path / "d.txt.gz")


def test_names_resolve_case_insensitively_through_every_data_dir(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _bow_folder(tmp_path / "b", name="Bibtex")
    (tmp_path / "b" / "bibtex.txt").write_text("a file, not a dataset")
    monkeypatch.setenv(DATA_DIR_ENV, f"{tmp_path / 'a'}:{tmp_path / 'missing'}:{tmp_path / 'b'}")
    assert data_dirs() == [tmp_path / "a", tmp_path / "missing", tmp_path / "b"]
    assert resolve("BIBTEX").path == tmp_path / "b" / "Bibtex"
    assert available() == ["Bibtex"]
    with pytest.raises(DatasetNotFoundError, match=f"not in {tmp_path / 'a'}, {tmp_path / 'missing'}"):
        resolve("nothing")
    monkeypatch.delenv(DATA_DIR_ENV)
    assert data_dirs() == [] and available() == []
    with pytest.raises(DatasetNotFoundError, match=f"nowhere \\(set {DATA_DIR_ENV}\\)"):
        resolve("nothing")


def test_a_folder_without_splits_is_named_in_the_error(tmp_path):
    (tmp_path / "Empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="Empty holds no"):
        resolve(tmp_path / "Empty")
    from xmc.data import Dataset

    with pytest.raises(DatasetNotFoundError, match="nope does not exist"):
        Dataset(tmp_path / "nope")


def test_vocab_files_are_checked_line_by_line(tmp_path):
    path = tmp_path / "labels.txt"
    LabelVocab(["a", "b"]).save(path)
    assert path.read_text() == "a\nb\n"
    for content, message in ((b"a\nb", "truncated"), (b"a\n\nb\n", r"labels\.txt:2: a label"),
                             (b"a\nb c\n", r"labels\.txt:2: a label"), (b"a\na\n", "twice"),
                             (b"\xff\n", "not UTF-8")):
        path.write_bytes(content)
        with pytest.raises(ModelFormatError, match=message):
            LabelVocab.load(path)
    with pytest.raises(ModelFormatError, match="missing label vocabulary"):
        LabelVocab.load(tmp_path / "none.txt")
    for bad in (["a", ""], ["a b"]):
        with pytest.raises(InvalidInputError, match="non-empty and contain no whitespace"):
            LabelVocab(bad).save(path)
    with pytest.raises(ValueError, match="duplicate"):
        LabelVocab(["a", "a"])


def test_encoded_labels_are_float32_csr_with_32_bit_indices():
    Y = LabelVocab.build([["b", "a"], ["a"]]).encode([["a", "b"], [], ["b"]]).Y
    assert Y.dtype == np.float32 and Y.indices.dtype == np.int32 and Y.shape == (3, 2)
    assert Y.toarray().tolist() == [[1, 1], [0, 0], [1, 0]]


def test_label_names_from_a_tsv(tmp_path):
    (tmp_path / "label_names.tsv").write_text("\ufeffa\tApple\tround fruit\n\nb\t Banana \n")
    assert read_label_tsv(tmp_path / "label_names.tsv") == {"a": "Apple", "b": "Banana"}
    assert find_label_names(tmp_path) == {"a": "Apple", "b": "Banana"}
    for bad in ("a\n", "a b\tName\n", "\tName\n"):
        (tmp_path / "label_names.tsv").write_text("x\tX\n" + bad)
        with pytest.raises(DataFormatError, match=r"label_names\.tsv:2: expected 'label<TAB>name'"):
            read_label_tsv(tmp_path / "label_names.tsv")


def test_label_names_from_a_descriptor_map(tmp_path):
    (tmp_path / "Set.json").write_text('{"1": {"label": "one", "alt_labels": []}, "2": "two", "3": 3}')
    assert find_label_names(tmp_path / "", "Set") == {"1": "one", "2": "two", "3": "3"}
    (tmp_path / "Set.json.gz").write_bytes(gzip.compress(b'{"9": {"label": "nine"}}'))
    assert find_label_names(tmp_path, "Set") == {"9": "nine"}  # the .gz file comes first
    assert find_label_names(tmp_path, "Other") == {}
    for bad, message in (('{"1": {"name": "x"}}', "has no readable name"), ('{"1": true}', "has no readable name"),
                         ("[1]", "expected a JSON object"), ("{", "not valid JSON")):
        (tmp_path / "B.json").write_text(bad)
        with pytest.raises(DataFormatError, match=message):
            read_label_json(tmp_path / "B.json")
    (tmp_path / "B.json").write_bytes(b'{"1": "\xff"}')
    with pytest.raises(DataFormatError, match="invalid UTF-8"):
        read_label_json(tmp_path / "B.json")


def test_the_dataset_name_picks_the_descriptor_file(tmp_path):
    folder = tmp_path / "Named"
    folder.mkdir()
    (folder / "train_texts.txt").write_text("a\n")
    (folder / "Named.json").write_text('{"x": "X"}')
    assert resolve(folder).label_names() == {"x": "X"}


def test_write_bow_uses_each_dimension_and_starts_label_free_rows_with_a_space(tmp_path):
    X = sp.csr_matrix(np.array([[0, 1.5, 0, 0], [3, 0, 0, 0]], np.float32))  # 2 x 4: not square
    Y = sp.csr_matrix(np.array([[0, 0, 0], [1, 0, 1]], np.float32))
    write_bow(tmp_path / "d.txt", X, Y)
    assert (tmp_path / "d.txt").read_text() == "2 4 3\n 1:1.5\n0,2 0:3\n"
    X2, Y2 = read_bow(tmp_path / "d.txt")
    assert (X2 != X).nnz == 0 and (Y2 != Y).nnz == 0
    with pytest.raises(ValueError, match="X has 2 rows but Y has 3"):
        write_bow(tmp_path / "e.txt", X, sp.vstack([Y, Y[:1]])[:, :2])  # 3 rows, 2 columns


def test_index_limits_are_exact(tmp_path):
    (tmp_path / "d.txt").write_text("1 3 2\n2 0:1\n")
    with pytest.raises(DataFormatError, match=r"label index 2 outside \[0, 2\)"):
        read_bow(tmp_path / "d.txt")
    (tmp_path / "d.txt").write_text("1 3 2\n1 3:1\n")
    with pytest.raises(DataFormatError, match=r"feature index 3 outside \[0, 3\)"):
        read_bow(tmp_path / "d.txt")
    (tmp_path / "d.txt").write_text("0 2147483647 1\n")
    assert read_bow(tmp_path / "d.txt")[0].shape == (0, 2147483647)
    (tmp_path / "d.txt").write_text("000000000001 3 2\n0 1:1\n")  # 12 digits: too long for a count
    with pytest.raises(DataFormatError, match="header must be three integers 'N D L', got '000000000001 3 2'"):
        read_bow(tmp_path / "d.txt")
    (tmp_path / "d.txt").write_text("\n1 3 2\n0 1:1\n")
    with pytest.raises(DataFormatError, match=r"d\.txt:1: header must be three integers 'N D L', got ''"):
        read_bow(tmp_path / "d.txt")


def test_the_quoted_line_is_the_faulty_one(tmp_path):
    (tmp_path / "d.txt").write_text("4 3 2\n0 1:1\n1 2:x\n0 0:1\n1 1:1")
    with pytest.raises(DataFormatError, match=r"d\.txt:3: malformed line, expected 'l1,l2 f:v f:v \.\.\.': '1 2:x'$"):
        read_bow(tmp_path / "d.txt")


def test_values_beyond_the_fast_path_are_converted_by_python_without_warnings(tmp_path):
    import warnings

    (tmp_path / "d.txt").write_text("2 3 1\n0 0:0.1234567890123456789 1:1e30\n0 2:12345678901234567890\n")
    X, _ = read_bow(tmp_path / "d.txt")
    assert X[0, 0] == np.float32(0.1234567890123456789) and X[0, 1] == np.float32(1e30)
    assert X[1, 2] == np.float32(12345678901234567890)
    (tmp_path / "d.txt").write_text("1 3 1\n0 0:1e39\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataFormatError, match="finite"):
            read_bow(tmp_path / "d.txt")


def test_names_from_every_data_dir_and_split_names(tmp_path, monkeypatch):
    for root, name in (("r1", "One"), ("r2", "Two")):
        (tmp_path / root / name).mkdir(parents=True)
        (tmp_path / root / name / "train_texts.txt").write_text("a\n")
    monkeypatch.setenv(DATA_DIR_ENV, f"{tmp_path / 'r1'}:{tmp_path / 'r2'}")
    assert available() == ["One", "Two"]
    assert resolve("two").load("train").name == "train"


def test_encoding_keeps_the_vocabulary_width_even_when_its_last_labels_are_unused():
    Y = LabelVocab(["a", "b", "c"]).encode([["a"], []]).Y
    assert Y.shape == (2, 3) and Y.indptr.tolist() == [0, 1, 1]


def test_text_lines_keep_their_own_characters_and_damage_names_the_file(tmp_path):
    from xmc.data import read_lines, write_text_split

    write_text_split(tmp_path, "train", ["ends with X", "plain"], [["l"], ["m"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train_labels.txt.gz", "train_texts.txt.gz"]
    assert read_lines(tmp_path / "train_texts.txt.gz") == ["ends with X", "plain"]
    data = (tmp_path / "train_texts.txt.gz").read_bytes()
    (tmp_path / "cut.txt.gz").write_bytes(data[:-12])
    with pytest.raises(DataFormatError, match=r"cut\.txt\.gz: cannot read"):
        read_lines(tmp_path / "cut.txt.gz")


def test_data_info_counts_by_hand(tmp_path):
    from xmc.data import write_text_split
    from xmc.data.info import describe, format_stats

    write_text_split(tmp_path / "Toy", "train", ["a b c", "d", ""], [["x", "y"], ["x"], []])
    write_text_split(tmp_path / "Toy", "dev", ["e f"], [["z", "x"]])
    stats = describe(resolve(tmp_path / "Toy"))
    train, dev = stats.splits
    assert (train.split, train.n_docs, train.n_labels_used, train.labels_per_doc) == ("train", 3, 2, 1.0)
    assert (train.tokens_per_doc, train.tokens_median, train.empty_docs, train.unlabelled_docs) == (4 / 3, 1.0, 1, 1)
    assert (dev.n_docs, dev.n_labels_used, dev.labels_per_doc, dev.tokens_per_doc) == (1, 2, 2.0, 2.0)
    assert (stats.n_labels_total, stats.n_train_labels, stats.unseen_in_train) == (3, 2, 1)
    assert (stats.head, stats.torso, stats.tail) == (0, 0, 2)
    assert stats.freq_quantiles == {"q0": 1.0, "q25": 1.25, "q50": 1.5, "q75": 1.75, "q90": 1.9, "q99": 1.99,
                                    "q100": 2.0}
    text = format_stats(stats)
    assert text.splitlines()[:3] == [
        "dataset Toy (text)", "",
        "split        docs  labels used  labels/doc    tokens/doc   median  empty  no label"]
    assert "\ntrain           3            2        1.00           1.3        1      1         1\n" in text
    assert "labels in all splits: 3   in train: 2   never in train (zero-shot): 1" in text
    assert "head (>= 50 docs) 0   torso (10-49) 0   tail (<= 9) 2" in text
    assert text.endswith("docs per train label, quantiles: q0=1  q25=1.25  q50=1.5  q75=1.75  q90=1.9  q99=1.99  "
                         "q100=2")


def test_data_info_of_a_bag_of_words_set_and_an_empty_split(tmp_path):
    from xmc.data.info import describe, format_stats

    folder, X, _ = _bow_folder(tmp_path)
    stats = describe(resolve(folder))
    (split,) = stats.splits
    assert split.split == "all" and split.tokens_per_doc == pytest.approx(1.0)  # nonzero features per point
    assert split.empty_docs == 0 and "features/doc" in format_stats(stats)
    assert stats.n_train_labels == 2  # the 'all' split counts as the training split
    from xmc.data import write_text_split

    write_text_split(tmp_path / "Toy", "train", ["a b"], [["x"]])
    write_text_split(tmp_path / "Toy", "dev", [], [])
    dev = describe(resolve(tmp_path / "Toy")).splits[1]
    assert (dev.n_docs, dev.labels_per_doc, dev.tokens_per_doc, dev.tokens_median) == (0, 0.0, None, None)
    one = describe(resolve(tmp_path / "Toy")).splits[0]
    assert one.empty_docs == 0 and one.tokens_per_doc == 2.0
    lines = format_stats(describe(resolve(tmp_path / "Toy"))).splitlines()
    assert lines[4] == f"{'dev':<8}{0:>9}{0:>13}{0:>12.2f}{'-':>14}{'-':>9}{0:>7}{0:>10}"  # no tokens to count
    assert lines[5] == "" and lines[6].startswith("labels in all splits")


def test_a_plain_text_split_loads_its_labels_and_a_short_label_file_is_refused(tmp_path):
    from xmc.data import write_text_split

    folder = tmp_path / "Plain"
    write_text_split(folder, "train", ["a b", "c"], [["x"], ["y", "z"]], gz=False)
    write_text_split(folder, "dev", ["d"], [["x"]], gz=False)
    dataset = resolve(folder)
    assert dataset.load("train").labels == [["x"], ["y", "z"]]
    with pytest.raises(DatasetNotFoundError, match=f"^dataset Plain has no split 'test' in {folder}; available: "
                                                   f"{', '.join(dataset.splits)}$"):
        dataset.load("test")
    assert len(dataset.splits) == 2
    (folder / "train_labels.txt").write_text("x\n")
    with pytest.raises(DataFormatError, match=f"^{folder}/train_labels.txt: has 1 lines but {folder}/train_texts.txt "
                                              "has 2; line i of both files must describe the same document$"):
        dataset.load("train")


def test_data_info_draws_head_torso_and_tail_at_50_and_9_documents(tmp_path):
    from xmc.data import write_text_split
    from xmc.data.info import describe

    counts = {"head": 50, "upper": 49, "lower": 10, "tail": 9}
    labels = [[name for name, c in counts.items() if i < c] for i in range(50)]
    write_text_split(tmp_path / "Bounds", "train", ["w"] * 50, labels)
    stats = describe(resolve(tmp_path / "Bounds"))
    assert (stats.head, stats.torso, stats.tail) == (1, 2, 1)
