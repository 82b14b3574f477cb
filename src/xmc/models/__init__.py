"""Models: the common contract, the method registry, and the methods themselves.

Method modules are imported lazily through the registry, so torch-based methods cost nothing
until used.
"""

from xmc.models.base import XMCModel, method_names, model_class, register

__all__ = ["XMCModel", "method_names", "model_class", "register"]
