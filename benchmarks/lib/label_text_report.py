"""The report of benchmarks/accuracy/label_text.py: its tables (systems, one threshold, the floor,
the halves of dev, the unsupervised scorers) and its targets."""

from __future__ import annotations

import numpy as np

from lib import common

GROUPS = ("frequent", "few", "zero")


def accept_table(accept: dict) -> list[str]:
    from xmc.metrics.calibration import ACCEPT_PRECISION

    lines = ["", "What one threshold has to work with (dev, top label of each document; AR@P90 ceiling: every "
             "document in order of its top score, the right ones first):", "",
             "| system | P@1 | AR@P90 ceiling | AR@P90, one threshold on all of dev | AUROC of the top score |",
             "|---|---|---|---|---|"]
    return lines + [f"| {name} | {a['P@1']:.2f} | {min(100.0, a['P@1'] / ACCEPT_PRECISION):.2f} | "
                     f"{a['one_threshold']:.2f} | {a['auroc']:.2f} |" for name, a in accept.items()]


def row(name: str, r: dict) -> str:
    m, g = r["metrics"], r["metrics"].get("groups", {})
    cells = [f"{m['P@1']:.2f}", f"{m['P@5']:.2f}", f"{m['RP@5']:.2f}", f"{m['nDCG@5']:.2f}"]
    for group in GROUPS:
        gm = g.get(group, {})
        cells.append(f"{gm['RP@5']:.2f} / {gm['nDCG@5']:.2f}" if "RP@5" in gm else "-")
    ar = m.get("AR@P90")
    cells.append(f"{ar:.2f} ({m.get('AR@P90_precision') or 0:.1f})" if ar is not None else "-")
    ran = f" (run {r['ran_at']} UTC)" if "ran_at" in r else ""
    return (f"| {name}{ran}{common.copied_mark(r)} | " + " | ".join(cells)
            + f" | {r['wall_s']:.0f} | {r['batch_ms_per_doc']:.2f} | {r['peak_rss_mb']:,.0f} |")


def floor_table(floor: dict) -> list[str]:
    lines = ["", "The floor: TF-IDF cosine (or Okapi BM25, k1 1.2, b 0.75, the label text's terms as the query) of "
             "document and label text, nothing trained, zero-shot labels of dev "
             f"({floor['candidates']['splits']} candidates with `splits`, {floor['candidates']['all']:,} with `all`), "
             "RP@5 on the seeded selection half / report half / all of dev. The setting in bold is the floor: the "
             "best on the selection half.", "",
             "| setting | splits: selection / report / dev | all: selection / report / dev |", "|---|---|---|"]
    for name, r in floor["rows"].items():
        cells = [" / ".join(f"{r[w][h]['RP@5']:.2f}" for h in ("selection", "report", "dev"))
                 for w in ("splits", "all")]
        label = f"**{name}**" if name == floor["chosen"] else name
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    docs = floor["rows"][floor["chosen"]]["splits"]
    lines += ["", f"Documents with a zero-shot label: {docs['selection']['docs']} in the selection half, "
              f"{docs['report']['docs']} in the report half (one document moves a half's RP@5 by about "
              f"{100 / max(docs['report']['docs'], 1):.1f})."]
    return lines


def halves_table(results: dict, floor: dict) -> list[str]:
    lines = ["", "Zero-shot and few-shot RP@5 on each half of dev, beside the floor on the same documents:", "",
             "| system | zero-shot: selection / report | floor: selection / report | few-shot: selection / report |",
             "|---|---|---|---|"]
    chosen = floor["rows"][floor["chosen"]]
    for name, r in results.items():
        if "halves" not in r or "--zero-shot" not in name:
            continue
        h, f = r["halves"], chosen["all" if name.endswith(" all") else "splits"]
        lines.append(f"| {name} | {h['selection']['zero']['RP@5']:.2f} / {h['report']['zero']['RP@5']:.2f} | "
                     f"{f['selection']['RP@5']:.2f} / {f['report']['RP@5']:.2f} | "
                     f"{h['selection']['few']['RP@5']:.2f} / {h['report']['few']['RP@5']:.2f} |")
    return lines


def pseudo_table(pseudo: list[dict]) -> list[str]:
    """Known labels made unseen (``lib.pseudo_unseen``): the ranker beside the floor, per seed."""
    if not pseudo:
        return []
    lines = ["", f"Known labels made unseen ({pseudo[0]['labels']} labels with 1-50 training documents a seed, their "
             "training documents removed, the ranker trained on the rest as `--zero-shot` trains it): RP@5 of the "
             "dev documents with one of them, ranked among those labels, on the selection half / report half / all "
             "of dev. A larger test bed than the 87 documents of the dataset's own unseen labels.", "",
             "| seed | documents | floor | ranker | ranker - floor (dev) |", "|---|---|---|---|---|"]
    gains = []
    for r in pseudo:
        def three(who, r=r):
            return " / ".join(f"{r[p][who]['RP@5']:.2f}" for p in ("selection", "report", "dev"))
        gains.append(r["dev"]["ranker"]["RP@5"] - r["dev"]["floor"]["RP@5"])
        lines.append(f"| {r['seed']} | {r['selection']['docs']} / {r['report']['docs']} / {r['dev']['docs']} | "
                     f"{three('floor')} | {three('ranker')} | {gains[-1]:+.2f} |")
    lines.append(f"| mean | | | | {np.mean(gains):+.2f} |")
    return lines


def report(results: dict, floor: dict, scorers: dict, pseudo: list[dict], seconds: float) -> str:
    lines = ["| system | P@1 | P@5 | RP@5 | nDCG@5 | frequent RP@5 / nDCG@5 | few-shot | zero-shot | AR@P90 "
             "(precision) | train s | predict ms/doc | peak RSS MB |", "|---|" + "---|" * 11]
    lines += [row(name, r) for name, r in results.items()]
    lines += accept_table({name: r["accept"] for name, r in results.items() if "accept" in r})
    lines += floor_table(floor) + halves_table(results, floor) + pseudo_table(pseudo)
    lines += ["", f"Unsupervised zero-shot scorers, papers' candidates ({scorers['candidates']} labels), on the "
              f"{scorers['docs']} dev documents with a zero-shot label (one document moves RP@5 by about "
              f"{100 / scorers['docs']:.1f}):", "", "| scorer | RP@5 | nDCG@5 |", "|---|---|---|"]
    lines += [f"| {name} | {m['RP@5']:.2f} | {m['nDCG@5']:.2f} |" for name, m in scorers["scorers"].items()]
    lines += ["", "## Targets", "", *targets(results, floor), "", f"Total {seconds / 60:.0f} minutes of this run."]
    return "\n".join(lines)


def targets(results: dict, floor: dict) -> list[str]:
    out = []
    plain, alc = results.get("dual-encoder --zero-shot splits"), results.get("dual-encoder + ALC --zero-shot splits")
    if plain is not None and alc is not None:
        d_ar = (alc["metrics"].get("AR@P90") or 0) - (plain["metrics"].get("AR@P90") or 0)
        d1 = alc["metrics"]["P@1"] - plain["metrics"]["P@1"]
        ok = d_ar >= 5 and d1 >= -1
        out.append(f"- dual encoder: ALC's losses raise AR@P90 by at least 5 at no more than 1 P@1 lost: "
                   f"{'met' if ok else 'MISSED'} (AR@P90 {d_ar:+.2f}, P@1 {d1:+.2f})")
    chosen = floor["rows"][floor["chosen"]]
    for method in sorted({name.split(" ")[0] for name in results if not name.startswith("dual-encoder")}):
        plain = results.get(f"{method} (no label text)")
        for zs, margin in (("splits", 5.0), ("all", 3.0)):
            r = results.get(f"{method} --zero-shot {zs}")
            if r is None or "halves" not in r:
                continue
            for part, got in (("report half", r["halves"]["report"]["zero"]["RP@5"]),
                              ("dev", r["metrics"]["groups"]["zero"]["RP@5"])):
                base = chosen[zs]["report" if part == "report half" else "dev"]["RP@5"]
                out.append(f"- {method} --zero-shot {zs}, zero-shot RP@5 at least the floor + {margin:.0f} ({part}): "
                           f"{'met' if got >= base + margin else 'MISSED'} ({got:.2f} against {base:.2f}, "
                           f"{got - base:+.2f})")
            if plain is not None:
                d5 = r["metrics"]["P@5"] - plain["metrics"]["P@5"]
                groups, before = r["metrics"]["groups"], plain["metrics"]["groups"]
                dfreq, dfew = (groups[g]["RP@5"] - before[g]["RP@5"] for g in ("frequent", "few"))
                ok = d5 >= -0.3 and dfreq >= -0.3
                out.append(f"- {method} --zero-shot {zs}: few-shot RP@5 {dfew:+.2f} (target +4: "
                           f"{'met' if dfew >= 4 else 'MISSED'}); P@5 {d5:+.2f} and frequent RP@5 {dfreq:+.2f} "
                           f"(limit -0.3: {'met' if ok else 'MISSED'})")
            secs = r.get("seconds", {})
            if "label_text_scorer" in secs:
                out.append(_time_target(f"{method} --zero-shot {zs}", secs))
    return out


def _time_target(system: str, secs: dict) -> str:
    """What training the label-text scorer adds to the plain model's training: the scorer, and the
    TF-IDF's extra time when the model's TF-IDF also reads the label texts (then shared with the
    scorer); against the plain model's TF-IDF and fit."""
    extra_features = max(0.0, secs["features"] - secs["base_features"]) if "base_features" in secs else 0.0
    plain = secs["base_fit"] + secs.get("base_features", 0.0)
    added = secs["label_text_scorer"] + extra_features
    share = added / plain
    shared = "base_features" in secs
    what = (f"the scorer {secs['label_text_scorer']:.1f} s (TF-IDF shared with the model) + the shared TF-IDF's "
            f"extra {extra_features:.1f} s" if shared else f"the scorer with its own TF-IDF {added:.1f} s")
    return (f"- {system}: training the label-text scorer adds {added:.1f} s ({what}), {100 * share:.0f}% of the plain "
            f"model's {'TF-IDF and fit' if shared else 'fit'} ({plain:.0f} s; target at most 20%: "
            f"{'met' if share <= 0.2 else 'MISSED'}), of which the ranker {secs.get('label_text_ranker', 0):.1f} s; "
            f"choosing the blend's weights on dev takes {secs.get('label_text_weights', 0):.0f} s more")
