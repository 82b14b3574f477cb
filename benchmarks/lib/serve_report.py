"""The report of benchmarks/serving/serve.py: its tables, the reasons for missed targets, the verdicts."""

from __future__ import annotations

LEVELS = (1, 8, 32)
BATCHES = (1, 8, 32)


def report(results: dict, args) -> str:
    lines = ["All runs with API keys on; the load generator sends a valid key. EURLEX57K dev texts for XR-Linear, "
             "EURLEX57K-titles dev titles for XR-Transformer.", "",
             "| run | concurrency | requests | throughput req/s | p50 ms | p95 ms | p99 ms | errors | RSS MB (all "
             "processes) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for lv in r["levels"]:
            lines.append(f"| {name} | {lv['concurrency']} | {lv['requests']} | {lv['throughput']:.1f} "
                         f"| {lv['p50']:.2f} | {lv['p95']:.2f} | {lv['p99']:.2f} | {lv['errors']} | "
                         f"{lv['rss_mb']:,.0f} |")
    lines += ["", "| run | start-up s | in-process ms (one text, median) | HTTP p50 at concurrency 1 | overhead ms |"
              " soak: requests, errors, p99 ms | soak RSS MB first -> last | without a key / wrong key: statuses |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        c1, s = r["levels"][0], r["soak"]
        rss = s["rss_samples_mb"] or [float("nan")]
        lines.append(f"| {name} | {r['startup_s']:.1f} | {r['in_process_ms']:.2f} | {c1['p50']:.2f} | "
                     f"{c1['p50'] - r['in_process_ms']:.2f} | {s['requests']}, {s['errors']} "
                     f"({s.get('resent', 0)} resent on a new connection), {s['p99']:.2f} | "
                     f"{rss[0]:,.0f} -> {rss[-1]:,.0f} | {r['no_key']['no key']} / {r['no_key']['wrong key']} |")
    lines += memory_section(results) + transformer_section(results) + why(results) + why_missed(results)
    return "\n".join(lines + ["", "## Targets", "", *targets(results, args)])


def why_missed(results: dict) -> list[str]:
    """The measured reasons behind the latency and speed-up targets, from the figures above."""
    lines = ["", "## Where a request's time goes", ""]
    one = results.get("xr-linear, 1 worker")
    if one:
        c1 = one["levels"][0]
        prof = one.get("profile") or {}
        two = results.get("xr-linear, 2 workers")
        spread = (f" (the same one-text measurement gave {one['in_process_ms']:.2f} and {two['in_process_ms']:.2f} "
                  f"ms in the two runs of this script's process)") if two else ""
        http = prof.get("HTTP, validation, JSON (uvicorn, starlette, FastAPI, pydantic)", 0)
        split = (f", and at concurrency {LEVELS[-1]} TF-IDF and beam search take "
                 f"{prof.get('text to features (tokenise, TF-IDF)', 0):.0f}% and "
                 f"{prof.get('beam search and ranking', 0):.0f}% of the server's busy time, HTTP {http:.0f}%"
                 ) if prof else ""
        lines.append(f"- XR-Linear at concurrency 1: the server's own share of a request is small (HTTP p50 "
                     f"{c1['p50']:.2f} ms against {one['in_process_ms']:.2f} ms in-process for one full EURLEX57K "
                     f"text{split}); the p99 of {c1['p99']:.2f} ms is the tail of "
                     f"that one-text time on 2 cores shared with the load generator{spread}.")
    fl, q = results.get("xr-transformer (titles), float"), results.get("xr-transformer (titles), int8")
    if fl and q:
        st = q["stages_ms"]
        glue = q["in_process_ms"] - sum(st.values())
        lines.append(f"- XR-Transformer int8, one title: the encoder went from {fl['stages_ms']['encoder']:.2f} to "
                     f"{st['encoder']:.2f} ms (tokens included); what remains is TF-IDF {st['TF-IDF']:.2f} ms, the "
                     f"ranker's beam search {st['ranker']:.2f} ms and {glue:.2f} ms of the pipeline around them "
                     f"(joining the two feature blocks, calibration, ranked labels), {q['in_process_ms']:.2f} ms in "
                     f"all.")
        fb, qb = fl["batch_ms"], q["batch_ms"]
        lines.append(f"- int8 against float at concurrency 32: batches form there, and in a batch of 32 the "
                     f"encoder is a smaller share (float {fb['32']:.2f} ms/text, int8 {qb['32']:.2f}: "
                     f"{fb['32'] / qb['32']:.2f}x in-process), so the server cannot gain 3x; the rest of each "
                     f"request (TF-IDF, beam search, HTTP) is the same in both.")
    return lines


def memory_section(results: dict) -> list[str]:
    lines = ["", "## Memory of each worker", "",
             "After the concurrency-32 level. RSS counts every resident page a process maps, shared or not, so it "
             "cannot show sharing; PSS splits each shared page among the processes that map it; private memory "
             "is what the process alone holds: the memory one more worker adds. With workers, the parent "
             "loaded and warmed the model, then forked them.", "",
             "| run | process | RSS MB | PSS MB | private MB |", "|---|---|---|---|---|"]
    for name, r in results.items():
        procs = ([("parent (supervisor)", r["parent_memory"])] if r.get("parent_memory") else []) + \
            [(f"worker {i + 1}" if r.get("parent_memory") else "server", m) for i, m in enumerate(r["memory"])]
        lines += [f"| {name} | {who} | {m['rss']:,.0f} | {m['pss']:,.0f} | {m['private']:,.0f} |" for who, m in procs]
    return lines


def transformer_section(results: dict) -> list[str]:
    rows = {n: r for n, r in results.items() if r.get("stages_ms")}
    if not rows:
        return []
    lines = ["", "## XR-Transformer on a CPU: float and int8", "",
             "One title in-process, split into its stages (median ms), and dev P@1/P@5 on all 6,000 dev titles:",
             "", "| run | one text ms | TF-IDF ms | encoder ms | ranker ms | P@1 | P@5 | req/s at 32 |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        st, acc = r["stages_ms"], r["accuracy"]
        lines.append(f"| {name} | {r['in_process_ms']:.2f} | {st['TF-IDF']:.2f} | {st['encoder']:.2f} | "
                     f"{st['ranker']:.2f} | {acc['P@1']:.2f} | {acc['P@5']:.2f} | "
                     f"{r['levels'][-1]['throughput']:.1f} |")
    return lines


def why(results: dict) -> list[str]:
    """What bounds throughput: CPU per request on the 2 cores the server and the load generator
    share, where the server's time goes, and how much batching gains in-process."""
    lines = ["", "## What bounds throughput", "",
             "CPU per request (the server's processes and the load generator's, from /proc and rusage), and the "
             "throughput that CPU alone allows on 2 cores: 2,000 / (server + load generator) req/s.", "",
             "| run | concurrency | server CPU ms/request | load generator CPU ms/request | CPU-bound ceiling req/s "
             "| measured req/s |", "|---|---|---|---|---|---|"]
    for name, r in results.items():
        for lv in r["levels"]:
            total = lv["server_cpu_ms"] + lv["load_cpu_ms"]
            lines.append(f"| {name} | {lv['concurrency']} | {lv['server_cpu_ms']:.2f} | {lv['load_cpu_ms']:.2f} "
                         f"| {2000 / max(total, 1e-9):.0f} | {lv['throughput']:.0f} |")
    profiles = {n: r["profile"] for n, r in results.items() if r.get("profile")}
    if profiles:
        names = sorted({b for p in profiles.values() for b in p},
                       key=lambda b: -max(p.get(b, 0) for p in profiles.values()))
        lines += ["", f"Where the server's time goes at concurrency {LEVELS[-1]} (py-spy samples of its busy "
                  "threads over 10 s, in a run of its own; percent):", "",
                  "| part | " + " | ".join(profiles) + " |", "|---|" + "---|" * len(profiles)]
        lines += [f"| {b} | " + " | ".join(f"{p.get(b, 0):.1f}" for p in profiles.values()) + " |" for b in names]
    lines += ["", "In-process ms per text at the batch sizes micro-batching forms (no HTTP, no load generator): "
              "the most batching can gain is the batch-of-1 time over the batch-of-32 time.", "",
              "| run | " + " | ".join(f"batch of {b}" for b in BATCHES) + " | batching gain ceiling |",
              "|---|" + "---|" * (len(BATCHES) + 1)]
    for name, r in results.items():
        b = r["batch_ms"]
        lines.append(f"| {name} | " + " | ".join(f"{b[str(k)]:.2f}" for k in BATCHES)
                     + f" | {b['1'] / b[str(BATCHES[-1])]:.2f}x |")
    return lines


def targets(results: dict, args) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    out = []
    one, two = results.get("xr-linear, 1 worker"), results.get("xr-linear, 2 workers")
    if two:
        c1, c32 = two["levels"][0], two["levels"][-1]
        out += [f"- XR-Linear p99 under 8 ms at concurrency 1 (2 workers): {verdict(c1['p99'] < 8)} "
                f"({c1['p99']:.2f} ms; 1 worker: {one['levels'][0]['p99']:.2f} ms)" if one else "",
                f"- XR-Linear at least 600 requests/s at concurrency 32 (2 workers): "
                f"{verdict(c32['throughput'] >= 600)} ({c32['throughput']:.0f}"
                + (f"; 1 worker: {one['levels'][-1]['throughput']:.0f})" if one else ")")]
        first, second = two["memory"][:2]
        out.append(f"- the second worker's memory under 30% of the first's: "
                   f"{verdict(second['private'] < 0.3 * first['rss'])} (private {second['private']:,.0f} MB against "
                   f"RSS {first['rss']:,.0f} MB: {100 * second['private'] / first['rss']:.0f}%; by RSS alone, which "
                   f"counts the shared pages in both, {100 * second['rss'] / first['rss']:.0f}%)")
    float_run, int8_run = results.get("xr-transformer (titles), float"), results.get("xr-transformer (titles), int8")
    if float_run and int8_run:
        fa, qa = float_run["accuracy"], int8_run["accuracy"]
        close = abs(fa["P@1"] - qa["P@1"]) <= 0.2 and abs(fa["P@5"] - qa["P@5"]) <= 0.2
        speed = int8_run["levels"][-1]["throughput"] / max(float_run["levels"][-1]["throughput"], 1e-9)
        out += [f"- XR-Transformer one title in at most 4 ms in-process (int8): "
                f"{verdict(int8_run['in_process_ms'] <= 4)} ({int8_run['in_process_ms']:.2f} ms; float "
                f"{float_run['in_process_ms']:.2f} ms)",
                f"- int8 P@1 and P@5 within 0.2 of the float model: {verdict(close)} (P@1 {qa['P@1']:.2f} vs "
                f"{fa['P@1']:.2f}, P@5 {qa['P@5']:.2f} vs {fa['P@5']:.2f})",
                f"- int8 at least 3x the float model's throughput at concurrency 32: {verdict(speed >= 3)} "
                f"({speed:.2f}x)"]
    for name, r in results.items():
        s = r["soak"]
        rss = s["rss_samples_mb"] or [float("nan")]
        clean = s["errors"] == 0 and rss[-1] <= rss[0] * 1.05 + 20 and all(lv["errors"] == 0 for lv in r["levels"])
        out.append(f"- {name}: 0 errors and flat memory over the {args.soak:.0f} s soak with keys on: "
                   f"{verdict(clean)} ({s['errors']} errors, RSS {rss[0]:,.0f} -> {rss[-1]:,.0f} MB)")
    wrong = sum(n for r in results.values() for statuses in r["no_key"].values() for st, n in statuses.items()
                if st != "401")
    total = sum(n for r in results.values() for statuses in r["no_key"].values() for n in statuses.values())
    out.append(f"- 0 requests without a valid key answered with anything but 401: {verdict(wrong == 0 and total > 0)} "
               f"({wrong} of {total})")
    return [line for line in out if line]
