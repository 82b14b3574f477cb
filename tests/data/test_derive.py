"""`xmc data derive`: another text field of the same documents, with their labels and label names."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.data import resolve, write_bow
from xmc.exceptions import DataFormatError, DatasetNotFoundError


def test_derive_takes_another_text_field_and_keeps_labels_and_names(tmp_path, capsys):
    import json as json_

    from xmc.cli.main import main
    from xmc.data import write_text_split

    src = tmp_path / "Src"
    write_text_split(src, "train", ["long text one", "long text two"], [["a", "b"], ["b"]])
    write_text_split(src, "dev", ["long text three"], [["a"]])
    for split, titles in (("train", ["Title  one\n", "Title two"]), ("dev", ["Title three"])):
        with gzip.open(src / f"{split}_meta.jsonl.gz", "wt", encoding="utf-8") as f:
            f.writelines(json_.dumps({"id": i, "title": t}) + "\n" for i, t in enumerate(titles))
    (src / "label_names.tsv").write_text("a\tApple\nb\tBanana\n")
    assert main(["data", "derive", str(src), "--text-field", "title", "--out", str(tmp_path / "Titles")]) == 0
    derived = resolve(tmp_path / "Titles")
    assert derived.load("train").texts == ["Title one", "Title two"] and derived.load("dev").texts == ["Title three"]
    assert derived.load("train").labels == [["a", "b"], ["b"]]
    assert derived.label_names() == {"a": "Apple", "b": "Banana"}
    assert oct((tmp_path / "Titles").stat().st_mode & 0o777) == oct(0o777 & ~_umask())
    capsys.readouterr()
    assert main(["data", "derive", str(src), "--text-field", "title", "--out", str(tmp_path / "Titles")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["data", "derive", str(src), "--text-field", "nope", "--out", str(tmp_path / "X")]) == 2
    assert "no text field 'nope'" in capsys.readouterr().err and not (tmp_path / "X").exists()
    (tmp_path / "Titles" / "train_texts.txt").write_text("stale\nstale\n")
    assert main(["data", "derive", str(src), "--text-field", "title", "--out", str(tmp_path / "Titles"),
                 "--overwrite"]) == 0  # a dataset folder is replaced whole
    assert resolve(tmp_path / "Titles").load("train").texts == ["Title one", "Title two"]
    (tmp_path / "Mine").mkdir()
    (tmp_path / "Mine" / "notes.txt").write_text("keep")
    capsys.readouterr()
    assert main(["data", "derive", str(src), "--text-field", "title", "--out", str(tmp_path / "Mine"),
                 "--overwrite"]) == 2  # not a dataset: never replaced, even with --overwrite
    assert (tmp_path / "Mine" / "notes.txt").read_text() == "keep"


def test_derive_says_what_is_wrong_and_reads_plain_meta_files(tmp_path):
    import json as json_

    from xmc.data import write_text_split
    from xmc.data.derive import derive
    from xmc.exceptions import XMCError

    (tmp_path / "Toy").mkdir()
    write_bow(tmp_path / "Toy" / "Toy_data.txt", sp.csr_matrix(np.eye(2, dtype=np.float32)),
              sp.csr_matrix(np.eye(2, dtype=np.float32)))
    bow = tmp_path / "Toy"
    with pytest.raises(XMCError, match="^Toy is a bag-of-words dataset; only text datasets have other text fields$"):
        derive(resolve(bow), "title", tmp_path / "out")
    src = tmp_path / "Src"
    write_text_split(src, "train", ["x", "y"], [["a"], ["b"]])
    with pytest.raises(DatasetNotFoundError, match=r"has no '<split>_meta.jsonl\[.gz\]' files to take the field "
                                                   r"'title' from$"):
        derive(resolve(src), "title", tmp_path / "out")
    meta = src / "train_meta.jsonl"  # not compressed
    meta.write_text(json_.dumps({"title": "One"}) + "\n")
    with pytest.raises(DataFormatError, match=f"^{meta} has 1 lines but the split has 2 documents$"):
        derive(resolve(src), "title", tmp_path / "out")
    for body, message in (('{"title": "One"}\n["title"]\n', ":2: no text field 'title'"),
                          ('{"title": "One"}\nnot json\n', ":2: not a JSON object")):
        meta.write_text(body)
        with pytest.raises(DataFormatError, match=f"^{meta}{message}$"):
            derive(resolve(src), "title", tmp_path / "out")
    meta.write_text('{"title": "One"}\n{"title": "Two"}\n')
    (src / "label_names.tsv").write_text("a\tRed  wine\nb\tBlue\n")
    derived = resolve(derive(resolve(src), "title", tmp_path / "Titles"))
    assert derived.load("train").texts == ["One", "Two"]
    with pytest.raises(XMCError, match="--overwrite"):  # an existing dataset is replaced only when asked
        derive(resolve(src), "title", tmp_path / "Titles")
    assert (tmp_path / "Titles" / "label_names.tsv").read_text() == "a\tRed wine\nb\tBlue\n"


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
