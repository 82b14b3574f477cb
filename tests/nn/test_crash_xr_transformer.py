"""``kill -9`` during ``xmc train --method xr-transformer`` (fine-tuning, caching, checkpointing, the
ranker), then the same command with ``--resume``: the model equals an uninterrupted run's."""

from __future__ import annotations

import pytest
from tests.crash import killed, model_contents, run_xmc

XRT_SMALL = ["--set", "encoder.n_layers=0", "--set", "finetune.steps=[6,6,10]", "--set", "finetune.batch_size=16",
             "--set", "finetune.lr=0.001", "--set", "finetune.eval_docs=0", "--set", "ranker.tree.max_leaf_size=16",
             "--set", "matcher_tree.max_leaf_size=16", "--device", "cpu", "--max-seq-len", "24"]
# mid-way through the second level's steps, while the token cache is written, before the second
# level's checkpoint is committed, and while the ranker trains after fine-tuning
XRT_POINTS = [pytest.param("trainer:step@9", id="mid-level"),
              pytest.param("file:written@1", id="token-cache", marks=pytest.mark.slow),
              pytest.param("folder:written@2", id="checkpoint", marks=pytest.mark.slow),
              pytest.param("xr-linear:level@1", id="ranker", marks=pytest.mark.slow)]


def _train_xrt(data, out, encoder, ckpt, *extra):
    return ["train", "--method", "xr-transformer", "--data", str(data), "--out", str(out), "--encoder", str(encoder),
            "--checkpoint-dir", str(ckpt), *XRT_SMALL, *extra]


@pytest.fixture(scope="module")
def xrt_reference(small_data, tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("xrt_ref")
    proc = run_xmc(_train_xrt(small_data, root / "model", tiny_bert, root / "ckpt"))
    assert proc.returncode == 0, proc.stderr
    return model_contents(root / "model")


@pytest.mark.parametrize("point", XRT_POINTS)
def test_xr_transformer_killed_then_resumed_equals_an_uninterrupted_run(small_data, tiny_bert, xrt_reference,
                                                                       tmp_path, point):
    args = _train_xrt(small_data, tmp_path / "model", tiny_bert, tmp_path / "ckpt")
    proc = run_xmc(args, kill_at=point)
    assert killed(proc), proc.stderr
    again = run_xmc([*args, "--resume"])
    assert again.returncode == 0, again.stderr
    assert model_contents(tmp_path / "model") == xrt_reference
