"""Beam search over label trees and score post-processors."""

from xmc.search.beam import BeamConfig, ChunkedLevel, beam_search, score_level
from xmc.search.postprocess import POST_PROCESSORS, combine_dense

__all__ = ["POST_PROCESSORS", "BeamConfig", "ChunkedLevel", "beam_search", "combine_dense", "score_level"]
