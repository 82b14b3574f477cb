"""The benchmark scripts that cannot run in a normal test: syntax, and a dry run of the GPU script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def test_gpu_script_parses():
    subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "neural" / "gpu.sh")], check=True)


@pytest.mark.slow
def test_gpu_script_dry_run_on_cpu(shared_data):
    """The whole GPU benchmark on a tiny slice with tiny budgets: every method trains, predicts and
    joins an ensemble, and the report is written (outside benchmarks/results)."""
    env = {**os.environ, "XMC_PYTHON": sys.executable, "XMC_DATA_DIR": str(shared_data), "XMC_PROGRESS": "0"}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "neural" / "gpu.sh"), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (REPO / "benchmarks" / ".work" / "neural_gpu_dry_run.md").read_text()
    for system in ("| xr-linear |", "| xr-transformer |", "| lightxml |", "| cascadexml |", "| elias++ |",
                   "| dual-encoder |", "| ensemble lightxml + xr-linear (average) |"):
        assert system in report


RESULTS = REPO / "benchmarks" / "results"


def _common():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from lib import common
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return common


def test_a_rerun_rewrites_the_results_and_keeps_the_notes_written_by_hand(tmp_path):
    common = _common()
    (tmp_path / "demo.notes.md").write_text("# demo: notes\n\n- the 1.00 is a fluke\n")
    path = common.write_result("demo", "python demo.py --again", "| a | 2.00 |", folder=tmp_path)
    text = path.read_text()
    assert text.startswith("# demo\n\n- command: `python demo.py --again`\n- machine: ") and "| a | 2.00 |" in text
    assert text.rstrip().endswith("[`demo.notes.md`](demo.notes.md).")
    assert (tmp_path / "demo.notes.md").read_text() == "# demo: notes\n\n- the 1.00 is a fluke\n"
    alone = common.write_result("plain", "python plain.py", "body", folder=tmp_path).read_text()
    assert "notes" not in alone


def test_rows_typed_in_from_an_older_table_say_so():
    common = _common()
    mark = common.copied_mark({"copied": "neural.md of 2026-12-01"})
    assert mark == " (copied from neural.md of 2026-12-01, not rerun)"
    assert common.copied_mark({"metrics": {}}) == ""


def test_results_files_hold_generated_text_and_point_to_the_notes_written_by_hand():
    """Each ``results/X.md`` opens with its command, machine and date; notes by hand live in
    ``X.notes.md`` (which no script writes) and ``X.md`` ends by pointing to them."""
    for path in sorted(RESULTS.glob("*.md")):
        if path.name.endswith(".notes.md"):
            assert (RESULTS / path.name.replace(".notes.md", ".md")).exists(), f"{path.name} has no results file"
            continue
        text = path.read_text(encoding="utf-8")
        header = rf"# {re.escape(path.stem)}\n\n- command: `[^`]+`.*\n- machine: .+\n- date: .+\n"
        assert re.match(header, text), f"{path.name} does not open with its command, machine and date"
        assert not re.search(r"(?im)^(## )?notes \(|written by hand(?!\s+on these results)", text), \
            f"{path.name} holds notes written by hand: move them to {path.stem}.notes.md"
        notes = RESULTS / f"{path.stem}.notes.md"
        if notes.exists():
            assert text.rstrip().endswith(f"[`{notes.name}`]({notes.name}).")
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "benchmarks").rglob("*.py")
                        if ".work" not in p.parts)
    assert not re.search(r"notes\.md\"?\)?\.write_text|open\([^)]*notes\.md[^)]*['\"]w", sources)


def test_ledger_rows_typed_in_are_marked_in_their_tables():
    """Rows a ledger marks as copied carry the mark in the table their script wrote."""
    for ledger in sorted(RESULTS.glob("*.rows.json")):
        table = (RESULTS / ledger.name.replace(".rows.json", ".md")).read_text(encoding="utf-8")
        copied = [row["copied"] for row in json.loads(ledger.read_text()).values() if row.get("copied")]
        for source in set(copied):
            assert table.count(f"(copied from {source}, not rerun)") >= copied.count(source), ledger.name


SCRIPTS = sorted(p for p in (REPO / "benchmarks").rglob("*.py")
                 if ".work" not in p.parts and "lib" not in p.parts and p.parent != REPO / "benchmarks")
PEER_SCRIPTS = {"peers_runner.py", "peers_xrt_runner.py", "text_path_pecos.py", "loadgen.py"}  # run, not imported


def test_scripts_live_in_folders_by_concern_and_import_only_the_shared_library():
    import ast

    assert not list((REPO / "benchmarks").glob("*.py")), "a script outside the folders"
    names = {p.stem for p in SCRIPTS}
    assert len(names) == len(SCRIPTS)
    for path in SCRIPTS:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & names, f"{path.name} imports the script(s) {sorted(imported & names)}"


@pytest.mark.parametrize("script", [p for p in SCRIPTS if p.name not in PEER_SCRIPTS], ids=lambda p: p.stem)
def test_every_script_starts_and_explains_itself(script):
    """``--help`` imports the script and its library from wherever it is run: the paths hold."""
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                          cwd=REPO / "benchmarks")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


def test_the_bm25_floor_is_okapi_bm25_by_hand(monkeypatch):
    """label_text.py's BM25 rows: saturated counts, BM25 idf from the featuriser's document
    frequencies, lengths against the training documents' mean, the label text's terms as the query."""
    import math

    from xmc.features.tfidf import TfidfConfig, TfidfFeaturizer

    monkeypatch.syspath_prepend(str(REPO / "benchmarks" / "accuracy"))
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from label_text import bm25_rows, bm25_scores

    train = ["the cat sat", "the dog ran far away", "cat and dog", "birds fly"] * 3
    featurizer = TfidfFeaturizer(TfidfConfig(ngram_max=1, min_df=1)).fit(train)
    got = bm25_scores(bm25_rows(featurizer, ["the cat cat", "dog birds"], train, len(train)), featurizer,
                      ["cat", "dog ran", "birds birds"]).toarray()
    mean_length = (3 + 5 + 3 + 2) / 4

    def weight(tf, length, df, n=12, k1=1.2, b=0.75):
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / mean_length))

    want = [[weight(2, 3, 6), 0.0, 0.0],
            [0.0, weight(1, 2, 6), weight(1, 2, 3)]]  # "ran" is not in "dog birds"; a query word counts once
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_pseudo_unseen_makes_the_rare_labels_unseen_and_scores_the_floor_by_hand(monkeypatch):
    """lib.pseudo_unseen: the labels with 1-50 training documents are the ones made unseen, their
    documents leave the training set, and the floor is the cosine ranking worked out here."""
    from types import SimpleNamespace

    import scipy.sparse as sp

    from xmc.features.tfidf import TfidfConfig, TfidfFeaturizer
    from xmc.utils.sparse import l2_normalize_rows

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    from lib.pseudo_unseen import pseudo_unseen

    rng = np.random.default_rng(0)
    n_labels, rare = 14, 8  # labels 0-7 have 10 training documents each, the others 60
    label_words = [f"w{j} x{j}" for j in range(n_labels)]
    docs, labels = [], []
    for j in range(n_labels):
        for _ in range(10 if j < rare else 60):
            other = int(rng.integers(rare, n_labels))
            docs.append(f"{label_words[j]} {label_words[other]} filler{int(rng.integers(50))}")
            labels.append(sorted({j, other}))
    featurizer = TfidfFeaturizer(TfidfConfig(ngram_max=1, min_df=1)).fit(docs + label_words)
    X = sp.csr_matrix(l2_normalize_rows(featurizer.transform(docs)), dtype=np.float32)
    Y = sp.csr_matrix((np.ones(sum(map(len, labels)), np.float32), np.concatenate(labels),
                       np.cumsum([0] + [len(x) for x in labels])), shape=(len(docs), n_labels))
    crowd = " ".join(f"w{j} x{j} w{j}" for j in range(1, 6))  # five other rare labels' words, each twice as often
    dev = ["w0 x0 w1 filler1", f"{crowd} w0", f"{crowd} w6 x6 w7", "w3 filler2", "w9 x9"]
    truth_rows = [[0], [0], [7], [3], [9]]
    dev_truth = sp.csr_matrix((np.ones(5, np.float32), np.concatenate(truth_rows), np.arange(6)),
                              shape=(5, n_labels))
    texts = l2_normalize_rows(featurizer.transform(label_words))
    scorer = SimpleNamespace(config=SimpleNamespace(top_k=4, neighbours=2, ranker_docs=100, centroid_terms=0,
                                                    feedback_docs=3),
                             label_tfidf=texts, name_tfidf=texts)
    X_dev = sp.csr_matrix(l2_normalize_rows(featurizer.transform(dev)), dtype=np.float32)
    got = pseudo_unseen(scorer, X, Y, X_dev, dev_truth, {"dev": np.arange(5)}, rare, seed=3)

    assert got["training_docs_left"] == len(docs) - 10 * rare  # no rare label is another document's second
    assert got["dev"]["docs"] == 4  # the last dev document has none of them
    cosines = (X_dev @ texts[:rare].T).toarray()  # the floor: the rare labels by cosine, best first
    want = []
    for row in range(4):
        top = np.argsort(-cosines[row], kind="stable")[:5]
        true = set(dev_truth[row].indices)
        want.append(100 * len(true & set(top)) / min(len(true), 5))
    assert want == [100.0, 0.0, 0.0, 100.0]  # a crowded document's label is sixth or seventh
    assert got["dev"]["floor"]["RP@5"] == pytest.approx(np.mean(want))
    assert 0.0 <= got["dev"]["ranker"]["RP@5"] <= 100.0
