"""xmc: extreme multi-label text classification (XR-Linear, XR-Transformer and friends).

Importing xmc has no side effects and does not import torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

from xmc import metrics  # noqa: E402
from xmc.models.pipeline import load  # noqa: E402


def __getattr__(name: str):
    # model classes resolve lazily so `import xmc` stays light
    if name in ("XRLinear", "XRLinearConfig"):
        from xmc.models import xr_linear

        return getattr(xr_linear, name)
    if name == "api":
        import importlib

        return importlib.import_module("xmc.api")
    raise AttributeError(f"module 'xmc' has no attribute {name!r}")


__all__ = ["XRLinear", "XRLinearConfig", "__version__", "api", "load", "metrics"]
