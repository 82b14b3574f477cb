"""``xmc train --method xr-transformer`` from the command line, on a real EURLEX57K slice."""

from __future__ import annotations

import json

from xmc.cli.main import main

SMALL = ["--set", "encoder.n_layers=0", "--set", "finetune.steps=[6,6,10]", "--set", "finetune.batch_size=16",
         "--set", "finetune.lr=0.001", "--set", "finetune.eval_docs=50", "--set", "ranker.tree.max_leaf_size=32"]


def test_train_resume_evaluate(eurlex_slice, tiny_bert, tmp_path, capsys):
    model, ckpt = tmp_path / "model", tmp_path / "ckpt"
    args = ["train", "--method", "xr-transformer", "--data", str(eurlex_slice), "--out", str(model),
            "--encoder", str(tiny_bert), "--device", "cpu", "--max-seq-len", "24", "--checkpoint-dir", str(ckpt),
            *SMALL]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "trained xr-transformer" in out and "dev" in out
    manifest = json.loads((model / "model" / "xmc.json").read_text())
    assert manifest["config"]["encoder"]["max_seq_len"] == 24
    shapes = manifest["shapes"]
    assert [e["level"] for e in shapes["level_logs"]] == list(range(len(shapes["matcher_levels"])))
    assert (ckpt / "tokens.npz").is_file()

    assert main([*args, "--resume"]) == 0  # every level is checkpointed: nothing left to fine-tune
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--data", str(eurlex_slice), "--split", "dev", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_docs"] == 300 and 30.0 < metrics["P@1"] <= 100.0


def test_neural_flags_are_checked(eurlex_slice, tmp_path, capsys):
    base = ["train", "--data", str(eurlex_slice), "--out", str(tmp_path / "m")]
    assert main([*base, "--method", "xr-linear", "--encoder", "x"]) == 2
    assert "apply to the neural methods, not xr-linear" in capsys.readouterr().err
    assert main([*base, "--method", "xr-transformer", "--resume"]) == 2
    assert "--resume needs --checkpoint-dir" in capsys.readouterr().err
    assert main([*base, "--method", "xr-transformer", "--encoder", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
