"""Linear solvers and per-level one-vs-rest rankers."""

from xmc.linear.ranker import NEGATIVE_SAMPLERS, LinearConfig, train_level
from xmc.linear.solvers import LOSSES, solve_binary, solve_multi, train_group

__all__ = ["LOSSES", "NEGATIVE_SAMPLERS", "LinearConfig", "solve_binary", "solve_multi", "train_group", "train_level"]
