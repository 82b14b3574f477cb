"""Progress bars that stay quiet when output is not a terminal (CI logs, pipes)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(iterable=None, *, total=None, desc: str = "", disable: bool | None = None, **kwargs):
    """A tqdm bar shown on an interactive stderr, or when ``XMC_PROGRESS=1``."""
    if disable is None:
        forced = os.environ.get("XMC_PROGRESS")
        disable = (forced == "0") if forced is not None else not sys.stderr.isatty()
    return tqdm(iterable, total=total, desc=desc, disable=disable, leave=False, dynamic_ncols=True, **kwargs)
