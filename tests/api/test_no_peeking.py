"""No choice is made on a test split: a dataset with train and test only gets a seeded slice held
out of train for every choice (documents not used to fit), test is only reported on, and the model
folder records where each choice was made."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from xmc import api
from xmc.api import holdout


@pytest.fixture(scope="module")
def train_test_only(eurlex_slice, tmp_path_factory):
    from xmc.data import write_text_split

    src = api.resolve(eurlex_slice)
    out = tmp_path_factory.mktemp("tt") / "TrainTest"
    train = src.load("train")
    write_text_split(out, "train", train.texts[:600], train.labels[:600])
    test = src.load("dev")  # documents of another split, named test here
    write_text_split(out, "test", test.texts[:150], test.labels[:150])
    return out


HELD = "TrainTest/train held out (60 of 600 documents, seed 0)"


def test_choices_are_made_on_held_out_training_documents_and_test_is_only_reported(train_test_only, tmp_path):
    result = api.train("xr-linear", train_test_only, tmp_path / "m", overrides=["tree.max_leaf_size=16"])
    assert result.fitted_on == {"calibration": HELD}
    assert result.pipeline.calibration_info["fitted_on"] == HELD
    assert result.pipeline.n_train == 540  # the held-out documents were not fitted on
    assert result.report_name == "TrainTest/test" and result.eval_split == "test"
    assert result.metrics["n_docs"] == 150
    assert not any(k.startswith("ECE") for k in result.metrics)  # calibration measures belong to where it was fit
    manifest = json.loads((tmp_path / "m" / "xmc.json").read_text())
    assert manifest["fitted_on"] == {"calibration": HELD}
    assert list(manifest["metrics"]) == ["TrainTest/test"]
    assert api.load(tmp_path / "m").fitted_on == {"calibration": HELD}


def test_the_held_out_slice_is_seeded_disjoint_and_bounded(train_test_only):
    split = api.resolve(train_test_only).load("train")
    fit, held, name = holdout.hold_out(split, "TrainTest", "train")
    again = holdout.hold_out(split, "TrainTest", "train")[1]
    assert held.texts == again.texts and len(held) == 60 and len(fit) == 540 and name == HELD
    assert not set(held.texts) & set(fit.texts) or len(set(split.texts)) < len(split.texts)
    assert sorted(held.texts + fit.texts) == sorted(split.texts)
    tiny = holdout.subset(split, list(range(10)), "train")
    assert holdout.hold_out(tiny, "T", "train") == (tiny, None, None)  # too small to spare documents


def test_a_dataset_with_dev_chooses_on_dev_and_can_report_on_test(eurlex_slice, tmp_path):
    from xmc.data import write_text_split

    src = api.resolve(eurlex_slice)
    dev = src.load("dev")
    folder = tmp_path / "WithTest"
    for name, split in (("train", src.load("train")), ("dev", dev)):
        write_text_split(folder, name, split.texts[:500], split.labels[:500])
    write_text_split(folder, "test", dev.texts[:80], dev.labels[:80])
    result = api.train("xr-linear", folder, None, overrides=["tree.max_leaf_size=16"], eval_split="test")
    assert result.fitted_on == {"calibration": "WithTest/dev"} and result.report_name == "WithTest/test"
    assert result.pipeline.n_train == 500
    auto = api.train("xr-linear", folder, None, overrides=["tree.max_leaf_size=16"])
    assert auto.fitted_on == {"calibration": "WithTest/dev"} and auto.report_name == "WithTest/dev"
    assert any(k.startswith("ECE") for k in auto.metrics)


def test_the_command_says_where_choices_were_made(train_test_only, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xmc.cli.main", "train", "--method", "xr-linear", "--data",
                           str(train_test_only), "--out", str(tmp_path / "m"), "--set", "tree.max_leaf_size=16"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"calibration chosen on {HELD}" in proc.stdout
    assert "metrics reported on TrainTest/test (no choice was made on it)" in proc.stdout


def test_update_calibrates_on_documents_held_out_of_its_data(train_test_only, tmp_path):
    from xmc.data import write_text_split

    src = api.resolve(train_test_only)
    train = src.load("train")
    known = sorted({lab for labs in train.labels for lab in labs})[::2]  # half the labels first
    first = tmp_path / "First"
    rows = [i for i, labs in enumerate(train.labels) if set(labs) <= set(known)]
    write_text_split(first, "train", [train.texts[i] for i in rows], [train.labels[i] for i in rows])
    api.train("xr-linear", first, tmp_path / "m1", overrides=["tree.max_leaf_size=16"], eval_split=None)
    result = api.update(tmp_path / "m1", train_test_only, tmp_path / "m2")
    assert result.pipeline.fitted_on == {"calibration": HELD}
    assert result.report_name == "TrainTest/test"
    assert json.loads((tmp_path / "m2" / "xmc.json").read_text())["fitted_on"] == {"calibration": HELD}
