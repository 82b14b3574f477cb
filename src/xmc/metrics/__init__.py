"""Ranking metrics (P@k, nDCG@k, PSP@k, PSnDCG@k, R@k, coverage@k) and propensities."""

from xmc.metrics.propensity import DEFAULT_A, DEFAULT_B, inv_propensity, inv_propensity_from_counts
from xmc.metrics.ranking import (
    coverage_at_k,
    hit_matrix,
    ndcg_at_k,
    precision_at_k,
    psndcg_at_k,
    psp_at_k,
    ranked_labels,
    recall_at_k,
)
from xmc.metrics.report import evaluate_scores, format_report

__all__ = [
    "DEFAULT_A",
    "DEFAULT_B",
    "coverage_at_k",
    "evaluate_scores",
    "format_report",
    "hit_matrix",
    "inv_propensity",
    "inv_propensity_from_counts",
    "ndcg_at_k",
    "precision_at_k",
    "psndcg_at_k",
    "psp_at_k",
    "ranked_labels",
    "recall_at_k",
]
