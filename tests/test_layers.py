"""Layers import only downward (../shared/docs/architecture.md), checked on the source text."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "xmc"
LAYER = {
    "exceptions": 0, "types": 0, "_config": 0, "utils": 0,
    "data": 1, "features": 1, "metrics": 1,
    "tree": 2, "linear": 2, "search": 2, "nn": 2,
    "training": 3, "models": 4, "api": 5, "evaluation": 5, "report": 5, "cli": 6, "serve": 6,
}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYER.get(parts[1]) if len(parts) > 1 and parts[0] == "xmc" else None


def test_every_module_imports_only_lower_or_same_layers():
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        own = _layer(".".join(rel.parts))
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                other = _layer(name)
                if other is not None and other > own:
                    bad.append(f"{rel} (L{own}) imports {name} (L{other})")
    assert not bad, "\n".join(bad)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_torch_only_in_neural_layers():
    allowed = {"nn", "training"}
    for path in SRC.rglob("*.py"):
        top = path.relative_to(SRC).parts[0]
        neural_model = top == "models" and path.stem in {"xr_transformer", "lightxml", "cascadexml", "inceptionxml",
                                                          "elias", "elias_pp", "neural",
                                                          "dual_encoder"}
        if top not in allowed and not neural_model:
            assert "torch" not in _imports(path), f"{path} imports torch"


def test_the_command_and_the_server_reach_the_library_through_api_only():
    """One code path: cli/ and serve/ import xmc.api and xmc.exceptions, nothing below them."""
    allowed = ("xmc.api", "xmc.exceptions", "xmc.cli", "xmc.serve")
    bad = []
    for layer in ("cli", "serve"):
        for path in (SRC / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                for name in names:
                    ours = name.startswith("xmc.")
                    if ours and not any(name == a or name.startswith(a + ".") for a in allowed):
                        bad.append(f"{path.relative_to(SRC)} imports {name}")
    assert not bad, "\n".join(bad)
