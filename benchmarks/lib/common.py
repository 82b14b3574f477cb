"""Shared helpers of the benchmark scripts: machine description, peers' venv, features, report."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]  # benchmarks/
WORK = ROOT / ".work"
RESULTS = ROOT / "results"
PEERS_VENV = WORK / "peers-venv"
PEER_PACKAGES = ["numpy<2", "scipy<1.14", "libpecos==1.2.8", "omikuji==0.5.2", "napkinxc==0.7.2"]


def neural_models_spec() -> str:
    """``--models`` default of the scripts that reuse the EURLEX57K models benchmarks/neural/neural.py trained."""
    folder = WORK / "neural" / "EURLEX57K"
    return f"xr-linear={folder / 'xr-linear' / 'model'},xr-transformer={folder / 'xr-transformer' / 'model'}"


def timed_predictions(model, Xt, top_k: int, n_latency: int) -> tuple:
    """Scores of ``Xt`` after a warm-up (numba kernels compile or load from cache), the batch time
    per document in ms, and the median latency of one-document calls."""
    model.predict(Xt[:8], top_k=top_k)  # the one-thread kernels
    model.predict(Xt[:500], top_k=top_k)  # and the threaded ones
    t0 = time.perf_counter()
    P = model.predict(Xt, top_k=top_k)
    batch_ms = 1000 * (time.perf_counter() - t0) / Xt.shape[0]
    latency = median_latency_ms(lambda i: model.predict(Xt[i], top_k=top_k), n_latency, Xt.shape[0])
    return P, batch_ms, latency


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def today() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M")


def peers_python() -> Path:
    """The peers' own venv (libpecos pins numpy<2, scipy<1.14): created on first use."""
    py = PEERS_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating the peers' venv in {PEERS_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return py


def eurlex_features(data: str, work: Path):
    """TF-IDF (xmc's defaults: word 1-2 grams, sublinear tf, min_df 2, 500k terms) of train and dev,
    cached as npz, with the label vocabulary built on train."""
    from xmc.data import LabelVocab, resolve
    from xmc.features import TfidfFeaturizer

    work.mkdir(parents=True, exist_ok=True)
    dataset = resolve(data)
    train, dev = dataset.load("train"), dataset.load("dev")
    vocab = LabelVocab.build(train.labels)
    if not (work / "X.dev.npz").exists():
        featurizer = TfidfFeaturizer()
        sp.save_npz(work / "X.trn.npz", featurizer.fit_transform(train.texts), compressed=False)
        sp.save_npz(work / "X.dev.npz", featurizer.transform(dev.texts), compressed=False)
        sp.save_npz(work / "Y.trn.npz", vocab.encode(train.labels).Y, compressed=False)
    return vocab, train, dev


def score_predictions(P: sp.csr_matrix, vocab, train_labels, dev_labels) -> dict[str, float]:
    """xmc's metrics with unseen dev labels kept as misses, propensities from train (A .55, B 1.5)."""
    from xmc.metrics import evaluate_scores, inv_propensity

    truth = vocab.encode(dev_labels, keep_unseen=True).Y
    Y = vocab.encode(train_labels).Y
    P = sp.csr_matrix(P)
    P = sp.csr_matrix((P.data, P.indices, P.indptr), shape=(P.shape[0], truth.shape[1]))
    return evaluate_scores(truth, P, inv_propensity(Y, n_labels=truth.shape[1]), ks=(1, 3, 5))


def write_result(name: str, command: str, body: str, folder: Path | None = None) -> Path:
    """Write ``results/<name>.md``: the command, machine and date, then ``body``. Notes written by hand
    live in ``<name>.notes.md``, which no benchmark writes, so a rerun keeps them; the results file
    points to them."""
    folder = folder or RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(f"# {name}\n\n- command: `{command}`\n- machine: {machine()}\n- date: {today()}\n\n{body}\n"
                    + notes_pointer(name, folder))
    return path


def notes_pointer(name: str, folder: Path | None = None) -> str:
    """The line a results file ends with when hand-written notes on it exist."""
    notes = (folder or RESULTS) / f"{name}.notes.md"
    return f"\nNotes written by hand on these results: [`{notes.name}`]({notes.name}).\n" if notes.exists() else ""


def copied_mark(row: dict) -> str:
    """What a table row says when its figures were typed in from an earlier table, not rerun."""
    return f" (copied from {row['copied']}, not rerun)" if row.get("copied") else ""


def ledger(name: str) -> dict[str, dict]:
    """Rows a benchmark finished in earlier runs, by key, from ``results/<name>.rows.json``: kept beside
    the results file (not in ``.work``, which is lost with the machine) so that a table can grow over
    sessions without training everything again."""
    path = RESULTS / f"{name}.rows.json"
    return json.loads(path.read_text()) if path.exists() else {}


def record(name: str, key: str, row: dict) -> None:
    """Add or replace one finished row of the ledger (numbers only: no arrays, no models)."""
    rows = ledger(name)
    rows[key] = row
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.rows.json").write_text(json.dumps(rows, indent=1, default=float) + "\n")


SELECTION_SEED = 20261203


def halves(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Dev cut once, by a seeded random permutation, into a *selection* half (on which settings are
    chosen) and a *report* half (which says how the chosen setting does on documents no choice saw);
    random because the splits are sorted by CELEX number, so a slice from the start is old acts only."""
    order = np.random.default_rng(SELECTION_SEED).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


WEIGHTED_COMBINERS = ("average", "softmax_average", "rank_average")
WEIGHT_GRID = np.round(np.arange(0.0, 1.0001, 0.05), 2)  # the second member's share of the say


def best_combination(scores: list[sp.csr_matrix], truth: sp.csr_matrix) -> tuple[str, float]:
    """The combiner and the second member's weight with the best P@1 + P@5 of two members' ``scores``
    against ``truth``: how a weighted ensemble is chosen on dev's selection half."""
    from xmc.metrics import precision_at_k
    from xmc.models.ensemble import combine_scores

    trials = []
    for combine in WEIGHTED_COMBINERS:
        for w in WEIGHT_GRID:
            P = combine_scores(scores, combine, 5, (1 - w, w))
            trials.append((sum(100 * precision_at_k(truth, P, k) for k in (1, 5)), combine, float(w)))
    _, combine, w = max(trials)
    return combine, w


def run_command(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """A command in its own process: wall seconds, its own peak RSS (MB, from wait4) and its stdout."""
    t0 = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=f, text=True, env=env)
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    seconds = time.perf_counter() - t0
    log.write_text(log.read_text() + stdout)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "stdout": stdout}


def stage_seconds(stdout: str) -> dict[str, float]:
    return {k: float(v) for k, v in re.findall(r"(\w+) ([0-9.]+)s", stdout)}


def titles_dataset(data: str) -> str:
    """EURLEX57K-titles (``xmc data derive``: the same documents, the title as text), built once in
    benchmarks/.work/data."""
    from xmc import api

    out = WORK / "data" / f"{Path(str(api.resolve(data).path)).name}-titles"
    if not out.is_dir():
        api.derive_dataset(data, "title", out)
    return str(out)


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_latency_ms(fn, n: int, n_rows: int) -> float:
    import time

    lat = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i % n_rows)
        lat.append(1000 * (time.perf_counter() - t0))
    return float(np.median(lat))
