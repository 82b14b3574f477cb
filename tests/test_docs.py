"""The documentation site builds with warnings as errors (no broken link, page or reference), and its
generated pages hold what the code and the benchmarks hold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_the_site_builds_strictly_with_every_page(site):
    for page in ("index.html", "getting-started/index.html", "methods/xr-linear/index.html",
                 "reference/commands/index.html", "reference/settings/index.html", "reference/api/index.html",
                 "benchmarks/results/label_text/index.html", "serving/index.html"):
        assert (site / page).is_file(), page


def test_the_command_reference_lists_every_command(site):
    from xmc.cli.main import build_parser

    text = (REPO / "docs" / "reference" / "commands.md").read_text()
    for action in build_parser()._subparsers._group_actions[0].choices:
        assert f"## `xmc {action}`" in text
    assert "--label-text-set" in text


def test_the_settings_and_api_pages_come_from_the_code(site):
    from xmc.models import method_names

    settings = (REPO / "docs" / "reference" / "settings.md").read_text()
    assert all(f"## {m}\n" in settings for m in method_names())
    assert "| `label_text" not in settings and "| `tree.max_leaf_size` | `100` |" in settings
    assert "| `encoder.max_seq_len` | `32` | `128` |" in settings  # where the CPU and GPU configs differ
    api = (site / "reference" / "api" / "index.html").read_text()
    assert "predict_texts" in api and "precision_at_k" in api


def test_the_results_pages_are_the_benchmarks_files(site):
    for path in (REPO / "benchmarks" / "results").glob("*.md"):
        assert (REPO / "docs" / "benchmarks" / "results" / path.name).read_text() == path.read_text()
