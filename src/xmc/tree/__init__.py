"""Label embeddings (PIFA), balanced hierarchical clustering and the label tree."""

from xmc.tree.kmeans import balanced_leaf_clusters
from xmc.tree.label_tree import LabelTree, TreeConfig
from xmc.tree.pifa import pifa

__all__ = ["LabelTree", "TreeConfig", "balanced_leaf_clusters", "pifa"]
