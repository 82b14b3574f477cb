"""``kill -9`` in the middle of each dual-encoder stage, then the same fit with ``resume=True``: the
saved model equals an uninterrupted run's (the mining index, the step count and the cached document
vectors are rebuilt from the last checkpoint, not carried over from the killed process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import scipy.sparse as sp
from tests.crash import killed, model_contents
from tests.nn.test_dual_encoder import dual_config, keyword_labels  # noqa: F401  (a fixture)

# The child: fit a dual encoder from the files in ARGV[1], checkpointing in ARGV[2], saving to ARGV[3].
CHILD = """
import json, sys
import scipy.sparse as sp
from xmc.models.dual_encoder import DualEncoder, DualEncoderConfig
work, ckpt, out, resume = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
spec = json.load(open(f"{work}/spec.json"))
config = DualEncoderConfig.from_dict(spec["config"])
model = DualEncoder(config).fit(spec["texts"], sp.load_npz(f"{work}/Y.npz"), label_texts=spec["label_texts"],
                                checkpoint_dir=ckpt, resume=resume)
model.save(out)
"""

# Stage 1 has 4 epochs of 35 steps, the mining index refreshed every 3 (35 is no multiple of 3, so a
# resumed epoch starts mid-cycle); stage 2 has 5 epochs of 9 steps. Killed mid-way through the
# second epoch of stage 1 and the third of stage 2.
POINTS = [pytest.param("trainer:step@50", id="encoder-stage"), pytest.param("trainer:step@162", id="label-stage")]


def _fit(work, ckpt, out, resume=False, kill_at=None):
    env = {**os.environ, "XMC_PROGRESS": "0"}
    env.pop("XMC_KILL_AT", None)
    if kill_at:
        env["XMC_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-c", CHILD, str(work), str(ckpt), str(out), "1" if resume else "0"],
                          capture_output=True, text=True, env=env, timeout=600, check=False)


@pytest.fixture(scope="module")
def dual_run(keyword_labels, keyword_bert, tmp_path_factory):  # noqa: F811  (the imported fixture)
    """The fit's inputs written for the child, and an uninterrupted run's saved model."""
    texts, Y, _, _, label_texts = keyword_labels
    work = tmp_path_factory.mktemp("dual_crash")
    config = dual_config(keyword_bert, hard_negatives=4, refresh_steps=3, label_negatives=4)
    (work / "spec.json").write_text(json.dumps({"config": config.to_dict(), "texts": texts,
                                                "label_texts": label_texts}))
    sp.save_npz(work / "Y.npz", sp.csr_matrix(Y))
    proc = _fit(work, work / "ckpt", work / "model")
    assert proc.returncode == 0, proc.stderr
    return work, model_contents(work / "model")


@pytest.mark.parametrize("point", POINTS)
def test_dual_encoder_killed_mid_stage_then_resumed_equals_an_uninterrupted_run(dual_run, tmp_path, point):
    work, reference = dual_run
    proc = _fit(work, tmp_path / "ckpt", tmp_path / "model", kill_at=point)
    assert killed(proc), proc.stderr
    assert not (tmp_path / "model").exists()
    again = _fit(work, tmp_path / "ckpt", tmp_path / "model", resume=True)
    assert again.returncode == 0, again.stderr
    resumed = model_contents(tmp_path / "model")
    assert sorted(resumed) == sorted(reference)
    for name in reference:  # file by file, so a failure names the file that differs
        assert resumed[name] == reference[name], name
