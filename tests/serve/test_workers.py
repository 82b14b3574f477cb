"""How ``xmc serve --workers`` prepares the parent before it forks (without forking)."""

from __future__ import annotations

import gc
import os

import pytest

pytest.importorskip("fastapi")

from xmc.serve import workers  # noqa: E402
from xmc.serve.app import ServeSettings  # noqa: E402


@pytest.fixture
def dry_run(monkeypatch):
    """``workers.run`` up to the fork: what the environment held when the model loaded, what the
    workers were to be given, and whether the collector was frozen."""
    seen = {}

    class FakeSupervisor:
        def __init__(self, target, n):
            seen.update(n=n, frozen=gc.get_freeze_count() > 0)

        def run(self):
            pass

    def fake_load(model, quantize=False):
        seen.update(omp=os.environ.get("OMP_NUM_THREADS"), policy=os.environ.get("OMP_WAIT_POLICY"),
                    quantize=quantize)
        return object()

    monkeypatch.setattr(workers, "Supervisor", FakeSupervisor)
    monkeypatch.setattr(workers.api, "load", fake_load)
    monkeypatch.setattr(workers.api, "predict_texts", lambda *a, **k: seen.setdefault("warmed", True))
    monkeypatch.setattr(workers, "create_app", lambda pipeline, settings, **kw: seen.update(settings=settings))
    monkeypatch.setattr("uvicorn.Config.bind_socket", lambda self: None)
    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY"):
        monkeypatch.setenv(name, "recorded")  # so that teardown restores what was there before run() set it
        monkeypatch.delenv(name)
    yield seen
    gc.unfreeze()


def test_the_parent_loads_with_one_openmp_thread_and_warms_up_before_forking(dry_run, tmp_path):
    """OpenMP's pool does not survive a fork: a worker of a parent that had started it hangs."""
    workers.run(tmp_path, settings=ServeSettings(threads=6, quantize=True), workers=3)
    assert dry_run["omp"] == "1" and dry_run["policy"] == "PASSIVE" and dry_run["quantize"]
    assert dry_run["warmed"] and dry_run["frozen"] and dry_run["n"] == 3
    assert dry_run["settings"].threads == 2  # six threads shared out among three workers


def test_a_single_process_keeps_every_thread(dry_run, tmp_path, monkeypatch):
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: dry_run.update(ran=kw))
    workers.run(tmp_path, settings=ServeSettings(), workers=1)
    assert dry_run["omp"] is None and dry_run["policy"] == "PASSIVE" and dry_run["ran"]["workers"] == 1
    assert "warmed" not in dry_run  # the app warms itself up when it starts
