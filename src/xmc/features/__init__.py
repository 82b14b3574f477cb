"""Text featurisation."""

from xmc.features.tfidf import TfidfConfig, TfidfFeaturizer

__all__ = ["TfidfConfig", "TfidfFeaturizer"]
