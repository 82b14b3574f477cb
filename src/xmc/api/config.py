"""Methods and their settings: default configs, ``--set`` overrides, the neural flags."""

from __future__ import annotations

import dataclasses
from typing import Any

from xmc._config import Config
from xmc.exceptions import XMCError
from xmc.features.normalize import FeaturesConfig
from xmc.features.tfidf import TfidfConfig
from xmc.models.base import model_class


def method_config(method: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[Config, TfidfConfig]:
    """The method's default config and the TF-IDF config, with ``a.b=value`` overrides applied
    (keys starting with ``tfidf.`` go to the featuriser, ``features.`` to :func:`features_config`)."""
    cls = model_class(method)
    default = cls.default_config()
    overrides = [s for s in overrides if not s.startswith("features.")]
    if any(f.name == "tfidf" for f in dataclasses.fields(default)):  # the model owns its featuriser
        return default.with_overrides(overrides), TfidfConfig()
    tfidf_sets = [s[len("tfidf."):] for s in overrides if s.startswith("tfidf.")]
    model_sets = [s for s in overrides if not s.startswith("tfidf.")]
    return default.with_overrides(model_sets), TfidfConfig().with_overrides(tfidf_sets)


def features_config(overrides: list[str] | tuple[str, ...] = ()) -> FeaturesConfig:
    """How given feature rows (bag-of-words data) are normalised: ``features.norm=l2|l1|none``."""
    return FeaturesConfig().with_overrides([s[len("features."):] for s in overrides if s.startswith("features.")])


NEURAL_OPTIONS = ("encoder", "max_seq_len", "device", "threads")


def neural_overrides(method: str, **values: Any) -> list[str]:
    """``--set`` strings for the neural options (``encoder``, ``max_seq_len``, ``device``, ``threads``)
    of ``method``, wherever its config keeps them; an XMCError when the method has no such setting."""
    leaf = {"encoder": "name", "max_seq_len": "max_seq_len", "device": "device", "threads": "threads"}
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return []
    rows = [name for name, _, _ in model_class(method).default_config().help_rows()]
    out = []
    for option, value in given.items():
        parent = "encoder." if option in ("encoder", "max_seq_len") else ""
        keys = [r for r in rows if r.endswith("." + leaf[option]) and (not parent or r.startswith(parent))]
        if not keys:
            flags = ", ".join("--" + o.replace("_", "-") for o in NEURAL_OPTIONS)
            raise XMCError(f"{flags} apply to the neural methods, not {method}")
        out.append(f"{keys[0]}={value}")
    return out


def default_config(method: str) -> dict[str, Any]:
    """``xmc config METHOD``: every setting with its default (the TF-IDF ones under ``tfidf``)."""
    model_cfg, tfidf_cfg = method_config(method)
    return {"tfidf": tfidf_cfg.to_dict(), "features": FeaturesConfig().to_dict(), **model_cfg.to_dict()}


def methods() -> tuple[str, ...]:
    from xmc.models.base import method_names

    return method_names()


def combiners() -> tuple[str, ...]:
    from xmc.models.ensemble import COMBINERS

    return COMBINERS
