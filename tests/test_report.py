"""``xmc report``: a self-contained page with every plot, checked in a real headless Chromium."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from xmc.cli.main import main  # noqa: E402

ARTIFACTS = Path(os.environ.get("XMC_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[1] / ".cache" / "test-artifacts"))


def test_report_of_two_models_renders_with_every_plot(small_data, tmp_path, capsys):
    for name, seed in (("a", 0), ("b", 1)):
        assert main(["train", "--method", "xr-linear", "--data", str(small_data), "--out", str(tmp_path / name),
                     "--set", "tree.max_leaf_size=16", "--set", f"tree.seed={seed}"]) == 0
    out = tmp_path / "report"
    assert main(["report", "--model", str(tmp_path / "a"), "--model", str(tmp_path / "b"), "--data",
                 str(small_data), "--split", "dev", "--out", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "http" not in page.split("<body>", 1)[1].split("data:")[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["models"]) == {"a", "b"}
    a = metrics["models"]["a"]
    assert {"frequent", "few", "zero"} == set(a["metrics"]["groups"]) and len(a["deciles"]) == 10
    assert a["calibration"]["fitted_on"].endswith("/dev") and a["reliability"]
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{k}.png" for k in
                                                                ("groups", "deciles", "psp", "correct", "calibration"))
    capsys.readouterr()
    assert main(["report", "--model", str(tmp_path / "a"), "--data", str(small_data), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    _render(out / "index.html")


def _render(page: Path) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        view = browser.new_page()
        view.goto(page.as_uri())
        loaded = view.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        view.screenshot(path=str(ARTIFACTS / "report_page.png"), full_page=True)
        browser.close()
    assert loaded == [True] * 5
