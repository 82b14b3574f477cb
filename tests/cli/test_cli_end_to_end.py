"""The CLI end to end on real data from ../shared/data (fails in CI when the folder is missing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from xmc.cli.main import main


def test_train_predict_evaluate_on_real_eurlex_slice(eurlex_slice, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", "--method", "xr-linear", "--data", str(eurlex_slice), "--out", str(model),
                 "--set", "tree.max_leaf_size=32"]) == 0
    out = capsys.readouterr().out
    assert "P " in out and "dev" in out

    assert main(["evaluate", "--model", str(model), "--data", str(eurlex_slice), "--split", "dev", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) >= {"P@1", "P@3", "P@5", "nDCG@1", "nDCG@3", "nDCG@5", "PSP@1", "PSP@3", "PSP@5", "R@10",
                            "n_docs", "unseen_labels"}
    assert metrics["n_docs"] == 300
    assert metrics["unseen_labels"] > 0  # dev labels never seen in 1,500 training docs are counted
    # 1,500 legal documents are enough for a linear model to get the first label mostly right
    assert 55.0 < metrics["P@1"] <= 100.0
    assert metrics["P@1"] >= metrics["P@5"]

    preds = tmp_path / "preds"
    assert main(["predict", "--model", str(model), "--data", str(eurlex_slice), "--split", "dev",
                 "--top-k", "4", "--out", str(preds)]) == 0
    scores = sp.load_npz(f"{preds}.npz")
    lines = (tmp_path / "preds.jsonl").read_text().splitlines()
    assert scores.shape[0] == 300 and len(lines) == 300
    first = json.loads(lines[0])
    assert first["id"] == 0 and len(first["labels"]) == 4
    labels = (model / "labels.txt").read_text().split()
    row = scores[0]
    best = row.indices[np.argmax(row.data)]
    assert first["labels"][0][0] == labels[best]
    manifest = json.loads((model / "xmc.json").read_text())
    assert manifest["metrics"][f"{eurlex_slice.name}/dev"]["P@1"] == metrics["P@1"]


def test_data_info_matches_published_counts(shared_data, capsys):
    assert main(["data", "info", str(shared_data / "EURLEX57K")]) == 0
    out = capsys.readouterr().out
    assert "train      45,000        4,108        5.07         549.4      400" in out
    assert "dev         6,000        2,515        5.04         539.0      394" in out
    assert "head (>= 50 docs) 746" in out


def test_help_and_installed_entry_point():
    out = subprocess.run([sys.executable, "-m", "xmc.cli.main", "--help"], capture_output=True, text=True, check=True)
    assert "train" in out.stdout and "evaluate" in out.stdout and "XMC_DATA_DIR" in out.stdout


def test_config_prints_defaults(capsys):
    assert main(["config", "xr-linear"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["beam"]["beam_size"] == 10 and cfg["tree"]["max_leaf_size"] == 100 and cfg["tfidf"]["min_df"] == 2


def test_bad_override_is_one_line_exit_2(eurlex_slice, tmp_path, capsys):
    code = main(["train", "--data", str(eurlex_slice), "--out", str(tmp_path / "m"), "--set", "beam.beam_size=0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "beam_size" in err


def test_user_errors_are_one_line_and_bugs_say_so(eurlex_slice, tmp_path, capsys, monkeypatch):
    model = tmp_path / "model"
    assert main(["train", "--method", "xr-linear", "--data", str(eurlex_slice), "--out", str(model),
                 "--eval-split", "none"]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(model), "--data", str(eurlex_slice), "--split", "dev", "--top-k", "0",
                 "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "top_k must be a positive int, got 0" in err

    from xmc.cli import commands

    def broken(args):
        raise KeyError("an internal slip")

    monkeypatch.setattr(commands, "run", broken)
    assert main(["config", "xr-linear"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (a bug in xmc" in err and "KeyError" in err
    with pytest.raises(KeyError):
        main(["-vv", "config", "xr-linear"])


def test_evaluate_works_on_a_read_only_model_folder(eurlex_slice, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", "--method", "xr-linear", "--data", str(eurlex_slice), "--out", str(model),
                 "--eval-split", "none"]) == 0
    before = (model / "xmc.json").read_bytes()
    modes = {p: p.stat().st_mode for p in [model, *model.rglob("*")]}
    for path in modes:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        if os.access(model, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert main(["evaluate", "--model", str(model), "--data", str(eurlex_slice), "--split", "dev", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["n_docs"] == 300
        assert (model / "xmc.json").read_bytes() == before
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def test_evaluate_records_its_metrics_unless_the_folder_refuses(eurlex_slice, tmp_path, capsys, monkeypatch):
    model = tmp_path / "model"
    assert main(["train", "--method", "xr-linear", "--data", str(eurlex_slice), "--out", str(model),
                 "--eval-split", "none"]) == 0
    import xmc.models.pipeline as pipeline

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pipeline, "write_json", refuse)
    assert main(["evaluate", "--model", str(model), "--data", str(eurlex_slice), "--split", "dev"]) == 0
    assert "dev" not in json.dumps(json.loads((model / "xmc.json").read_text())["metrics"])
    monkeypatch.undo()
    assert main(["evaluate", "--model", str(model), "--data", str(eurlex_slice), "--split", "dev"]) == 0
    assert f"{eurlex_slice.name}/dev" in json.loads((model / "xmc.json").read_text())["metrics"]


def test_predict_new_texts_from_the_command_line(eurlex_slice, tmp_path, capsys, monkeypatch):
    import io

    model = tmp_path / "model"
    (tmp_path / "data").mkdir()
    assert main(["train", "--method", "xr-linear", "--data", str(eurlex_slice), "--out", str(model)]) == 0
    capsys.readouterr()
    texts = ["Council regulation on fishing quotas in the North Sea", "Decision on imports of bananas"]
    assert main(["predict", "--model", str(model), "--text", texts[0], "--text", texts[1], "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    rows = [json.loads(line)["labels"] for line in lines]
    assert all(len(r) == 3 and all(len(item) == 3 and 0 <= item[1] <= 1 for item in r) for r in rows)
    assert rows[0][0][1] >= rows[0][1][1] >= rows[0][2][1]
    (tmp_path / "in.txt").write_text("\ufeff" + "\n".join(texts) + "\n")
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "in.txt"), "--top-k", "3"]) == 0
    assert [json.loads(line)["labels"] for line in capsys.readouterr().out.splitlines()] == rows
    monkeypatch.setattr("sys.stdin", io.StringIO(texts[1] + "\n"))
    assert main(["predict", "--model", str(model), "--input", "-", "--top-k", "3", "--min-score", "0.2"]) == 0
    kept = json.loads(capsys.readouterr().out)["labels"]
    assert kept == [item for item in rows[1] if item[1] >= 0.2]
    assert main(["predict", "--model", str(model), "--text", texts[0], "--format", "table", "--top-k", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == texts[0] and len(table) == 3 and table[1].split()[1] == rows[0][0][0]
    assert main(["predict", "--model", str(model), "--input", str(tmp_path / "nope.txt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["predict", "--model", str(model), "--text", "x", "--min-score", "1.5"]) == 2
    assert "min_score must be a number in [0, 1]" in capsys.readouterr().err
    assert main(["predict", "--model", str(model), "--data", str(eurlex_slice)]) == 2
    assert "--data needs --out" in capsys.readouterr().err
    manifest = json.loads((model / "xmc.json").read_text())
    assert manifest["calibration"]["fitted_on"].endswith("/dev") and 0 <= manifest["calibration"]["ECE"] <= 100


def test_evaluate_groups_ks_and_a_prediction_file(eurlex_slice, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(["train", "--method", "xr-linear", "--data", str(eurlex_slice), "--out", str(model),
                 "--eval-split", "none"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--data", str(eurlex_slice), "--split", "dev", "--k", "1,5,10",
                 "--groups", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"P@10", "RP@5", "nDCG@5", "R@10", "PSP@5"} <= set(metrics)
    groups = metrics["groups"]
    assert set(groups) == {"frequent", "few", "zero"}
    assert groups["zero"]["n_labels"] == metrics["unseen_labels"] and groups["zero"].get("RP@5", 0.0) == 0.0
    assert groups["frequent"]["n_docs"] > 0 and "RP@5" in groups["frequent"]
    assert main(["predict", "--model", str(model), "--data", str(eurlex_slice), "--split", "dev", "--top-k", "10",
                 "--out", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(tmp_path / "p.npz"), "--data", str(eurlex_slice), "--split", "dev",
                 "--k", "1,5,10", "--groups", "--json"]) == 0
    from_file = json.loads(capsys.readouterr().out)
    for key in ("P@1", "RP@5", "nDCG@5", "PSP@5", "R@10"):
        assert from_file[key] == pytest.approx(metrics[key], abs=1e-3)  # the file holds the same predictions
    assert from_file["groups"]["frequent"]["RP@5"] == pytest.approx(groups["frequent"]["RP@5"], abs=1e-3)
    assert main(["evaluate", "--pred", str(tmp_path / "p.npz"), "--data", str(eurlex_slice), "--k", "0"]) == 2
    (tmp_path / "p.labels.txt").unlink()
    assert main(["evaluate", "--pred", str(tmp_path / "p.npz"), "--data", str(eurlex_slice), "--split", "dev"]) == 2
    assert "columns are unknown" in capsys.readouterr().err
