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
from xmc.exceptions import ModelFormatError, XMCError
from xmc.utils.io import atomic_folder, read_json, write_json

FORMAT_VERSION = 1
MANIFEST = "xmc.json"

# method name -> "module:Class"; modules are imported only when the method is used, so the
# torch-based methods cost nothing to XR-Linear users.
_REGISTRY: dict[str, str] = {
    "xr-linear": "xmc.models.xr_linear:XRLinear",
    "xr-transformer": "xmc.models.xr_transformer:XRTransformer",
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
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFormatError(f"model folder {folder} does not exist")
    if not (folder / MANIFEST).is_file():
        raise ModelFormatError(f"{folder} is not an xmc model folder (no {MANIFEST})")
    manifest = read_json(folder / MANIFEST)
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFormatError(
            f"{folder} has model format version {version!r}; this xmc reads version {FORMAT_VERSION}"
        )
    return manifest


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

    @classmethod
    def default_config(cls) -> Config:
        """The config used when none is given (a method may size it to the machine)."""
        return cls.config_class()

    @classmethod
    def _test_config(cls) -> Config:
        """A tiny, fast config for the shared model checks."""
        return cls.config_class()

    def save(self, folder: str | os.PathLike) -> Path:
        self._check_fitted()
        with atomic_folder(folder) as tmp:
            shapes = self._save_arrays(tmp)
            write_manifest(tmp, "model", self.method, self.config, shapes=shapes)
        return Path(folder)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> XMCModel:
        manifest = read_manifest(folder)
        if manifest.get("kind") != "model" or manifest.get("method") != cls.method:
            raise ModelFormatError(f"{folder} holds a {manifest.get('method')} {manifest.get('kind')}, "
                                   f"not a {cls.method} model")
        model = cls(cls.config_class.from_dict(manifest["config"]))
        model._load_arrays(Path(folder), manifest.get("shapes", {}))
        return model

    @abstractmethod
    def _check_fitted(self) -> None: ...
