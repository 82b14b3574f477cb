"""``xmc data import``: JSONL, CSV/TSV and Parquet files into dataset folders, bad rows named."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pyarrow")

from xmc import api  # noqa: E402
from xmc.cli.main import main  # noqa: E402
from xmc.exceptions import DataFormatError, XMCError  # noqa: E402

PRODUCTS = [{"id": f"p{i}", "title": f"red shoe number {i}", "body": "leather  sole",
             "labels": ["shoes", "red things"] if i % 2 else ["shoes"]} for i in range(20)]


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_jsonl_with_joined_fields_ids_names_and_a_seeded_split(tmp_path):
    src = _jsonl(tmp_path / "products.jsonl", PRODUCTS)
    report = api.import_dataset(src, tmp_path / "ds", text_fields=("title", "body"), id_field="id",
                                fractions=(0.5, 0.25, 0.25), seed=3)
    assert report.rows == report.kept == 20 and report.bad == 0 and report.n_labels == 2
    assert report.split_sizes == {"train": 10, "dev": 5, "test": 5}
    data = api.resolve(tmp_path / "ds")
    seen = {}
    for split in ("train", "dev", "test"):
        part = data.load(split)
        ids = (tmp_path / "ds" / f"{split}_ids.txt").read_text().split()
        seen.update({i: (t, labels) for i, t, labels in zip(ids, part.texts, part.labels, strict=True)})
    assert sorted(seen) == sorted(r["id"] for r in PRODUCTS)  # every row once
    assert seen["p3"] == ("red shoe number 3 leather sole", ["shoes", "red_things"])
    assert data.label_names() == {"red_things": "red things"}
    again = api.import_dataset(src, tmp_path / "ds2", text_fields=("title", "body"), id_field="id",
                               fractions=(0.5, 0.25, 0.25), seed=3)
    assert (tmp_path / "ds2" / "dev_ids.txt").read_text() == (tmp_path / "ds" / "dev_ids.txt").read_text()
    assert "20 of 20 rows (train 10, dev 5, test 5), 2 labels" in again.summary()


def test_csv_tsv_and_parquet_give_the_same_dataset(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": r["title"], "tags": "|".join(r["labels"]), "part": "train" if i < 15 else "dev"}
            for i, r in enumerate(PRODUCTS)]
    (tmp_path / "a.csv").write_text("text,tags,part\n" + "".join(f'"{r["text"]}",{r["tags"]},{r["part"]}\n'
                                                                 for r in rows))
    (tmp_path / "a.tsv").write_text("text\ttags\tpart\n" + "".join(f'{r["text"]}\t{r["tags"]}\t{r["part"]}\n'
                                                                   for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    loaded = []
    for name in ("a.csv", "a.tsv", "a.parquet"):
        out = tmp_path / name.replace(".", "_")
        report = api.import_dataset(tmp_path / name, out, labels_field="tags", label_sep="|", split_field="part")
        assert report.split_sizes == {"train": 15, "dev": 5}
        data = api.resolve(out)
        loaded.append([(s.texts, s.labels) for s in (data.load("train"), data.load("dev"))])
    assert loaded[0] == loaded[1] == loaded[2]
    assert loaded[0][0][1][1] == ["shoes", "red_things"]


@pytest.mark.parametrize("record, message", [
    ({"labels": ["a"]}, "line 3: no text in 'text'"),
    ({"text": "x"}, "line 3: no field 'labels'"),
    ({"text": 5, "labels": ["a"]}, "line 3: field 'text' is a int, not text"),
    ({"text": "x", "labels": {"a": 1}}, "line 3: field 'labels' must be a list of labels or a string"),
    ({"text": "x", "labels": [["a"]]}, "line 3: a label in 'labels' is a list"),
])
def test_a_bad_row_is_named_by_line_and_field(tmp_path, record, message):
    good = {"text": "a text", "labels": ["a"]}
    src = _jsonl(tmp_path / "in.jsonl", [good, good, record, good])
    with pytest.raises(DataFormatError, match=message):
        api.import_dataset(src, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()  # nothing half-written
    report = api.import_dataset(src, tmp_path / "ds", skip_bad=True, fractions=(0.5, 0.5))
    assert (report.rows, report.kept, report.bad) == (4, 3, 1) and message in report.bad_examples[0]


def test_a_line_that_is_not_json(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": \n\n{"text": "c", "labels": ["y"]}\n')
    with pytest.raises(DataFormatError, match="line 2: not JSON"):
        api.import_dataset(src, tmp_path / "ds")
    report = api.import_dataset(src, tmp_path / "ds", skip_bad=True, fractions=(0.5, 0.5))
    assert report.kept == 2 and report.bad == 1


@pytest.mark.parametrize("options, message", [
    (dict(fractions=(0.8, 0.3)), "add up to 1"),
    (dict(fractions=(1.0,)), "2 or 3 fractions"),
    (dict(text_fields=()), "at least one field"),
    (dict(file_format="xml"), "--format must be one of"),
    (dict(split_field="part"), "no field 'part'"),
])
def test_bad_options_are_clear_errors(tmp_path, options, message):
    src = _jsonl(tmp_path / "in.jsonl", PRODUCTS)
    with pytest.raises(XMCError, match=message):
        api.import_dataset(src, tmp_path / "ds", text_fields=options.pop("text_fields", ("title",)), **options)


def test_unknown_suffix_and_an_existing_folder(tmp_path):
    src = _jsonl(tmp_path / "in.data", PRODUCTS)
    with pytest.raises(XMCError, match="pass --format"):
        api.import_dataset(src, tmp_path / "ds", text_fields=("title",))
    api.import_dataset(src, tmp_path / "ds", text_fields=("title",), file_format="jsonl")
    with pytest.raises(XMCError, match="overwrite"):
        api.import_dataset(src, tmp_path / "ds", text_fields=("title",), file_format="jsonl")
    api.import_dataset(src, tmp_path / "ds", text_fields=("title",), file_format="jsonl", overwrite=True, seed=1)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    with pytest.raises(XMCError):
        api.import_dataset(src, tmp_path / "mine", text_fields=("title",), file_format="jsonl", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "a user's file"


def test_the_command_then_data_info_and_training(tmp_path, capsys):
    src = _jsonl(tmp_path / "products.jsonl", PRODUCTS * 5)
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds"), "--text-field", "title,body"]) == 0
    assert "100 of 100 rows (train 80, dev 10, test 10)" in capsys.readouterr().out
    assert main(["data", "info", str(tmp_path / "ds")]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds"), "--split", "a,b"]) == 2
    assert "--split takes fractions" in capsys.readouterr().err


def test_whitespace_is_collapsed_as_str_split_does(tmp_path):
    """Arrow collapses whitespace on whole columns; it must agree with Python's str.split()."""
    text = "a\u2028b\x85c\u00a0d\x0be\x1cf\tg\r\nh  \u3000i\u200bj  "
    src = _jsonl(tmp_path / "in.jsonl", [{"text": text, "labels": ["x"]}, {"text": "other", "labels": ["y"]}])
    api.import_dataset(src, tmp_path / "ds", fractions=(0.5, 0.5), seed=0)
    data = api.resolve(tmp_path / "ds")
    texts = data.load("train").texts + data.load("dev").texts
    assert " ".join(text.split()) in texts
