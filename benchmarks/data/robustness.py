"""Robustness of xmc: malformed inputs to every reader and command, ``kill -9`` then the same command
again, and the user's own files next to xmc's outputs.

    python benchmarks/data/robustness.py [--data EURLEX57K] [--cases 150] [--kills 6] [--seed 0]

Writes benchmarks/results/robustness.md. Three parts:

1. Malformed inputs. Valid files (a small EURLEX57K text dataset, a bag-of-words slice of Bibtex,
   label-name files, a trained model folder, ``--set`` strings) are damaged by
   :mod:`xmc.utils.faults` (truncation, flipped bytes, NULs, latin-1 and UTF-16, BOMs, CRLF,
   dropped or doubled lines, random bytes, oversized lines, broken gzip, JSON values swapped at
   random key paths, arrays made negative, huge, NaN, reshaped or retyped, deleted files) and fed to
   the readers in-process and to the CLI commands. A reader must return a result or raise an
   XMCError with a message; a command must exit 0, or 2 with one line on stderr and no traceback.
   A sample of the CLI cases also runs in a child process, to catch a crash of the interpreter.
2. Kill and resume. ``xmc train`` (XR-Linear, and XR-Transformer with a tiny random BERT) is killed
   with SIGKILL at named points (xmc.utils.faults) and at random instants, then the same command
   runs again (``--resume`` for XR-Transformer); the model must equal an uninterrupted run's, and
   an existing model replaced with ``--overwrite`` must load, old or new, at every instant.
3. User files. Commands aimed at folders and files the user owns must leave every byte of them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/, for its lib
from lib import common  # noqa: E402

from xmc.utils.faults import ARRAY_DAMAGES, BYTE_DAMAGES, damage_array_file, damage_bytes, damage_json  # noqa: E402

XR_LINEAR_SET = ["--set", "tree.max_leaf_size=16"]
XRT_SET = ["--set", "encoder.n_layers=0", "--set", "finetune.steps=[6,6,10]", "--set", "finetune.batch_size=16",
           "--set", "finetune.lr=0.001", "--set", "finetune.eval_docs=0", "--set", "ranker.tree.max_leaf_size=16",
           "--set", "matcher_tree.max_leaf_size=16", "--device", "cpu", "--max-seq-len", "24"]
XR_LINEAR_POINTS = ["xr-linear:level@1", "xr-linear:level@2", "file:written@1", "file:written@3", "folder:written@1",
                    "folder:written@2", "train:saved"]
OVERWRITE_POINTS = ["xr-linear:level@1", "file:written@2", "folder:written@2", "folder:exchanged"]
XRT_POINTS = ["trainer:step@3", "trainer:step@9", "file:written@1", "folder:written@1", "folder:written@2",
              "xr-linear:level@1"]


# ---------------------------------------------------------------- fixtures

def make_datasets(data: str, root: Path) -> dict[str, Path]:
    from xmc.data import read_bow, resolve, write_bow, write_text_split

    src = resolve(data)
    small = root / "Small"
    for split, n in (("train", 300), ("dev", 60)):
        part = src.load(split)
        write_text_split(small, split, part.texts[:n], part.labels[:n])
    (small / "label_names.tsv").write_text("".join(f"{lab}\tname of {lab}\n" for lab in ("155", "1519", "3071")))
    X, Y = read_bow(Path(src.path).parent / "Bibtex" / "Bibtex_data.txt.gz")
    tiny = root / "Tiny"
    tiny.mkdir()
    write_bow(tiny / "Tiny_data.txt", X[:300], Y[:300])
    return {"text": small, "bow": tiny}


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``xmc ARGV`` in this process: (exit code, stdout, stderr)."""
    from xmc.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def classify_cli(code: int, err: str) -> str:
    if code == 0:
        return "ok"
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # progress bars aside
    if code == 2 and len(lines) == 1 and ": error: " in lines[0] and "Traceback" not in err:
        return "clean error"
    return f"FAIL (exit {code}: {lines[-1][:120] if lines else 'no message'})"


def classify_call(fn) -> str:
    from xmc.exceptions import XMCError

    try:
        fn()
    except XMCError as exc:
        return "clean error" if str(exc).strip() else "FAIL (XMCError without a message)"
    except Exception as exc:  # noqa: BLE001  counting what escapes is the point
        return f"FAIL ({type(exc).__name__}: {str(exc)[:100]})"
    return "ok"


# ---------------------------------------------------------------- part 1: malformed inputs

def damaged_copy(src: Path, dst: Path, files: list[str], rng) -> str:
    """Copy ``src`` to ``dst`` and damage one of ``files`` one way; returns what was done."""
    shutil.copytree(src, dst)
    name = files[int(rng.integers(0, len(files)))]
    path = dst / name
    kinds = ["bytes", "delete"] + (["json"] if name.endswith(".json") else []) + (
        ["array"] if name.endswith((".npz", ".npy")) else [])
    kind = kinds[int(rng.integers(0, len(kinds)))]
    if kind == "bytes":
        how = BYTE_DAMAGES[int(rng.integers(0, len(BYTE_DAMAGES)))]
        path.write_bytes(damage_bytes(path.read_bytes(), how, rng))
        return f"{name}: {how}"
    if kind == "delete":
        path.unlink()
        return f"{name}: deleted"
    if kind == "json":
        value = [None, True, -1, 0, 2**40, 1.5, "x", [], {}, [1, 2], {"a": 1}][int(rng.integers(0, 11))]
        path.write_text(damage_json(path.read_text(errors="replace"), list(rng.integers(0, 20, size=3)), value))
        return f"{name}: JSON value -> {value!r}"
    how = ARRAY_DAMAGES[int(rng.integers(0, len(ARRAY_DAMAGES)))]
    damage_array_file(path, how)
    return f"{name}: array {how}"


def random_overrides(rng) -> list[str]:
    from xmc.models.xr_linear import XRLinearConfig

    keys = [row[0] for row in XRLinearConfig.help_rows()] + ["tree", "nope", "beam.nope", ""]
    raws = ["true", "False", "maybe", "0", "-1", "1e309", "nan", "[1,2]", "[]", "null", "1,2", '"x"', "1.5", "01",
            "l3-hinge", "", "\x00", "9" * 40, "[[1]]", "{}"]
    out = []
    for _ in range(int(rng.integers(1, 4))):
        out.append(f"{keys[int(rng.integers(0, len(keys)))]}={raws[int(rng.integers(0, len(raws)))]}")
    if rng.random() < 0.1:
        out.append("no-equals-sign")
    return out


def part_inputs(sets: dict[str, Path], model: Path, work: Path, n: int, rng) -> dict[str, Counter]:
    from xmc.data import resolve
    from xmc.models.pipeline import load
    from xmc.models.xr_linear import XRLinearConfig

    results: dict[str, Counter] = {}
    dev_texts = resolve(sets["text"]).load("dev").texts[:5]
    text_files = ["train_texts.txt.gz", "train_labels.txt.gz", "dev_texts.txt.gz", "dev_labels.txt.gz"]
    model_files = sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file())
    readers = {
        "text dataset reader": (sets["text"], text_files, lambda d: [resolve(d).load(s) for s in ("train", "dev")]),
        "bag-of-words reader": (sets["bow"], ["Tiny_data.txt"], lambda d: resolve(d).load("all")),
        "label-name reader": (sets["text"], ["label_names.tsv"], lambda d: resolve(d).label_names()),
        "model folder loader (+ predict)": (model, model_files, lambda d: load(d).predict(dev_texts, top_k=5)),
    }
    for name, (src, files, read) in readers.items():
        counts = Counter()
        for i in range(n):
            folder = work / f"{name.split()[0]}-{i}" / src.name
            damaged_copy(src, folder, files, rng)
            counts[classify_call(lambda folder=folder, read=read: read(folder))] += 1
            shutil.rmtree(folder.parent, ignore_errors=True)
        results[name] = counts
    counts = Counter()
    for _ in range(n):
        sets_ = random_overrides(rng)
        counts[classify_call(lambda s=sets_: XRLinearConfig().with_overrides(s))] += 1
    results["config overrides (--set)"] = counts
    return results


def cli_cases(sets: dict[str, Path], model: Path, work: Path, n: int, rng) -> dict[str, list[list[str]]]:
    """Argument lists for every command, each with one malformed input."""
    text_files = ["train_texts.txt.gz", "train_labels.txt.gz", "dev_texts.txt.gz", "dev_labels.txt.gz"]
    model_files = sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file())
    cases: dict[str, list[list[str]]] = {k: [] for k in ("xmc data info", "xmc train", "xmc evaluate",
                                                         "xmc predict", "xmc train --set", "xmc (bad arguments)")}
    for i in range(n):
        data = work / f"cli-data-{i}" / "Small"
        damaged_copy(sets["text"], data, text_files, rng)
        cases["xmc data info"].append(["data", "info", str(data)])
        cases["xmc train"].append(["train", "--method", "xr-linear", "--data", str(data), "--out",
                                   str(work / f"cli-out-{i}"), *XR_LINEAR_SET])
        bad_model = work / f"cli-model-{i}" / "model"
        damaged_copy(model, bad_model, model_files, rng)
        cases["xmc evaluate"].append(["evaluate", "--model", str(bad_model), "--data", str(sets["text"]),
                                      "--split", "dev", "--json"])
        cases["xmc predict"].append(["predict", "--model", str(bad_model), "--data", str(sets["text"]),
                                     "--split", "dev", "--out", str(work / f"cli-pred-{i}")])
        sets_ = [x for s in random_overrides(rng) for x in ("--set", s)]
        cases["xmc train --set"].append(["train", "--method", "xr-linear", "--data", str(sets["text"]), "--out",
                                         str(work / f"cli-set-{i}"), "--eval-split", "none", *sets_])
        cases["xmc (bad arguments)"].append(_bad_arguments(sets, model, work, i, rng))
    return cases


def _bad_arguments(sets, model, work, i, rng) -> list[str]:
    options = [
        ["predict", "--model", str(model), "--data", str(sets["text"]), "--split", "dev", "--top-k",
         str(int(rng.integers(-5, 1))), "--out", str(work / f"x{i}")],
        ["predict", "--model", str(model), "--data", str(sets["text"]), "--split", "nosplit", "--out",
         str(work / "y")],
        ["evaluate", "--model", str(work / "no-such-model"), "--data", str(sets["text"])],
        ["evaluate", "--model", str(model), "--data", str(work / "no-such-data"), "--split", "dev"],
        ["train", "--data", str(sets["text"]), "--out", str(work / f"z{i}"), "--ensemble",
         str(int(rng.integers(-3, 1)))],
        ["train", "--method", "xr-linear", "--data", str(sets["text"]), "--out", str(work / "w"), "--resume"],
        ["train", "--method", "xr-linear", "--data", str(sets["bow"]), "--out", str(work / "v"), "--split", "dev"],
        ["ensemble", "--models", str(model), "--out", str(work / f"e{i}")],
        ["ensemble", "--models", str(model), str(sets["text"]), "--out", str(work / f"f{i}")],
        ["config", "no-such-method"], ["trian"], ["train", "--top-k"], ["data", "info", str(work / "nowhere")],
        ["predict", "--model", str(model), "--data", str(sets["text"]), "--beam-size", "x", "--out", "o"],
    ]
    return options[int(rng.integers(0, len(options)))]


def part_cli(sets, model, work, n, rng) -> tuple[dict[str, Counter], Counter, list[str]]:
    cases = cli_cases(sets, model, work, n, rng)
    results, failures = {}, []
    for command, argvs in cases.items():
        counts = Counter()
        for argv in argvs:
            outcome = classify_cli(*_code_err(run_cli(argv)))
            counts[outcome] += 1
            if outcome.startswith("FAIL"):
                failures.append(f"{' '.join(argv)[:160]} -> {outcome}")
        results[command] = counts
    # a sample in child processes: an interpreter crash (a signal) would show only there
    children = Counter()
    # (an argument with a NUL byte cannot be passed to a process at all: no shell user can send one)
    sample = [argv for argvs in cases.values() for argv in argvs[:3] if not any("\x00" in a for a in argv)]
    for argv in sample:
        proc = subprocess.run([sys.executable, "-m", "xmc.cli.main", *argv], capture_output=True, text=True,
                              env={**os.environ, "XMC_PROGRESS": "0"}, timeout=600, check=False)
        children["crashed (signal)" if proc.returncode < 0 else classify_cli(proc.returncode, proc.stderr)] += 1
    return results, children, failures


def _code_err(result):
    code, _, err = result
    return code, err


# ---------------------------------------------------------------- part 2: kill and resume

def child(argv: list[str], kill_at: str | None = None, kill_after: float | None = None):
    env = {**os.environ, "XMC_PROGRESS": "0"}
    env.pop("XMC_KILL_AT", None)
    if kill_at:
        env["XMC_KILL_AT"] = kill_at
    proc = subprocess.Popen([sys.executable, "-m", "xmc.cli.main", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=1200)
    return proc.returncode, err


def model_contents(folder: Path) -> str:
    """A digest of everything in a model folder that must not depend on when it was trained."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                for key in sorted(data.files):
                    h.update(key.encode() + data[key].tobytes() + str(data[key].dtype).encode())
        elif path.name == "xmc.json":
            h.update(json.dumps(_stable(json.loads(path.read_text())), sort_keys=True).encode())
        else:
            h.update(path.read_bytes())
    return h.hexdigest()


def _stable(obj):
    volatile = ("fit_seconds", "level_logs", "metrics", "versions", "seconds")
    if isinstance(obj, dict):
        return {k: _stable(v) for k, v in obj.items() if k not in volatile}
    if isinstance(obj, list):
        return [_stable(v) for v in obj]
    return obj


def part_kills(sets, tiny_bert: Path, work: Path, n_random: int, rng) -> tuple[list[dict], float]:
    runs = []
    lin = ["train", "--method", "xr-linear", "--data", str(sets["text"]), *XR_LINEAR_SET]
    t0 = time.perf_counter()
    code, err = child([*lin, "--out", str(work / "ref-lin")])
    lin_seconds = time.perf_counter() - t0
    assert code == 0, err
    ref = model_contents(work / "ref-lin")
    kills = [(p, None) for p in XR_LINEAR_POINTS] + [(None, float(rng.uniform(0.5, lin_seconds)))
                                                      for _ in range(n_random)]
    for i, (point, after) in enumerate(kills):
        out = work / f"lin-{i}"
        code, _ = child([*lin, "--out", str(out)], point, after)
        again = "not needed" if out.exists() else ("ok" if child([*lin, "--out", str(out)])[0] == 0 else "failed")
        runs.append({"method": "xr-linear", "kill": point or f"at {after:.1f} s", "killed": code == -9,
                     "rerun": again, "identical": out.exists() and model_contents(out) == ref, "broken_old": False})
    for i, point in enumerate(OVERWRITE_POINTS):
        out = work / f"over-{i}"
        child([*lin, "--out", str(out), "--set", "tree.seed=7"])
        old = model_contents(out)
        code, _ = child([*lin, "--out", str(out), "--overwrite"], point)
        during = model_contents(out) if out.exists() else None
        child([*lin, "--out", str(out), "--overwrite"])
        runs.append({"method": "xr-linear --overwrite", "kill": point, "killed": code == -9, "rerun": "ok",
                     "identical": model_contents(out) == ref, "broken_old": during not in (old, ref)})
    xrt = ["train", "--method", "xr-transformer", "--data", str(sets["text"]), "--encoder", str(tiny_bert), *XRT_SET]
    t0 = time.perf_counter()
    code, err = child([*xrt, "--out", str(work / "ref-xrt"), "--checkpoint-dir", str(work / "ref-ckpt")])
    xrt_seconds = time.perf_counter() - t0
    assert code == 0, err
    ref = model_contents(work / "ref-xrt")
    kills = [(p, None) for p in XRT_POINTS] + [(None, float(rng.uniform(3.0, xrt_seconds))) for _ in range(n_random)]
    for i, (point, after) in enumerate(kills):
        argv = [*xrt, "--out", str(work / f"xrt-{i}"), "--checkpoint-dir", str(work / f"ckpt-{i}")]
        code, _ = child(argv, point, after)
        again = child([*argv, "--resume"])[0]
        runs.append({"method": "xr-transformer", "kill": point or f"at {after:.1f} s", "killed": code == -9,
                     "rerun": "ok" if again == 0 else "failed",
                     "identical": model_contents(work / f"xrt-{i}") == ref, "broken_old": False})
    return runs, lin_seconds


# ---------------------------------------------------------------- part 3: user files

def digest_tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file()}


def part_user_files(sets, model: Path, tiny_bert: Path, work: Path) -> list[dict]:
    lin = ["train", "--method", "xr-linear", "--data", str(sets["text"]), "--eval-split", "none", *XR_LINEAR_SET]
    scenarios = []

    def user_folder(name: str) -> Path:
        folder = work / "user" / name
        (folder / "notes").mkdir(parents=True)
        (folder / "notes" / "a.txt").write_text("my notes")
        (folder / "data.csv").write_text("1,2,3\n")
        return folder

    def check(title: str, target: Path, argv: list[str]) -> None:
        before = digest_tree(target) if target.is_dir() else {target.name: target.read_bytes().hex()}
        code, _, err = run_cli(argv)
        after = digest_tree(target) if target.is_dir() else {target.name: target.read_bytes().hex()}
        scenarios.append({"scenario": title, "exit": code, "message": err.strip()[:110],
                          "kept": all(after.get(k) == v for k, v in before.items())})

    folder = user_folder("out")
    check("train --out <user folder>", folder, [*lin, "--out", str(folder)])
    check("train --out <user folder> --overwrite", folder, [*lin, "--out", str(folder), "--overwrite"])
    check("ensemble --out <user folder> --overwrite", folder,
          ["ensemble", "--models", str(model), str(model), "--out", str(folder), "--overwrite"])
    file_ = work / "user" / "report.docx"
    file_.write_bytes(b"my report")
    check("train --out <user file>", file_, [*lin, "--out", str(file_)])
    preds = user_folder("preds")
    (preds / "dev.npz").write_bytes(b"my own npz")
    check("predict --out <existing user files>", preds,
          ["predict", "--model", str(model), "--data", str(sets["text"]), "--split", "dev", "--out",
           str(preds / "dev")])
    link = work / "user" / "link"
    link.symlink_to(user_folder("linked"))
    check("train --out <symlink to a user folder> --overwrite", work / "user" / "linked",
          [*lin, "--out", str(link), "--overwrite"])
    parent = user_folder("parent")
    check("train --out <new folder inside a user folder>", parent, [*lin, "--out", str(parent / "model")])
    ckpt = user_folder("ckpt")
    check("train xr-transformer --checkpoint-dir <user folder>", ckpt,
          ["train", "--method", "xr-transformer", "--data", str(sets["text"]), "--encoder", str(tiny_bert),
           "--out", str(work / "user-xrt"), "--checkpoint-dir", str(ckpt), *XRT_SET])
    demo = user_folder("demo")
    check("demo --out <user folder>", demo, ["demo", "--data", str(sets["text"]), "--method", "xr-linear",
                                              "--out", str(demo), "--examples", "0"])
    return scenarios


# ---------------------------------------------------------------- report

def report(inputs, cli, children, failures, kills, users, args, seconds) -> str:
    lines = ["## 1. Malformed inputs", "",
             "| reader or command | inputs tried | correct result | clean error (XMCError / exit 2, one line) "
             "| other (traceback, exit 1) |", "|---|---|---|---|---|"]
    for name, counts in {**inputs, **cli}.items():
        total = sum(counts.values())
        bad = sum(v for k, v in counts.items() if k.startswith("FAIL"))
        lines.append(f"| {name} | {total} | {counts['ok']} | {counts['clean error']} | {bad} |")
    total = sum(sum(c.values()) for c in {**inputs, **cli}.values())
    bad = sum(v for c in {**inputs, **cli}.values() for k, v in c.items() if k.startswith("FAIL"))
    lines += ["", f"{total} malformed inputs, {bad} ended in anything but a result or one clean line.", "",
              f"The same commands in child processes ({sum(children.values())} runs): "
              + ", ".join(f"{v} {k}" for k, v in sorted(children.items())) + "."]
    reader_failures = [f"{name}: {kind} (x{n})" for name, counts in inputs.items() for kind, n in counts.items()
                       if kind.startswith("FAIL")]
    if failures or reader_failures:
        lines += ["", "Failures:", ""] + [f"- `{f}`" for f in (reader_failures + failures)[:30]]
    lines += ["", "## 2. Kill and resume", "",
              "| method | killed at | killed | second run | model identical to an uninterrupted run "
              "| old model broken meanwhile |", "|---|---|---|---|---|---|"]
    for r in kills:
        lines.append(f"| {r['method']} | {r['kill']} | {r['killed']} | {r['rerun']} | {r['identical']} "
                     f"| {r['broken_old']} |")
    identical = sum(r["identical"] for r in kills)
    lines += ["", f"{len(kills)} kill-and-resume runs, {identical} identical models, "
              f"{sum(r['broken_old'] for r in kills)} broken old models. (A kill point the run never reached "
              "shows 'killed: False'; the run then finished normally.)", "",
              "## 3. User files", "", "| scenario | exit | message | every user file kept |", "|---|---|---|---|"]
    for s in users:
        lines.append(f"| {s['scenario']} | {s['exit']} | {s['message'].replace('|', '/')} | {s['kept']} |")
    kept = all(s["kept"] for s in users)
    lines += ["", "## Targets", "",
              f"- every malformed input ends in a result or one clear line with exit 2: "
              f"{'met' if bad == 0 and not children.get('crashed (signal)') else 'MISSED'} ({bad} others)",
              f"- every kill-and-resume is identical: {'met' if identical == len(kills) else 'MISSED'} "
              f"({identical}/{len(kills)})",
              f"- no user file is ever removed: {'met' if kept else 'MISSED'}", "",
              f"Seed {args.seed}, {args.cases} cases per reader and command; total {seconds:.0f} s."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="EURLEX57K")
    parser.add_argument("--cases", type=int, default=150, help="malformed inputs per reader and per command")
    parser.add_argument("--kills", type=int, default=3, help="random-instant kills per method (besides the points)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    from xmc import api
    from xmc.nn.tiny import build_tiny_bert

    with tempfile.TemporaryDirectory(prefix="xmc-robust-") as tmp:
        root = Path(tmp)
        sets = make_datasets(args.data, root / "data")
        model = root / "model"
        api.train("xr-linear", sets["text"], model, overrides=XR_LINEAR_SET[1::2], eval_split=None)
        tiny_bert = build_tiny_bert(api.resolve(sets["text"]).load("train").texts, root / "tiny_bert")
        print("part 1: malformed inputs", flush=True)
        inputs = part_inputs(sets, model, root / "inputs", args.cases, rng)
        cli, children, failures = part_cli(sets, model, root / "cli", args.cases, rng)
        print("part 2: kill and resume", flush=True)
        kills, _ = part_kills(sets, tiny_bert, root / "kills", args.kills, rng)
        print("part 3: user files", flush=True)
        users = part_user_files(sets, model, tiny_bert, root / "users")
    body = report(inputs, cli, children, failures, kills, users, args, time.perf_counter() - start)
    command = "python benchmarks/data/robustness.py " + " ".join(sys.argv[1:])
    print(common.write_result("robustness", command.strip(), body))


if __name__ == "__main__":
    main()
