"""The error vocabulary of xmc.

Every error a user can cause derives from :class:`XMCError`; the CLI turns these into one line
on stderr and exit code 2. Programming errors (bugs) are left as ordinary exceptions.
"""

from __future__ import annotations


class XMCError(Exception):
    """Base class of every error that xmc raises on purpose."""


class InvalidConfigError(XMCError, ValueError):
    """A configuration value is out of its allowed range or of the wrong type."""


class InvalidInputError(XMCError, ValueError):
    """An argument given to a model or a command is unusable (wrong shape, type or value)."""


class DataFormatError(XMCError, ValueError):
    """An input file is malformed; the message names the file and the line."""


class DatasetNotFoundError(XMCError, FileNotFoundError):
    """A dataset name or split cannot be resolved to files."""


class NotFittedError(XMCError, ValueError, AttributeError):
    """A model is used before ``fit``."""


class ModelFormatError(XMCError):
    """A saved model folder is missing, corrupt or of an unsupported format version."""


class NetworkUnavailableError(XMCError):
    """A download was asked for where no network can be reached."""


class DataWarning(UserWarning):
    """Something in the data is unusual but not fatal (e.g. labels unseen in training)."""


class ConvergenceWarning(UserWarning):
    """An iterative solver stopped at its iteration cap before reaching its tolerance."""
