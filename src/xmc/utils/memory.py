"""This process's resident memory and its peak, the memory a new run may use, and sizes like ``8G``.

Linux gives the figures from ``/proc``; elsewhere the peak is ``ru_maxrss`` and the memory
available is unknown (None).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from xmc.exceptions import XMCError

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """Bytes from ``8G``, ``512M``, ``1.5GB``, ``2GiB`` or a plain number of bytes (powers of 1024)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?[bB])?\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise XMCError(f"a memory size looks like 8G, 512M or 1.5GB; got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(n_bytes: float) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}"
    return f"{n_bytes / 1024:,.0f} KB"


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_bytes() -> int:
    import resource  # POSIX only

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def rss_bytes() -> int:
    """Resident memory now (the peak so far where /proc is missing)."""
    kb = _status_kb("VmRSS")
    return kb * 1024 if kb is not None else _maxrss_bytes()


def peak_rss_bytes() -> int:
    kb = _status_kb("VmHWM")
    return kb * 1024 if kb is not None else _maxrss_bytes()


def available_bytes() -> int | None:
    """Memory a new process could use now: the kernel's MemAvailable, bounded by this cgroup's limit."""
    try:
        meminfo = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M)
    if not found:
        return None
    available = int(found.group(1)) * 1024
    limit = _cgroup_room()
    return min(available, limit) if limit is not None else available


def _cgroup_room() -> int | None:
    """What is left under a cgroup v2 memory limit (containers), or None without one."""
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text()))
    except (OSError, ValueError):
        return None
