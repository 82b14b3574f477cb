"""XR-Linear trained and timed in a child process on prepared TF-IDF (``common.prepare_eurlex``):
the xmc side of the XR-Linear and XR-Transformer comparisons with PECOS."""

from __future__ import annotations

import json
import time
from pathlib import Path

import scipy.sparse as sp

from lib import common

N_LATENCY = 1000
TOP_K = 10


def tag(seed: int) -> str:
    """A seed's suffix in result file names (none for seed 0)."""
    return "" if seed == 0 else f"_s{seed}"


def run_xmc(work: Path, out: Path, seed: int = 0, config=None, name: str | None = None) -> None:
    """Child process: train and time xmc's XR-Linear with its defaults (and tree seed ``seed``), or
    with ``config``; results go to ``{name}.npz/json`` (default ``xmc`` plus the seed's tag)."""
    from xmc.models.xr_linear import XRLinear, XRLinearConfig
    from xmc.tree.label_tree import TreeConfig

    X, Y, Xt = (sp.load_npz(work / f).tocsr() for f in ("X.trn.npz", "Y.trn.npz", "X.dev.npz"))
    config = config or XRLinearConfig(tree=TreeConfig(seed=seed))
    name = name or f"xmc{tag(seed)}"
    t0 = time.perf_counter()
    model = XRLinear(config).fit(X, Y)
    train_s = time.perf_counter() - t0
    P, batch_ms, latency = common.timed_predictions(model, Xt, TOP_K, N_LATENCY)
    sp.save_npz(out / f"{name}.npz", P)
    json.dump({"train_s": train_s, "batch_ms_per_doc": batch_ms, "latency_ms_median": latency,
               "peak_rss_mb": common.peak_rss_mb(), "stages": model.fit_seconds_,
               "level_sizes": model.tree_.level_sizes, "nnz": [int(W.nnz) for W in model.weights_]},
              open(out / f"{name}.json", "w"))
