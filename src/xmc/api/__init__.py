"""The one code path behind the CLI, the Python API and the HTTP server.

>>> import xmc                                                  # doctest: +SKIP
>>> result = xmc.api.train("xr-linear", "Reuters-21578", out="models/reuters")   # doctest: +SKIP
>>> xmc.api.evaluate("models/reuters", "Reuters-21578", "test")["P@1"]          # doctest: +SKIP

One module per concern: :mod:`~xmc.api.config` (methods and settings), :mod:`~xmc.api.data`
(datasets), :mod:`~xmc.api.training`, :mod:`~xmc.api.prediction` and :mod:`~xmc.api.evaluation`
(metrics and the report). This facade is what the CLI, the server and users import.
"""

from __future__ import annotations

from xmc.api.config import (
    NEURAL_OPTIONS,
    combiners,
    default_config,
    features_config,
    method_config,
    methods,
    neural_overrides,
)
from xmc.api.data import (
    dataset,
    dataset_info,
    datasets,
    derive_dataset,
    fetch_dataset,
    import_dataset,
    synth_dataset,
)
from xmc.api.evaluation import evaluate, evaluate_split, format_metrics, report
from xmc.api.prediction import (
    check_texts,
    load,
    load_features,
    predict,
    predict_split,
    predict_texts,
    ranked_rows,
    write_predictions,
)
from xmc.api.preflight import Preflight, preflight
from xmc.api.training import DEFAULT_DATASET, DEFAULT_METHOD, TrainResult, ensemble, train
from xmc.api.update import UpdateResult, update
from xmc.data.datasets import Dataset, Split, resolve
from xmc.models.label_text import LabelTextConfig
from xmc.models.pipeline import Pipeline

__all__ = [
    "LabelTextConfig",
    "DEFAULT_DATASET", "DEFAULT_METHOD", "Dataset", "NEURAL_OPTIONS", "Pipeline", "Preflight", "Split", "TrainResult",
    "UpdateResult", "check_texts", "combiners", "dataset", "dataset_info", "datasets", "default_config",
    "derive_dataset", "ensemble", "evaluate", "evaluate_split", "features_config", "fetch_dataset", "format_metrics",
    "import_dataset", "load", "load_features", "method_config", "methods", "neural_overrides", "predict",
    "predict_split", "predict_texts", "preflight", "ranked_rows", "report", "resolve", "synth_dataset", "train",
    "update", "write_predictions",
]
