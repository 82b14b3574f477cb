"""``xmc train --method xr-transformer`` from the command line, on a real EURLEX57K slice."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

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


def test_update_adds_labels_to_the_ranker(eurlex_slice, tiny_bert, tmp_path, capsys):
    """``xmc update`` on an XR-Transformer: the new labels join its XR-Linear ranker, read from
    TF-IDF joined with the fine-tuned embeddings; the encoder is not touched."""
    from xmc import api
    from xmc.data import resolve, write_text_split

    src = resolve(eurlex_slice)
    train, dev = src.load("train"), src.load("dev")
    counts = Counter(x for ls in train.labels for x in ls)
    held = set(sorted(label for label, c in counts.items() if 5 <= c <= 20)[:3])
    kept = [(t, [x for x in ls if x not in held]) for t, ls in zip(train.texts, train.labels, strict=True)]
    kept = [(t, ls) for t, ls in kept if ls]
    data = tmp_path / "Held"
    write_text_split(data, "train", [t for t, _ in kept], [ls for _, ls in kept])
    write_text_split(data, "dev", dev.texts, dev.labels)
    m0, m1 = tmp_path / "m0", tmp_path / "m1"
    assert main(["train", "--method", "xr-transformer", "--data", str(data), "--out", str(m0), "--encoder",
                 str(tiny_bert), "--device", "cpu", "--max-seq-len", "24", "--eval-split", "none", *SMALL]) == 0
    assert main(["update", "--model", str(m0), "--data", str(eurlex_slice), "--out", str(m1)]) == 0
    assert "added" in capsys.readouterr().out
    before, after = api.load(m0), api.load(m1)
    assert set(after.vocab.labels) - set(before.vocab.labels) >= held
    assert after.model.ranker_.n_labels_ == len(after.vocab)
    texts = [t for t, ls in zip(train.texts, train.labels, strict=True) if set(ls) & held][:20]
    np.testing.assert_allclose(after.model.embed(texts), before.model.embed(texts), rtol=1e-5, atol=1e-6)
    assert after.predict(texts, top_k=5).shape == (len(texts), len(after.vocab))
