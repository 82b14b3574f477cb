"""Saving never destroys what xmc did not write, and replaces a model only when asked."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from tests.conftest import random_problem
from tests.crash import leftovers

from xmc.exceptions import ModelFormatError
from xmc.models.pipeline import load
from xmc.models.xr_linear import XRLinear
from xmc.utils import folders
from xmc.utils.folders import MARKER, OutputExistsError, atomic_folder, check_target


@pytest.fixture(scope="module")
def model():
    X, Y = random_problem(n=120, n_labels=20)
    return XRLinear(XRLinear._test_config()).fit(X, Y), X


def test_a_folder_with_user_files_is_refused_and_kept(model, tmp_path):
    fitted, _ = model
    (tmp_path / "work" / "notes").mkdir(parents=True)
    (tmp_path / "work" / "notes" / "a.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match="not an xmc model folder"):
            fitted.save(tmp_path / "work", overwrite=overwrite)
    assert (tmp_path / "work" / "notes" / "a.txt").read_text() == "mine"
    assert leftovers(tmp_path / "work") == []


def test_a_file_or_a_link_at_the_target_is_refused(model, tmp_path):
    fitted, _ = model
    (tmp_path / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "f")
    for name in ("f", "link"):
        with pytest.raises(OutputExistsError, match="not a folder"):
            fitted.save(tmp_path / name)
    assert (tmp_path / "f").read_text() == "x"


def test_an_empty_folder_is_used_and_a_model_needs_overwrite(model, tmp_path):
    fitted, X = model
    (tmp_path / "m").mkdir()
    fitted.save(tmp_path / "m")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        fitted.save(tmp_path / "m")
    fitted.save(tmp_path / "m", overwrite=True)
    assert (load(tmp_path / "m").predict(X) != fitted.predict(X)).nnz == 0
    assert leftovers(tmp_path / "m") == []


def test_an_invalid_manifest_does_not_make_a_folder_ours(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    for body in ("not json", "[1, 2]", json.dumps({"kind": "model"})):
        (tmp_path / "xmc.json").write_text(body)
        with pytest.raises(OutputExistsError, match="not an xmc model folder"):
            check_target(tmp_path, overwrite=True)


def test_a_failed_block_leaves_the_old_model_and_no_temporary_folder(model, tmp_path):
    fitted, X = model
    fitted.save(tmp_path / "m")
    before = fitted.predict(X)
    with pytest.raises(RuntimeError), atomic_folder(tmp_path / "m", overwrite=True) as tmp:
        (tmp / "half").write_text("...")
        raise RuntimeError("killed halfway")
    assert (load(tmp_path / "m").predict(X) != before).nnz == 0
    assert leftovers(tmp_path / "m") == []


def test_leftovers_of_a_killed_writer_are_removed_but_nothing_else(model, tmp_path):
    fitted, _ = model
    ours = tmp_path / ".m.xmc-tmp-abc"
    ours.mkdir()
    (ours / MARKER).touch()
    theirs = tmp_path / ".m.xmc-tmp-user"  # same name pattern, but no marker and no manifest: not ours
    theirs.mkdir()
    (theirs / "keep.txt").write_text("keep")
    fitted.save(tmp_path / "m")
    assert not ours.exists() and (theirs / "keep.txt").read_text() == "keep"


def test_without_an_atomic_exchange_a_crash_between_renames_is_recovered(model, tmp_path):
    """The fallback path (no renameat2): killed after moving the old model aside, the old model sits in
    a backup; loading says where, and the next save puts it back before anything else."""
    fitted, X = model
    fitted.save(tmp_path / "m")
    script = f"""
import sys, numpy as np
from xmc.models.pipeline import load
from xmc.utils import folders
folders._exchange = lambda a, b: False
model = load({str(tmp_path / "m")!r})
model.save({str(tmp_path / "m")!r}, overwrite=True)
"""
    proc = subprocess.run([sys.executable, "-c", script], env={"XMC_KILL_AT": "folder:moved-aside",
                                                                "PATH": ""}, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert not (tmp_path / "m").exists()
    with pytest.raises(ModelFormatError, match="interrupted replacement"):
        load(tmp_path / "m")
    folders._recover(tmp_path / "m", folders.is_xmc_folder)
    assert (load(tmp_path / "m").predict(X) != fitted.predict(X)).nnz == 0
    assert leftovers(tmp_path / "m") == []


def test_the_exchange_swaps_two_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("b")
    if not folders._exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here")
    assert (tmp_path / "a" / "x").read_text() == "b" and (tmp_path / "b" / "x").read_text() == "a"


def test_a_saved_model_is_as_readable_as_any_file_the_user_writes(model, tmp_path):
    import os

    fitted, _ = model
    fitted.save(tmp_path / "m")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o777 & ~mask
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~mask for p in (tmp_path / "m").rglob("*") if p.is_file())
