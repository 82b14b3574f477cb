"""Random, truncated, mis-encoded and oversized inputs to every reader: the outcome is a correct
result or an XMCError with a message, never another exception."""

from __future__ import annotations

import codecs
import gzip
import json

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from xmc.data import read_bow, read_text_split, resolve
from xmc.data.label_names import find_label_names
from xmc.exceptions import DataFormatError

# bytes that stress a text reader: encodings, BOMs, NULs, line ends, invalid UTF-8
NASTY = st.sampled_from([b"\x00", b"\r\n", b"\r", b"\n", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, b"\xff\xfe",
                         b"\xc3\x28", b"\xe2\x82", "é".encode("latin-1"), "ü".encode(), b" ", b"\t", b",", b":",
                         b"1", b"0", b"label", b"\xf0\x9f\x98\x80"])
BYTES = st.lists(st.one_of(NASTY, st.binary(max_size=20)), max_size=40).map(b"".join)


def _write(path, data: bytes, gz: bool):
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _maybe_truncate(data: bytes, cut: float | None) -> bytes:
    return data if cut is None else data[: int(len(data) * cut)]


@given(texts=BYTES, labels=BYTES, gz=st.booleans(), cut=st.none() | st.floats(0, 1))
def test_text_split_reader(tmp_path_factory, texts, labels, gz, cut):
    folder = tmp_path_factory.mktemp("t")
    suffix = ".txt.gz" if gz else ".txt"
    t = _write(folder / f"train_texts{suffix}", texts, gz)
    lab = _write(folder / f"train_labels{suffix}", labels, gz)
    if cut is not None:
        t.write_bytes(_maybe_truncate(t.read_bytes(), cut))
    try:
        docs, label_lists = read_text_split(t, lab)
    except DataFormatError as exc:
        assert str(exc)
        return
    assert len(docs) == len(label_lists)
    assert all(isinstance(d, str) and "\n" not in d for d in docs)
    assert all(lab and not any(c.isspace() for c in lab) for labs in label_lists for lab in labs)
    if docs and texts.startswith(codecs.BOM_UTF8) and cut is None and not gz:
        assert docs[0] == texts.split(b"\n")[0][3:].decode().rstrip("\r\n")  # one byte-order mark dropped


def _reference_bow(text: str):
    """A line-by-line reader of the XC format, for the inputs the fast reader accepts."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    n, d, n_labels = map(int, lines[0].split())
    rows_x, rows_y = [], []
    for line in lines[1:]:
        tokens = line.replace("\r", " ").replace("\t", " ").split()
        labels = [] if not tokens or ":" in tokens[0] else [int(x) for x in tokens.pop(0).split(",") if x]
        feats = {}
        for tok in tokens:
            f, v = tok.split(":")
            feats[int(f)] = feats.get(int(f), 0.0) + float(v)
        rows_x.append(feats)
        rows_y.append(set(labels))
    X = sp.lil_matrix((n, d), dtype=np.float64)
    Y = sp.lil_matrix((n, n_labels), dtype=np.float32)
    for i, (feats, labels) in enumerate(zip(rows_x, rows_y, strict=True)):
        for f, v in feats.items():
            X[i, f] = v
        for j in labels:
            Y[i, j] = 1.0
    return X.tocsr(), Y.tocsr()


VALUES = st.one_of(st.floats(-1e6, 1e6, allow_nan=False, width=32).map(repr),
                   st.integers(-10**6, 10**6).map(str),
                   st.sampled_from(["0", "1", "0.5", "1e-3", "2E5", "-0", ".5", "5.", "1.234567890123456789",
                                    "3.4e38", "1e-45", "12345678901234567890", "0.000000000000000000001"]))


@st.composite
def bow_files(draw):
    n, d, n_labels = draw(st.integers(0, 6)), draw(st.integers(1, 9)), draw(st.integers(1, 5))
    lines = [f"{n} {d} {n_labels}"]
    for _ in range(n):
        labels = draw(st.lists(st.integers(0, n_labels - 1), max_size=3))
        feats = draw(st.lists(st.tuples(st.integers(0, d - 1), VALUES), max_size=5))
        body = " ".join(f"{f}:{v}" for f, v in feats)
        lead = ",".join(map(str, labels))
        lines.append(f"{lead} {body}".rstrip() if lead else (f" {body}" if draw(st.booleans()) else body))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    return end.join(lines) + end


@given(text=bow_files(), gz=st.booleans())
def test_bow_reader_matches_a_line_by_line_reader(tmp_path_factory, text, gz):
    path = _write(tmp_path_factory.mktemp("b") / ("d.txt.gz" if gz else "d.txt"), text.encode(), gz)
    X_ref, Y_ref = _reference_bow(text.replace("\r\n", "\n"))
    beyond_float32 = X_ref.nnz and np.abs(X_ref.data).max() > np.finfo(np.float32).max
    try:
        X, Y = read_bow(path)
    except DataFormatError as exc:
        assert beyond_float32 and "finite" in str(exc)  # the only rejection of a well-formed file
        return
    assert not beyond_float32
    assert X.shape == X_ref.shape and Y.shape == Y_ref.shape
    np.testing.assert_array_equal(X.toarray(), X_ref.toarray().astype(np.float32))
    np.testing.assert_array_equal(Y.toarray(), Y_ref.toarray())


@given(data=st.one_of(BYTES, bow_files().map(str.encode)), flips=st.lists(st.tuples(st.floats(0, 1), st.binary(
    min_size=1, max_size=3)), max_size=4), cut=st.none() | st.floats(0, 1), gz=st.booleans())
def test_bow_reader_on_damaged_files(tmp_path_factory, data, flips, cut, gz):
    data = bytearray(data)
    for where, junk in flips:
        pos = int(where * len(data))
        data[pos:pos + len(junk)] = junk
    path = _write(tmp_path_factory.mktemp("b") / ("d.txt.gz" if gz else "d.txt"), bytes(data), gz)
    if cut is not None:
        path.write_bytes(_maybe_truncate(path.read_bytes(), cut))
    try:
        X, Y = read_bow(path)
    except DataFormatError as exc:
        assert str(path) in str(exc)
        return
    assert X.shape[0] == Y.shape[0] and np.all(np.isfinite(X.data)) and np.all(Y.data == 1)
    for M in (X, Y):
        assert M.nnz == 0 or (M.indices.min() >= 0 and M.indices.max() < M.shape[1])


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                max_size=4), max_leaves=12)


@given(content=st.one_of(JSON.map(lambda v: json.dumps(v).encode()), BYTES), kind=st.sampled_from(["json", "tsv"]))
def test_label_name_files(tmp_path_factory, content, kind):
    folder = tmp_path_factory.mktemp("Names")
    (folder / "train_texts.txt").write_text("a\n")
    name = "label_names.tsv" if kind == "tsv" else f"{folder.name}.json"
    (folder / name).write_bytes(content)
    try:
        names = resolve(folder).label_names()
    except DataFormatError as exc:
        assert str(exc)
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in names.items())
    assert names == find_label_names(folder)


def test_oversized_inputs_are_read_or_refused_cleanly(tmp_path):
    big = "9" * 5000
    (tmp_path / "d.txt").write_text(f"{big} 1 1\n")
    with pytest.raises(DataFormatError, match="header"):
        read_bow(tmp_path / "d.txt")
    (tmp_path / "d.txt").write_text(f"1 3 2\n{big}:1\n")
    with pytest.raises(DataFormatError, match="malformed"):
        read_bow(tmp_path / "d.txt")
    (tmp_path / "d.txt").write_text(f"1 3 2\n0 1:{big}\n")
    with pytest.raises(DataFormatError, match="finite"):
        read_bow(tmp_path / "d.txt")
    line = "word " * 200_000
    (tmp_path / "train_texts.txt").write_text(line + "\n")
    (tmp_path / "train_labels.txt").write_text("a\n")
    texts, labels = read_text_split(tmp_path / "train_texts.txt", tmp_path / "train_labels.txt")
    assert len(texts[0]) == len(line) and labels == [["a"]]

