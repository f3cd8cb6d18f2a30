"""The README's demo figures, generated from a finished `spacy project run all`.

    python scripts/readme_demo.py collect . --time-log all.time   # -> benchmarks/results/demo.json
    python scripts/readme_demo.py render                          # JSON -> README block
    python scripts/readme_demo.py render --check                  # exit 1 if the README is stale

`collect` reads metrics/metrics.json (evaluate on the whole test sets), counts the test docs,
asks training/model-tuned for its top emotion of the anchor sentence, and takes the wall
time and peak memory from `/usr/bin/time -v` output. `render` writes the block between the
`<!-- demo:start` and `<!-- demo:end -->` lines of README.md.
"""

import re
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import srsly
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import harness  # noqa: E402  (the CPU's name, as the benchmarks record it)

RESULTS = ROOT / "benchmarks" / "results" / "demo.json"
README = ROOT / "README.md"
ANCHOR = "I am so happy you are here"
# Published figures to read ours against (macro F1 on the same test sets).
PUBLISHED = {
    "emotion": "0.46 (BERT-base, Demszky et al. 2020)",
    "offense": "—",
    "sentiment": "—",
}
TARGETS = {"emotion": 0.43, "sentiment": 0.70, "offense": 0.76}

app = typer.Typer(add_completion=False)


def _time_log(path: Optional[Path]) -> Dict[str, float]:
    if path is None:
        return {}
    text = path.read_text(encoding="utf8", errors="replace")
    out: Dict[str, float] = {}
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if wall:
        parts = [float(p) for p in wall.group(1).split(":")]
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + part
        out["wall_s"] = round(seconds, 1)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if rss:
        out["peak_rss_gb"] = round(int(rss.group(1)) / 1024**2, 2)
    return out


@app.command()
def collect(
    project_dir: Path = typer.Argument(..., help="The project folder after `run all`."),
    time_log: Optional[Path] = typer.Option(None, "--time-log", help="/usr/bin/time -v output."),
    output: Path = typer.Option(RESULTS, "--output", "-o"),
    note: str = typer.Option("", "--note", help="A remark on the run, shown with its time."),
) -> None:
    import spacy
    from spacy.tokens import DocBin

    metrics = srsly.read_json(project_dir / "metrics" / "metrics.json")
    nlp = spacy.blank("en")
    test_docs = {
        path.stem: len(DocBin().from_disk(path))
        for path in sorted((project_dir / "corpus" / "test").glob("*.spacy"))
    }
    doc = spacy.load(project_dir / "training" / "model-tuned")(ANCHOR)
    emotions = doc._.mtl_scores["emotion"]
    top = max(emotions, key=emotions.get)
    del nlp
    groups: Dict[str, Dict[str, Any]] = {}
    for group in ("emotion", "sentiment", "offense"):
        groups[group] = {
            "macro_f": metrics.get(f"mtl_{group}_macro_f"),
            "macro_auc": metrics.get(f"mtl_{group}_macro_auc"),
            "accuracy": metrics.get(f"mtl_{group}_acc"),
        }
    result = {
        "cpu": harness.cpu_name(),
        "cores": len(__import__("os").sched_getaffinity(0)),
        "test_docs": test_docs,
        "groups": groups,
        "mtl_score": metrics.get("mtl_score"),
        "anchor": {"text": ANCHOR, "top_emotion": top, "score": round(emotions[top], 3)},
        **_time_log(time_log),
    }
    if note:
        result["note"] = note
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output, result)
    typer.echo(f"Wrote {output}")


def block(result: Dict[str, Any]) -> str:
    """The README block, from demo.json."""

    def f(value: Optional[float]) -> str:
        return "—" if value is None else f"{value:.3f}"

    n_test = sum(result["test_docs"].values())
    parts = ", ".join(f"{name} {n:,}" for name, n in result["test_docs"].items())
    lines = [
        "Measured on the whole test sets "
        f"({n_test:,} docs: {parts}), after `tune` on the whole dev sets:",
        "",
        "| group | macro F1 | target | published | macro AUC | accuracy |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for group, scores in result["groups"].items():
        lines.append(
            f"| {group} | **{f(scores['macro_f'])}** | ≥ {TARGETS[group]:.2f} | {PUBLISHED[group]} "
            f"| {f(scores['macro_auc'])} | {f(scores['accuracy'])} |"
        )
    lines.append(f"| `mtl_score` | {f(result['mtl_score'])} | | | | |")
    anchor = result["anchor"]
    lines += [
        "",
        f'"{anchor["text"]}" gets **{anchor["top_emotion"]}** ({anchor["score"]:.2f}) as its '
        "top emotion.",
    ]
    if "wall_s" in result:
        lines += [
            f"The whole `spacy project run all` took **{result['wall_s'] / 60:.1f} minutes** "
            f"on {result['cores']} cores ({result['cpu']}), peak memory "
            f"{result['peak_rss_gb']:.1f} GB (`/usr/bin/time -v`)"
            + (f"; {result['note']}." if result.get("note") else "."),
        ]
    return "\n".join(lines)


def _replace(text: str, body: str) -> str:
    pattern = re.compile(r"(<!-- demo:start[^\n]*-->\n)(.*?)(<!-- demo:end -->)", re.S)
    if not pattern.search(text):
        raise typer.BadParameter("README.md has no demo:start / demo:end block")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text)


@app.command()
def render(
    results: Path = typer.Option(RESULTS, "--results"),
    readme: Path = typer.Option(README, "--readme"),
    check: bool = typer.Option(False, "--check", help="Only check that the README is current."),
) -> None:
    text = readme.read_text(encoding="utf8")
    new = _replace(text, block(srsly.read_json(results)))
    if check:
        if new != text:
            typer.echo(f"{readme} is stale: run scripts/readme_demo.py render", err=True)
            raise typer.Exit(1)
        return
    readme.write_text(new, encoding="utf8")


if __name__ == "__main__":
    app()
