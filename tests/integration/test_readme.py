"""The README is a front door: short, its figures generated from results, its commands real."""

import shlex
from pathlib import Path

import typer

from spacy_mtl.cli import app

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_readme_is_short() -> None:
    assert len(README.read_text(encoding="utf8").splitlines()) <= 250


def test_readme_commands_parse_against_the_cli() -> None:
    """Every `spacy-mtl ...` line the README shows is a valid call of today's CLI."""
    group = typer.main.get_command(app)
    calls = [
        shlex.split(line.strip().lstrip("$ "))
        for line in README.read_text(encoding="utf8").splitlines()
        if line.strip().lstrip("$ ").startswith("spacy-mtl ") and "..." not in line
    ]
    assert len(calls) >= 4
    for call in calls:
        command = group.get_command(None, call[1])  # type: ignore[attr-defined]
        assert command is not None, call
        with command.make_context(call[1], list(call[2:])):
            pass


def test_readme_demo_block_is_generated_from_the_results() -> None:
    """The demo figures are benchmarks/results/demo.json rendered, not typed in."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_demo.py"), "render", "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    text = README.read_text(encoding="utf8")
    assert "<!-- demo:start" in text and "**joy**" in text


def test_serve_tables_are_generated_from_the_results() -> None:
    """The serve figures of the README and docs/serve.md are benchmarks/results/serve.json
    rendered (`benchmarks/serve.py --render`), not typed in."""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "serve.py"), "--render", "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((ROOT / "benchmarks" / "results" / "serve.json").read_text())
    pipe = result["median"]["pipe"]["docs_per_s"]
    for path in (README, ROOT / "docs" / "serve.md"):
        block = path.read_text(encoding="utf8").split("<!-- serve:start")[1]
        assert f"| {pipe:.1f} | 1.00 |" in block.split("<!-- serve:end -->")[0]
