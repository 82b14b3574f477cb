from __future__ import annotations

import subprocess
import sys

import pytest

from xmc.exceptions import XMCError
from xmc.utils.memory import available_bytes, format_size, parse_size, peak_rss_bytes, rss_bytes


@pytest.mark.parametrize(("text", "expected"), [("8G", 8 << 30), ("512M", 512 << 20), ("1.5GB", 3 << 29),
                                                ("2GiB", 2 << 30), ("100k", 102_400), ("4096", 4096), (77, 77),
                                                (" 1t ", 1 << 40)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "8X", "1.2.3G"])
def test_parse_size_refuses(text):
    with pytest.raises(XMCError, match="8G, 512M or 1.5GB"):
        parse_size(text)


def test_format_size():
    assert format_size(3 << 29) == "1.5 GB" and format_size(5 << 20) == "5.0 MB" and format_size(2048) == "2 KB"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc figures")
def test_resident_memory_and_peak_follow_an_allocation():
    """In a fresh process: in the test run's own, an allocator holding freed pages (or the kernel's
    lazily summed per-thread counters) can make a new 64 MB block show no growth."""
    code = ("import numpy as np; from xmc.utils.memory import rss_bytes, peak_rss_bytes; before = rss_bytes(); "
            "block = np.ones(64 << 20, np.uint8); print(rss_bytes() - before, peak_rss_bytes() >= rss_bytes())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    grown, peak_ok = out.stdout.split()
    assert int(grown) > 48 << 20 and peak_ok == "True"
    assert peak_rss_bytes() >= rss_bytes()
    assert 0 < available_bytes()
