"""The layering of docs/design.md: the core imports nothing from the packages around it."""

import ast
from pathlib import Path
from typing import Iterator, Tuple

PACKAGE = Path(__file__).resolve().parents[1] / "spacy_mtl"
# Not core: the package's __init__ (the public facade: it re-exports the DataFrame helpers
# lazily) and __main__; cli/ (the thin typer layer over everything) is one of the outer packages.
CORE = [
    "errors",
    "schema",
    "gold",
    "loss",
    "layers",
    "architectures",
    "pipeline",
    "scorer",
    "teacher",
    "tables",
    "util",
]
OUTER = ("trf", "training", "data", "workflows", "cli")


def _imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, absolute module) of every import in a top-level module, lazy ones included."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = "spacy_mtl" + ("." + node.module if node.module else "")
                if node.module is None:
                    for alias in node.names:
                        yield node.lineno, f"spacy_mtl.{alias.name}"
                    continue
                yield node.lineno, base
            elif node.level == 0 and node.module:
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def test_core_modules_import_nothing_from_trf_training_data_or_workflows() -> None:
    found = {p.stem for p in PACKAGE.glob("*.py")}
    assert set(CORE) <= found, f"core modules missing: {set(CORE) - found}"
    bad = []
    for name in CORE:
        for line, module in _imports(PACKAGE / f"{name}.py"):
            parts = module.split(".")
            if parts[0] == "spacy_mtl" and len(parts) > 1 and parts[1] in OUTER:
                bad.append(f"spacy_mtl/{name}.py:{line} imports {module}")
    assert not bad, "\n".join(bad)


def test_every_top_level_module_is_core_or_the_cli() -> None:
    """A new module at the top is a decision about the layers: put it in CORE (and keep it
    free of the outer packages) or in one of them."""
    top = {p.stem for p in PACKAGE.glob("*.py")}
    assert top - set(CORE) == {"__main__", "__init__"}
