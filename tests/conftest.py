from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
# the feature cache of the test run (and of the commands it starts) lives and dies with it
os.environ.setdefault("XMC_FEATURE_CACHE", tempfile.mkdtemp(prefix="xmc-feature-cache-"))
atexit.register(shutil.rmtree, os.environ["XMC_FEATURE_CACHE"], True)
SHARED_DATA = Path(os.environ.get("XMC_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets beside the checkout. Missing in CI is a failure, not a skip."""
    if not (SHARED_DATA / "EURLEX57K").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real datasets missing: {SHARED_DATA} (CI must have ../shared/data beside the checkout)")
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def eurlex_slice(shared_data, tmp_path_factory) -> Path:
    """A small real dataset: the first 1,500 train and 300 dev EURLEX57K documents."""
    from xmc.data import resolve, write_text_split

    src = resolve(shared_data / "EURLEX57K")
    out = tmp_path_factory.mktemp("data") / "EurlexSlice"
    for split, n in (("train", 1500), ("dev", 300)):
        data = src.load(split)
        write_text_split(out, split, data.texts[:n], data.labels[:n])
    return out


@pytest.fixture(scope="session")
def small_data(eurlex_slice, tmp_path_factory) -> Path:
    """A smaller real dataset for tests that start ``xmc`` many times: 500 train, 80 dev documents."""
    from xmc.data import resolve, write_text_split

    src = resolve(eurlex_slice)
    out = tmp_path_factory.mktemp("small") / "Small"
    for split, n in (("train", 500), ("dev", 80)):
        data = src.load(split)
        write_text_split(out, split, data.texts[:n], data.labels[:n])
    return out


def random_problem(n=400, d=300, n_labels=60, density=0.05, seed=0):
    """Features with a planted linear label structure, rows L2-normalised."""
    from xmc.utils.sparse import l2_normalize_rows

    rng = np.random.default_rng(seed)
    X = l2_normalize_rows(sp.random(n, d, density=density, random_state=seed, format="csr", dtype=np.float32))
    S = X @ rng.normal(size=(d, n_labels))
    Y = sp.csr_matrix((S > np.quantile(S, 0.96, axis=1, keepdims=True)).astype(np.float32))
    return X, Y
