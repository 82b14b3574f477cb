"""Glossary of the matrices that flow through xmc (shapes use the names below).

- ``X``: features, CSR float32, ``(n_docs, n_features)``, rows L2-normalised.
- ``Y``: labels, CSR float32 0/1 (or relevance), ``(n_docs, n_labels)``.
- ``C``: cluster assignment of one tree level, CSR 0/1, ``(n_children, n_parents)``.
- ``M``: matching / shortlist of one level, CSR, ``(n_docs, n_nodes)``.
- ``W``: weights of one level's linear rankers, ``(n_features + 1, n_nodes)``; the last row is
  the bias.
- scores: a CSR ``(n_docs, n_labels)`` holding each row's top-k scores.
"""
