"""Linear solvers and per-level one-vs-rest rankers."""

from xmc.linear.ranker import NEGATIVE_SAMPLERS, LinearConfig, train_level
from xmc.linear.solvers import LOSSES, solve_binary, train_block

__all__ = ["LOSSES", "NEGATIVE_SAMPLERS", "LinearConfig", "solve_binary", "train_block", "train_level"]
