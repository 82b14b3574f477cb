"""Score-level ensembles of trained models over the same label set (PECOS's ``CsrEnsembler``).

Members predict their own top-k; the union of their candidates is scored by combining the members'
scores (a member that did not return a label contributes 0 for it), and the best ``top_k`` kept:

- ``average``: mean of the raw scores;
- ``rank_average``: mean of 1 / rank (robust to members with different score scales);
- ``softmax_average``: mean of each member's scores softmax-normalised over its own top-k.

``weights`` turns each mean into a weighted one (a strong member and a weak one rarely deserve equal
say; choose the weights on held-out documents, never on the ones you report).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from xmc._config import Config, Interval, Options, option
from xmc.exceptions import ModelFormatError, NotFittedError
from xmc.models.base import XMCModel, manifest_field, model_class, read_manifest
from xmc.models.pipeline import Pipeline
from xmc.utils.sparse import topk_per_row
from xmc.utils.validation import check_k

COMBINERS = ("average", "rank_average", "softmax_average")
MAX_MEMBERS = 1000


@dataclass(frozen=True, kw_only=True)
class EnsembleConfig(Config):
    combine: str = option("softmax_average", "how member scores are combined", Options(COMBINERS))
    top_k: int = option(20, "labels returned per document", Interval(int, 1, None))
    member_top_k: int = option(50, "labels each member contributes per document", Interval(int, 1, None))
    weights: tuple[float, ...] = option((), "one weight per member, in their order (empty: equal weights)",
                                        Interval(float, 0, None))


def _row_ids(P: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(P.shape[0]), np.diff(P.indptr))


def _rank_scores(P: sp.csr_matrix) -> sp.csr_matrix:
    """Each stored score replaced by 1 / (its rank in the row), all rows at once."""
    P = sp.csr_matrix(P, dtype=np.float32, copy=True)
    rows = _row_ids(P)
    order = np.lexsort((-P.data, rows))  # by row, then by descending score (stable on ties)
    ranks = np.empty(P.nnz, np.float32)
    ranks[order] = np.arange(P.nnz) - P.indptr[rows[order]] + 1
    P.data = 1.0 / ranks
    return P


def _softmax_rows(P: sp.csr_matrix) -> sp.csr_matrix:
    """Stored scores softmax-normalised within each row, all rows at once."""
    P = sp.csr_matrix(P, dtype=np.float32, copy=True)
    if P.nnz == 0:
        return P
    rows = _row_ids(P)
    starts = P.indptr[:-1][np.diff(P.indptr) > 0]
    segment = np.searchsorted(starts, P.indptr[rows])  # each entry's non-empty row
    e = np.exp(P.data - np.maximum.reduceat(P.data, starts)[segment])
    P.data = (e / np.add.reduceat(e, starts)[segment]).astype(np.float32)
    return P


def check_weights(weights: tuple[float, ...] | list[float], n_members: int) -> np.ndarray:
    """Equal weights when none are given; else one non-negative weight per member, not all zero."""
    if len(weights) == 0:
        return np.full(n_members, 1.0 / n_members)
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != n_members:
        raise ValueError(f"{len(w)} ensemble weights for {n_members} members; give one per member")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"ensemble weights must be non-negative and not all zero, got {list(weights)}")
    return w / w.sum()


def combine_scores(members: list[sp.csr_matrix], combine: str, top_k: int,
                   weights: tuple[float, ...] | list[float] = ()) -> sp.csr_matrix:
    transform = {"average": lambda P: sp.csr_matrix(P, dtype=np.float32), "rank_average": _rank_scores,
                 "softmax_average": _softmax_rows}[combine]
    w = check_weights(weights, len(members))
    total = transform(members[0]) * w[0]
    for P, wi in zip(members[1:], w[1:], strict=True):
        total = total + transform(P) * wi
    return topk_per_row(sp.csr_matrix(total, dtype=np.float32), top_k)


def reseeded(config: Config, offset: int) -> Config:
    """``config`` with every nested ``seed`` field moved by ``offset`` (ensemble members differ in
    their clustering, batch order and initialisation)."""
    import dataclasses

    changes = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, Config):
            changes[f.name] = reseeded(value, offset)
        elif f.name == "seed":
            changes[f.name] = value + offset
    return dataclasses.replace(config, **changes)


class Ensemble(XMCModel):
    """Models over the same labels, combined by score: members trained alike (``--ensemble N``: other
    seeds), or whole pipelines of any methods (``xmc ensemble``), each featurising the raw text
    itself, so an XR-Linear on its own TF-IDF sits next to a neural text model."""

    method = "ensemble"
    config_class = EnsembleConfig

    def __init__(self, config: EnsembleConfig | None = None, members: list[XMCModel] | None = None):
        super().__init__(config)
        self.members_: list[XMCModel] | None = list(members) if members else None
        if self.members_:
            self.input_kind = self.members_[0].input_kind
            if any(m.input_kind != self.input_kind for m in self.members_):
                raise ValueError("ensemble members must all read the same input (texts or features)")
            # members that embed label texts (the dual encoder) get them through fit, as a single model does
            self.reads_label_texts = all(getattr(m, "reads_label_texts", False) for m in self.members_)
            check_weights(self.config.weights, len(self.members_))

    def fit(self, X, Y, **fit_options) -> Ensemble:
        """Fit every member; a ``checkpoint_dir`` gets one subfolder per member."""
        checkpoints = fit_options.pop("checkpoint_dir", None)
        for i, member in enumerate(self.members_ or []):
            extra = {"checkpoint_dir": Path(checkpoints) / f"member_{i}"} if checkpoints is not None else {}
            member.fit(X, Y, **fit_options, **extra)
        return self

    def quantize(self) -> bool:
        self._check_fitted()
        return any([member.quantize() for member in self.members_])  # every member, not the first that can

    def predict(self, X, *, top_k: int | None = None, beam_size: int | None = None) -> sp.csr_matrix:
        self._check_fitted()
        top_k = check_k(top_k, "top_k", self.config.top_k)
        k = max(top_k, self.config.member_top_k)
        scores = [_member_predict(m, X, k, beam_size) for m in self.members_]
        widths = {P.shape[1] for P in scores}
        if len(widths) != 1:
            raise ValueError(f"ensemble members disagree on the number of labels: {sorted(widths)}")
        return combine_scores(scores, self.config.combine, top_k, self.config.weights)

    @property
    def n_labels_(self) -> int | None:
        return self.members_[0].n_labels_ if self.members_ else None

    @property
    def n_features_in_(self) -> int | None:
        return self.members_[0].n_features_in_ if self.members_ else None

    def _check_fitted(self) -> None:
        if not self.members_:
            raise NotFittedError("this Ensemble has no members; give fitted models")
        for m in self.members_:
            m._check_fitted()

    def _save_arrays(self, folder: Path) -> dict[str, Any]:
        for i, member in enumerate(self.members_):
            member.save(folder / f"member_{i}")
        return {"n_members": len(self.members_), "input_kind": self.input_kind, "n_labels": self.n_labels_}

    def _load_arrays(self, folder: Path, shapes: dict[str, Any]) -> None:
        where = folder / "xmc.json"
        n_members = manifest_field(shapes, "n_members", int, where, low=1, high=MAX_MEMBERS)
        input_kind = manifest_field(shapes, "input_kind", str, where, choices=("texts", "features"))
        members = []
        for i in range(n_members):
            sub = folder / f"member_{i}"
            manifest = read_manifest(sub)
            members.append(Pipeline.load(sub) if manifest["kind"] == "pipeline"
                           else model_class(manifest["method"]).load(sub))
        if any(m.input_kind != input_kind for m in members) or len({m.n_labels_ for m in members}) != 1:
            raise ModelFormatError(f"{folder}: ensemble members disagree on their input or their label count")
        if self.config.weights and len(self.config.weights) != n_members:
            raise ModelFormatError(f"{folder}: {len(self.config.weights)} weights for {n_members} members")
        self.members_ = members
        self.input_kind = input_kind


def _member_predict(member, X, top_k: int, beam_size: int | None) -> sp.csr_matrix:
    if isinstance(member, Pipeline):  # a whole pipeline: it featurises the raw text itself
        inputs = {"texts": X} if member.input_kind == "texts" else {"features": X}
        return member.predict(**inputs, top_k=top_k, beam_size=beam_size)
    return member.predict(X, top_k=top_k, beam_size=beam_size)
