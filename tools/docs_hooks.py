"""MkDocs hooks: the pages made from the code and the benchmarks, written before each build.

- ``reference/commands.md``: every ``xmc`` command's ``--help``, from the parser itself;
- ``reference/settings.md``: every method's settings with their defaults and help, from the config
  classes (what ``xmc config METHOD`` prints);
- ``benchmarks/results/*.md``: the files under ``benchmarks/results/`` as the benchmarks wrote them.

The generated files are not committed (see ``.gitignore``): they are remade from their sources on
every build, so the site cannot drift from the code or the measurements.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def on_pre_build(config, **kwargs) -> None:  # noqa: ARG001  (MkDocs passes the config)
    write_commands(DOCS / "reference" / "commands.md")
    write_settings(DOCS / "reference" / "settings.md")
    copy_results(REPO / "benchmarks" / "results", DOCS / "benchmarks" / "results")


def write_commands(path: Path) -> None:
    from xmc.cli.main import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal's width: fix it
    parser = build_parser()
    lines = ["# Command reference", "", "Generated from `xmc`'s own parser at every build of this site "
             "(`xmc COMMAND --help` prints the same).", ""]
    for name, sub in _commands(parser):
        lines += [f"## `xmc {name}`", "", "```text", sub.format_help().rstrip(), "```", ""]
    _write(path, lines)


def _commands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                full = f"{prefix}{name}"
                yield full, sub
                yield from _commands(sub, full + " ")


def write_settings(path: Path) -> None:
    from xmc.models import method_names, model_class

    lines = ["# Settings of every method", "", "Generated from the config classes at every build. A setting "
             "is changed with `xmc train --set NAME=VALUE` (or `Config.replace` in Python). The defaults "
             "below are the config class's; a method's CPU and GPU configs (`for_cpu`, `for_gpu`, chosen "
             "by the machine) change some of them: `xmc config METHOD` prints the one in force.", ""]
    for method in method_names():
        config_class = model_class(method).config_class
        lines += [f"## {method}", "", f"`{config_class.__module__}.{config_class.__name__}`", "",
                  "| setting | default | what it does |", "|---|---|---|"]
        for name, default, text in config_class.help_rows():
            lines.append(f"| `{name}` | `{_cell(repr(default))}` | {_cell(text)} |")
        lines += ["", *_cpu_and_gpu(config_class), ""]
    _write(path, lines)


def _cpu_and_gpu(config_class) -> list[str]:
    """The settings a method's CPU and GPU configs set differently (what the CPU config gives up, or
    what it buys time with); their docstrings say why."""
    if not (hasattr(config_class, "for_cpu") and hasattr(config_class, "for_gpu")):
        return []
    cpu, gpu = _flat(config_class.for_cpu().to_dict()), _flat(config_class.for_gpu().to_dict())
    differ = [k for k in cpu if cpu[k] != gpu.get(k)]
    if not differ:
        return []
    out = ["Where its CPU config (`for_cpu`) and GPU config (`for_gpu`) differ:", "",
           "| setting | CPU | GPU |", "|---|---|---|"]
    return out + [f"| `{k}` | `{_cell(repr(cpu[k]))}` | `{_cell(repr(gpu.get(k)))}` |" for k in differ]


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def copy_results(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in sorted(source.glob("*.md")):
        (target / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")


def _cell(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("|", "\\|")


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines).rstrip() + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:  # unchanged files keep their time
        path.write_text(text, encoding="utf-8")
