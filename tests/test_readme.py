"""The README says what is true: every figure it quotes is in a results file that a benchmark wrote,
every method it lists is registered (and every registered method is listed), every command-line
option it names exists."""

from __future__ import annotations

import argparse
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A decimal figure: 92.30, 0.50x, 79.85%; not a version (Python 3.10+, torch==2.13.0) or a part of one.
FIGURE = re.compile(r"(?<![\w.=])(\d+\.\d+)(?![\d.+]|[a-wyzA-Z_])")
VERSION_CONTEXT = re.compile(r"(Python|python|==|>=|version)\s*$")


def quoted_figures(text: str) -> set[str]:
    return {m.group(1) for m in FIGURE.finditer(text)
            if not VERSION_CONTEXT.search(text[max(0, m.start() - 8):m.start()])}


def results_figures() -> set[str]:
    return figures_in("\n".join(p.read_text(encoding="utf-8")
                                for p in sorted((REPO / "benchmarks" / "results").glob("*.md"))))


def figures_in(text: str) -> set[str]:
    """Every decimal figure of ``text``, as written and rounded to fewer places (a README may quote
    5.57 as 5.6)."""
    found = set()
    for figure in re.findall(r"\d+\.\d+", text):
        value, places = Decimal(figure), len(figure.split(".")[1])
        found |= {str(value.quantize(Decimal(1).scaleb(-p), ROUND_HALF_UP)) for p in range(1, places + 1)}
    return found


def test_figures_are_found_as_whole_numbers_and_versions_are_not_figures():
    text = "P@1 92.30 (0.50x, 79.85%) on Python 3.10+ with torch==2.13.0 and version 1.2; 1.2.3 is no figure"
    assert quoted_figures(text) == {"92.30", "0.50", "79.85"}
    assert figures_in("p99 5.57 ms, 0.125x") == {"5.57", "5.6", "0.125", "0.13", "0.1"}


def test_every_figure_the_readme_quotes_is_in_a_results_file():
    readme, results = (REPO / "README.md").read_text(encoding="utf-8"), results_figures()
    missing = sorted(quoted_figures(readme) - results, key=float)
    assert not missing, f"figures in the README that no results file holds: {missing}"


def test_the_readme_lists_every_method_and_only_methods_that_exist():
    from xmc.models import method_names

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"--method ([a-z+-]+)", readme))
    assert named <= set(method_names()), f"--method values that do not exist: {sorted(named - set(method_names()))}"
    spelled = readme.lower()
    for method in method_names():
        assert method.replace("-", " ") in spelled.replace("-", " "), f"{method} is built but not in the README"


def test_every_option_the_readme_names_exists():
    from xmc.cli.main import build_parser

    options: set[str] = set()

    def collect(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            options.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    collect(sub)

    collect(build_parser())
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", readme))
    assert not named - options, f"options the README names that xmc does not have: {sorted(named - options)}"
