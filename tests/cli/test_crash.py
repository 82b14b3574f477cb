"""``kill -9`` at chosen instants of ``xmc train``, then the same command again: the result equals an
uninterrupted run's, and a model that was already there is never left broken."""

from __future__ import annotations

import pytest
from tests.crash import killed, leftovers, model_contents, run_xmc

from xmc.models.pipeline import load

# during fitting (after the 2nd level's rankers), mid-file, before the nested model folder is
# committed, before the outer folder is committed, and after saving (during the evaluation)
XR_LINEAR_POINTS = ["xr-linear:level@2", "file:written@3", "folder:written@1", "folder:written@2", "train:saved"]


def _train(data, out, *extra):
    return ["train", "--method", "xr-linear", "--data", str(data), "--out", str(out),
            "--set", "tree.max_leaf_size=16", *extra]


@pytest.fixture(scope="module")
def reference(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "model"
    proc = run_xmc(_train(small_data, out))
    assert proc.returncode == 0, proc.stderr
    return model_contents(out)


@pytest.mark.parametrize("point", XR_LINEAR_POINTS)
def test_xr_linear_killed_then_run_again_equals_an_uninterrupted_run(small_data, reference, tmp_path, point):
    out = tmp_path / "model"
    proc = run_xmc(_train(small_data, out), kill_at=point)
    assert killed(proc), proc.stderr
    if out.exists():  # killed after the commit: the model is already complete
        assert point == "train:saved"
    else:
        again = run_xmc(_train(small_data, out))
        assert again.returncode == 0, again.stderr
    assert model_contents(out) == reference
    assert leftovers(out) == []


@pytest.mark.parametrize("point", ["xr-linear:level@1", "folder:written@2", "folder:exchanged", "file:written@2"])
def test_an_existing_model_survives_a_killed_overwrite(small_data, reference, tmp_path, point):
    out = tmp_path / "model"
    assert run_xmc(_train(small_data, out, "--set", "tree.seed=7")).returncode == 0
    old = model_contents(out)
    assert old != reference
    proc = run_xmc(_train(small_data, out, "--overwrite"), kill_at=point)
    assert killed(proc), proc.stderr
    assert model_contents(out) in (old, reference)  # at every instant: the whole old model or the whole new one
    load(out)
    again = run_xmc(_train(small_data, out, "--overwrite"))
    assert again.returncode == 0, again.stderr
    assert model_contents(out) == reference
    assert leftovers(out) == []


def test_a_user_folder_is_refused_before_training(small_data, tmp_path):
    (tmp_path / "work" / "notes").mkdir(parents=True)
    (tmp_path / "work" / "notes" / "a.txt").write_text("mine")
    proc = run_xmc(_train(small_data, tmp_path / "work"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not an xmc model folder" in proc.stderr
    assert "trained" not in proc.stdout  # refused before any training
    assert (tmp_path / "work" / "notes" / "a.txt").read_text() == "mine"

