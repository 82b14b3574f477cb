"""All the usual metrics in one pass, and their table."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from xmc.metrics.ranking import _best_weights, _check, _discounts, _ideal_dcg, _n_true, hit_matrix

REPORT_KS = (1, 3, 5)
RECALL_K = 10


def evaluate_scores(y_true, y_score, inv_prop: np.ndarray, ks=REPORT_KS, recall_k: int = RECALL_K) -> dict[str, float]:
    """P@k, nDCG@k, PSP@k, PSnDCG@k for each k, R@recall_k and coverage@max(k), in percent.

    Equal to calling each metric function on its own (the tests check this), but ranks once.
    """
    kmax = max(max(ks), recall_k)
    y_true, y_score = _check(y_true, y_score, kmax)
    hits, ranked = hit_matrix(y_true, y_score, kmax)
    w = np.asarray(inv_prop, dtype=np.float64)
    n_true = _n_true(y_true)
    disc = _discounts(kmax)
    whits = hits * w[np.maximum(ranked, 0)]
    best = _best_weights(y_true, w, kmax)
    out: dict[str, float] = {}
    n = max(hits.shape[0], 1)
    for k in ks:
        inv_ideal = 1.0 / _ideal_dcg(n_true, k)
        out[f"P@{k}"] = hits[:, :k].sum() / (k * n)
        out[f"nDCG@{k}"] = ((hits[:, :k] @ disc[:k]) * inv_ideal).sum() / n
        best_k = best[:, :k].sum()
        out[f"PSP@{k}"] = whits[:, :k].sum() / best_k if best_k > 0 else 0.0
        best_dcg = ((best[:, :k] @ disc[:k]) * inv_ideal).sum()
        out[f"PSnDCG@{k}"] = ((whits[:, :k] @ disc[:k]) * inv_ideal).sum() / best_dcg if best_dcg > 0 else 0.0
    recall = hits[:, :recall_k].sum(axis=1) / np.maximum(n_true, 1)
    out[f"R@{recall_k}"] = recall.sum() / n
    present = np.unique(sp.csr_matrix(y_true).indices)
    kc = max(ks)
    covered = np.unique(ranked[:, :kc][hits[:, :kc] > 0])
    out[f"coverage@{kc}"] = covered.size / present.size if present.size else 0.0
    return {key: round(100.0 * float(v), 4) for key, v in out.items()}


def format_report(metrics: dict[str, float], title: str = "") -> str:
    """A small fixed-width table: one row per metric family, one column per k."""
    families: dict[str, dict[str, float]] = {}
    others = {}
    for key, value in metrics.items():
        fam, _, k = key.partition("@")
        if k.isdigit():  # P@5 and the like; AR@P90 and counts are listed below the table
            families.setdefault(fam, {})[k] = value
        else:
            others[key] = value
    ks = sorted({k for fam in families.values() for k in fam}, key=int)
    lines = [title] if title else []
    lines.append(f"{'metric':<10}" + "".join(f"{'@' + k:>9}" for k in ks))
    for fam, vals in families.items():
        lines.append(f"{fam:<10}" + "".join(f"{vals[k]:>9.2f}" if k in vals else f"{'':>9}" for k in ks))
    for key, value in others.items():
        lines.append(f"{key}: {value}")
    return "\n".join(lines)
