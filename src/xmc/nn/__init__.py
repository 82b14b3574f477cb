"""Torch building blocks: encoders with pooling, token caches and batching, shortlist heads and
their losses. Imported only by the neural methods, so XR-Linear users never load torch."""
