"""The model contract, the registry of methods, and the model-folder manifest.

A model folder holds ``xmc.json`` (format version, kind, method, library versions, config,
shapes) beside its arrays (``.npz``, ``.safetensors``); nothing is pickled. Folders are written
atomically and checked on load.
"""

from __future__ import annotations

import importlib
import os
import platform
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from xmc._config import Config
from xmc.exceptions import InvalidConfigError, ModelFormatError, XMCError
from xmc.utils.folders import atomic_folder
from xmc.utils.io import read_json, write_json

FORMAT_VERSION = 1
MANIFEST = "xmc.json"

# method name -> "module:Class"; modules are imported only when the method is used, so the
# torch-based methods cost nothing to XR-Linear users.
_REGISTRY: dict[str, str] = {
    "xr-linear": "xmc.models.xr_linear:XRLinear",
    "xr-transformer": "xmc.models.xr_transformer:XRTransformer",
    "lightxml": "xmc.models.lightxml:LightXML",
    "cascadexml": "xmc.models.cascadexml:CascadeXML",
    "inceptionxml": "xmc.models.inceptionxml:InceptionXML",
    "syncxml": "xmc.models.inceptionxml:SyncXML",
    "elias": "xmc.models.elias:Elias",
    "elias++": "xmc.models.elias_pp:EliasPlusPlus",
    "dual-encoder": "xmc.models.dual_encoder:DualEncoder",
}
# Loadable from a folder but not trained by name (built from other models).
_COMPOSITES: dict[str, str] = {"ensemble": "xmc.models.ensemble:Ensemble"}
_NEURAL_HINT = "pip install torch==2.13.0 (or any CPU/CUDA build) first, then pip install 'xmc[transformer]'"


def register(method: str, target: str) -> None:
    _REGISTRY[method] = target


def method_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def model_class(method: str) -> type[XMCModel]:
    try:
        module, name = {**_REGISTRY, **_COMPOSITES}[method].split(":")
    except KeyError:
        raise XMCError(f"unknown method {method!r}; choose from {', '.join(_REGISTRY)}") from None
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "transformers", "safetensors", "tokenizers"):
            raise XMCError(f"{method} needs {exc.name}, which is not installed: {_NEURAL_HINT}") from None
        raise


def library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("xmc", "numpy", "scipy", "scikit-learn", "numba", "torch", "transformers"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def write_manifest(folder: Path, kind: str, method: str, config: Config | None, **extra: Any) -> None:
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "method": method,
        "versions": library_versions(),
        "config": None if config is None else config.to_dict(),
        **extra,
    }
    write_json(folder / MANIFEST, manifest)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The checked manifest of a model folder: a JSON object of the supported format version, with a
    known kind, a method name and (for bare models) a ``shapes`` object."""
    folder = Path(folder)
    if not folder.is_dir():
        backups = sorted(folder.parent.glob(f".{folder.name}.xmc-old-*")) if folder.name else []
        if backups:
            raise ModelFormatError(f"model folder {folder} does not exist; an interrupted replacement left the "
                                   f"previous model in {backups[-1]} (the next save to {folder} puts it back first)")
        raise ModelFormatError(f"model folder {folder} does not exist")
    if not (folder / MANIFEST).is_file():
        raise ModelFormatError(f"{folder} is not an xmc model folder (no {MANIFEST})")
    manifest = read_json(folder / MANIFEST)
    where = folder / MANIFEST
    if not isinstance(manifest, dict):
        raise ModelFormatError(f"{where} must hold a JSON object, not a {type(manifest).__name__}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"{folder} has model format version {version!r}; this xmc reads version {FORMAT_VERSION}"
        )
    manifest_field(manifest, "kind", str, where, choices=("model", "pipeline"))
    manifest_field(manifest, "method", str, where)
    if manifest["kind"] == "model":
        manifest_field(manifest, "shapes", dict, where)
        manifest_field(manifest, "config", dict, where)
    return manifest


def manifest_field(mapping: Any, key: str, kind: type | tuple[type, ...], where: Any, *, low: float | None = None,
                   high: float | None = None, choices: tuple | None = None, optional: bool = False) -> Any:
    """``mapping[key]`` checked for its type and range; a :class:`ModelFormatError` naming ``where``
    (the file) and the key otherwise. ``bool`` never passes for ``int``."""
    if not isinstance(mapping, dict) or key not in mapping:
        if optional:
            return None
        raise ModelFormatError(f"{where}: missing key {key!r}")
    value = mapping[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds) or (
            float in kinds and isinstance(value, float) and value != value):
        names = " or ".join(k.__name__ for k in kinds)
        raise ModelFormatError(f"{where}: {key!r} must be {names}, got {json_repr(value)}")
    if (low is not None and value < low) or (high is not None and value > high) or (
            choices is not None and value not in choices):
        raise ModelFormatError(f"{where}: {key!r} = {json_repr(value)} is out of range")
    return value


def int_list(mapping: Any, key: str, where: Any, *, low: int = 0, length: int | None = None) -> list[int]:
    """A manifest list of ints (each at least ``low``; exactly ``length`` of them when given)."""
    values = manifest_field(mapping, key, list, where)
    if (length is not None and len(values) != length) or not values or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= low for v in values):
        raise ModelFormatError(f"{where}: {key!r} must be a non-empty list of ints >= {low}"
                               + (f" of length {length}" if length is not None else "")
                               + f", got {json_repr(values)}")
    return values


def json_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_no_links(folder: Path) -> None:
    """Refuse a model folder holding symbolic links: every file a model reads must lie inside it."""
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            if os.path.islink(os.path.join(root, name)):
                raise ModelFormatError(f"{os.path.join(root, name)} is a symbolic link; a model folder must hold "
                                       "its own files")


def config_from_manifest(config_class: type[Config], data: Any, where: Any) -> Config:
    try:
        return config_class.from_dict(data)
    except (InvalidConfigError, TypeError) as exc:
        raise ModelFormatError(f"{where}: invalid config: {exc}") from None


class XMCModel(ABC):
    """Contract of every method: ``__init__(config)`` stores the config only; learned state lives in
    attributes ending with ``_``; ``predict`` returns a CSR of row-wise top-k scores."""

    method: ClassVar[str]
    config_class: ClassVar[type[Config]]
    input_kind: ClassVar[str] = "features"  # "features" (a CSR matrix) or "texts" (a list of str)

    def __init__(self, config: Config | None = None):
        self.config = config if config is not None else self.default_config()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, "
                            f"got {type(self.config).__name__}")

    @abstractmethod
    def fit(self, X, Y) -> XMCModel: ...

    @abstractmethod
    def predict(self, X, *, top_k: int | None = None, beam_size: int | None = None): ...

    @abstractmethod
    def _save_arrays(self, folder: Path) -> dict[str, Any]:
        """Write the learned arrays; return the shapes to record in the manifest."""

    @abstractmethod
    def _load_arrays(self, folder: Path, shapes: dict[str, Any]) -> None: ...

    @staticmethod
    def saved_record(shapes: dict[str, Any], key: str, kind: type) -> Any:
        """A fit record kept in the manifest (``fit_seconds``, ``epoch_logs``, ...), or an empty
        ``kind`` when a folder lacks it or holds something else there: a record is informative, never
        a reason to refuse a model."""
        value = shapes.get(key)
        return value if isinstance(value, kind) else kind()

    def quantize(self) -> bool:
        """Switch to int8 inference on the CPU where the method has a transformer encoder (the
        quantised model predicts but cannot be saved); whether anything changed."""
        return False

    @classmethod
    def default_config(cls) -> Config:
        """The config used when none is given (a method may size it to the machine)."""
        return cls.config_class()

    @classmethod
    def _test_config(cls) -> Config:
        """A tiny, fast config for the shared model checks."""
        return cls.config_class()

    def save(self, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the model folder atomically. An existing xmc model there is replaced only with
        ``overwrite``; any other existing content is never touched (:mod:`xmc.utils.folders`)."""
        self._check_fitted()
        with atomic_folder(folder, overwrite) as tmp:
            shapes = self._save_arrays(tmp)
            write_manifest(tmp, "model", self.method, self.config, shapes=shapes)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> XMCModel:
        """A model from its folder; every file is checked against the manifest (shapes, dtypes,
        index bounds), and anything wrong is a :class:`ModelFormatError` naming the file."""
        folder = Path(folder)
        manifest = read_manifest(folder)
        if manifest["kind"] != "model" or manifest["method"] != cls.method:
            raise ModelFormatError(f"{folder} holds a {manifest['method']} {manifest['kind']}, "
                                   f"not a {cls.method} model")
        check_no_links(folder)
        model = cls(config_from_manifest(cls.config_class, manifest["config"], folder / MANIFEST))
        model._load_arrays(folder, manifest["shapes"])
        return model

    @abstractmethod
    def _check_fitted(self) -> None: ...
