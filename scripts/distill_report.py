"""Teacher vs students: test-set quality (from the `evaluate` metrics) and speed measured
side by side in one run, as a JSON file and a generated Markdown page.

    python scripts/distill_report.py --teacher training/model-tuned \
        --teacher-metrics metrics/metrics.json --students gold,plain,annealed \
        --test corpus/test --output docs/distillation.md --json metrics/distillation.json

Student NAME is read from `{training-dir}/student-NAME/model-tuned` with its metrics in
`{metrics-dir}/students/NAME/metrics.json` (what the project's `distill` workflow writes).
Speed: every pipeline runs `nlp.pipe` over the same test texts, in turns, `--rounds` times;
the median docs/s is reported (turns, so a noisy machine slows every model alike).
Agreement with the teacher on those texts: argmax agreement of each multiclass group and
the mean |score difference| over every label.
"""

import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import spacy
import typer
from spacy.tokens import DocBin
from wasabi import msg

GROUPS = ("emotion", "sentiment", "offense")
LABELS = {
    "gold": "student, gold only (no teacher)",
    "plain": "student, teacher only (λ = 0)",
    "annealed": "student, teacher annealing (λ 0 → 1)",
    "minilm-annealed": "MiniLM student (born again), teacher annealing (λ 0 → 1)",
}


def read_texts(folder: Path, n: int, seed: int) -> List[str]:
    """`n` texts drawn at random (seeded) from the .spacy files under `folder`."""
    vocab = spacy.blank("en").vocab
    texts = [
        doc.text
        for path in sorted(folder.rglob("*.spacy"))
        for doc in DocBin().from_disk(path).get_docs(vocab)
    ]
    if not texts:
        raise typer.BadParameter(f"No docs in {folder}.")
    random.Random(seed).shuffle(texts)
    return texts[:n] if n else texts


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def agreement(
    teacher: List[Dict], student: List[Dict], multiclass: Sequence[str]
) -> Dict[str, float]:
    """Argmax agreement per multiclass group and mean |score gap| over every label."""
    result: Dict[str, float] = {}
    gaps: List[float] = []
    for t_scores, s_scores in zip(teacher, student):
        for group, t_labels in t_scores.items():
            s_labels = s_scores.get(group, {})
            gaps.extend(abs(v - s_labels.get(k, 0.0)) for k, v in t_labels.items())
    result["mean_abs_gap"] = sum(gaps) / len(gaps) if gaps else float("nan")
    for group in multiclass:
        same = [
            max(t[group], key=t[group].get) == max(s[group], key=s[group].get)
            for t, s in zip(teacher, student)
        ]
        result[f"{group}_argmax_agreement"] = sum(same) / len(same)
    return result


def measure(
    models: Dict[str, Path], texts: List[str], rounds: int, batch_size: int
) -> Dict[str, Dict[str, Any]]:
    """docs/s of each model (median of `rounds` turns) and its doc._.mtl_scores."""
    loaded = {}
    for name, path in models.items():
        started = time.perf_counter()
        loaded[name] = spacy.load(path)
        msg.info(f"Loaded {name} ({path}) in {time.perf_counter() - started:.1f} s")
    for nlp in loaded.values():  # warm-up: first-call allocations, lazy imports
        list(nlp.pipe(texts[:batch_size], batch_size=batch_size))
    rates: Dict[str, List[float]] = {name: [] for name in loaded}
    scores: Dict[str, List[Dict]] = {}
    for turn in range(rounds):
        for name, nlp in loaded.items():
            started = time.perf_counter()
            docs = list(nlp.pipe(texts, batch_size=batch_size))
            rates[name].append(len(texts) / (time.perf_counter() - started))
            scores[name] = [doc._.mtl_scores for doc in docs]
            msg.text(f"round {turn + 1}/{rounds} {name}: {rates[name][-1]:,.0f} docs/s")
    return {
        name: {
            "docs_per_second": statistics.median(rates[name]),
            "docs_per_second_runs": [round(r, 1) for r in rates[name]],
            "scores": scores[name],
            "size_mb": folder_mb(Path(models[name])),
        }
        for name in loaded
    }


def multiclass_groups(model: Path) -> List[str]:
    """The multiclass groups of a pipeline's mtl_textcat, from its config (no weights)."""
    config = spacy.util.load_config(Path(model) / "config.cfg", interpolate=False)
    groups = config["components"]["mtl_textcat"]["groups"]
    return [name for name, group in groups.items() if group.get("kind") == "multiclass"]


def macro_f(scores: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """Each group's macro F1 from an `evaluate` metrics.json."""
    return {g: scores.get(f"mtl_{g}_macro_f") for g in GROUPS}


def fmt(value: Optional[float], digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(result: Dict[str, Any]) -> str:
    rows = result["rows"]
    teacher = rows[0]
    lines = [
        "# Distillation: teacher vs students",
        "",
        "Generated by `scripts/distill_report.py` (the project's `distill` workflow) from the",
        "`evaluate` metrics of each tuned pipeline on the test sets and from a speed run of",
        "all of them, in turns, in one process. Do not edit by hand.",
        "",
        "Macro F1 per group on the test docs annotated for that group (thresholds and",
        "temperatures tuned on dev for every pipeline); docs/s: median of "
        f"{result['rounds']} turns of `nlp.pipe` over {result['n_texts']:,} test texts "
        f"(batch {result['batch_size']}).",
        "",
        "| pipeline | "
        + " | ".join(f"{g} macro F1" for g in GROUPS)
        + " | mtl_score | docs/s | speed × teacher | size MB | agreement with teacher |",
        "|---" * (len(GROUPS) + 6) + "|",
    ]
    for row in rows:
        agree = row.get("agreement") or {}
        suffix = "_argmax_agreement"
        parts = [
            f"{k[: -len(suffix)]} argmax {v:.3f}" for k, v in agree.items() if k.endswith(suffix)
        ]
        if "mean_abs_gap" in agree:
            parts.append(f"mean abs. score gap {agree['mean_abs_gap']:.3f}")
        cells = [
            row["label"],
            *(fmt(row["macro_f"].get(g)) for g in GROUPS),
            fmt(row["mtl_score"]),
            f"{row['docs_per_second']:,.0f}",
            f"{row['docs_per_second'] / teacher['docs_per_second']:.1f}×",
            f"{row['size_mb']:.0f}",
            "; ".join(parts) if parts else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    by_name = {row["name"]: row for row in rows}
    if "annealed" in by_name:
        lines += ["", "## Did teacher annealing help?", ""]
        for other in ("plain", "gold"):
            if other not in by_name:
                continue
            diffs = {
                g: by_name["annealed"]["macro_f"][g] - by_name[other]["macro_f"][g]
                for g in GROUPS
                if by_name["annealed"]["macro_f"].get(g) is not None
                and by_name[other]["macro_f"].get(g) is not None
            }
            helped = [g for g, d in diffs.items() if d > 0]
            hurt = [g for g, d in diffs.items() if d <= 0]
            detail = ", ".join(f"{g} {d:+.3f}" for g, d in diffs.items())
            lines.append(
                f"- Annealed vs {LABELS[other]}: {detail} (macro F1). "
                + (f"Helped on {', '.join(helped)}" if helped else "Helped on no group")
                + (f"; did not help on {', '.join(hurt)}." if hurt else ".")
            )
    if len(rows) > 1:
        lines += ["", "## Did a student beat its teacher?", ""]
        for row in rows[1:]:
            beat = [
                f"{g} ({row['macro_f'][g] - teacher['macro_f'][g]:+.3f})"
                for g in GROUPS
                if row["macro_f"].get(g) is not None
                and teacher["macro_f"].get(g) is not None
                and row["macro_f"][g] > teacher["macro_f"][g]
            ]
            lines.append(f"- {row['label']}: " + (", ".join(beat) if beat else "on no group") + ".")
    if result.get("repeats"):
        lines += render_repeats(result["repeats"])
    env = result["environment"]
    lines += [
        "",
        "## Environment",
        "",
        f"- {env['cpu_count']} CPUs, torch threads {env['torch_threads']}, load average at "
        f"start {env['load_start']}, at end {env['load_end']}; {env['platform']}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        f"- Generated {result['generated']} by `{result.get('command', '')}`.",
        "",
    ]
    return "\n".join(lines)


def mean_sd(values: Sequence[Optional[float]]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "–"
    if len(present) == 1:
        return f"{present[0]:.3f}"
    return f"{statistics.mean(present):.3f} ± {statistics.stdev(present):.3f}"


def render_repeats(repeats: Dict[str, Any]) -> List[str]:
    """Mean ± sd of each student's macro F1 over seeds, and of the annealing difference."""
    runs = repeats["macro_f"]
    n = len(next(iter(runs.values())))
    lines = [
        "",
        f"## Students over {n} seeds",
        "",
        f"Macro F1, mean ± sd over {n} training seeds (the run above, then "
        + ", ".join(f"`{f}`" for f in repeats["folders"])
        + "); the teacher is the same in every run.",
        "",
        "| student | " + " | ".join(GROUPS) + " |",
        "|---" * (len(GROUPS) + 1) + "|",
    ]
    for name, values in runs.items():
        cells = [mean_sd([v.get(g) for v in values]) for g in GROUPS]
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    for a, b in (("annealed", "plain"), ("annealed", "gold"), ("plain", "gold")):
        if a in runs and b in runs:
            diffs = [
                mean_sd([(x.get(g) or 0.0) - (y.get(g) or 0.0) for x, y in zip(runs[a], runs[b])])
                for g in GROUPS
            ]
            lines.append(f"| {a} − {b} (paired by seed) | " + " | ".join(diffs) + " |")
    return lines


def main(
    teacher: Path = typer.Option(..., help="The teacher pipeline (tuned)."),
    teacher_metrics: Path = typer.Option(..., help="The teacher's test metrics.json."),
    students: str = typer.Option("gold,plain,annealed", help="Student names, comma-separated."),
    training_dir: Path = typer.Option(Path("training"), help="Holds student-NAME/model-tuned."),
    metrics_dir: Path = typer.Option(Path("metrics"), help="Holds students/NAME/metrics.json."),
    test: Path = typer.Option(..., help="Test .spacy file or folder (texts for the speed run)."),
    output: Path = typer.Option(..., help="The Markdown page to write."),
    json_path: Path = typer.Option(..., "--json", help="The JSON results to write."),
    n_texts: int = typer.Option(1000, help="Test texts in the speed run (0: all)."),
    rounds: int = typer.Option(3, min=1),
    batch_size: int = typer.Option(64, min=1),
    threads: int = typer.Option(0, help="torch threads (0: leave as is)."),
    seed: int = typer.Option(0),
    repeat: List[Path] = typer.Option(
        [],
        help="Folders with NAME/metrics.json of the same students trained with other seeds "
        "(repeatable): adds a mean ± sd table.",
    ),
) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    names = [name.strip() for name in students.split(",") if name.strip()]
    models = {"teacher": teacher}
    metrics = {"teacher": teacher_metrics}
    for name in names:
        models[name] = training_dir / f"student-{name}" / "model-tuned"
        metrics[name] = metrics_dir / "students" / name / "metrics.json"
    for name, path in [*models.items(), *metrics.items()]:
        if not Path(path).exists():
            msg.fail(f"{name}: {path} not found (run the distill workflow first)", exits=1)
    load_start = os.getloadavg()[0]
    texts = read_texts(test, n_texts, seed)
    speed = measure(models, texts, rounds, batch_size)
    multiclass = multiclass_groups(teacher)
    rows: List[Dict[str, Any]] = []
    for name in models:
        scores = json.loads(Path(metrics[name]).read_text(encoding="utf8"))
        row = {
            "name": name,
            "label": "teacher" if name == "teacher" else LABELS.get(name, f"student {name}"),
            "model": str(models[name]),
            "metrics": str(metrics[name]),
            "macro_f": macro_f(scores),
            "mtl_score": scores.get("mtl_score"),
            **{k: v for k, v in speed[name].items() if k != "scores"},
        }
        if name != "teacher":
            row["agreement"] = agreement(
                speed["teacher"]["scores"], speed[name]["scores"], multiclass
            )
        rows.append(row)
    repeats = {}
    for name in names:
        missing = [folder for folder in repeat if not (folder / name / "metrics.json").exists()]
        if missing:
            msg.warn(f"--repeat: no {name}/metrics.json in {missing[0]}: {name} left out there")
            continue
        first = next(row["macro_f"] for row in rows if row["name"] == name)
        repeats[name] = [first] + [
            macro_f(json.loads((folder / name / "metrics.json").read_text(encoding="utf8")))
            for folder in repeat
        ]
    result = {
        "command": " ".join(["python", *sys.argv]),
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "n_texts": len(texts),
        "rounds": rounds,
        "batch_size": batch_size,
        "rows": rows,
        "repeats": {"folders": [str(f) for f in repeat], "macro_f": repeats} if repeat else None,
        "environment": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_start": round(load_start, 2),
            "load_end": round(os.getloadavg()[0], 2),
            "platform": platform.platform(),
            "versions": versions(("spacy", "spacy-transformers", "torch", "thinc", "spacy-mtl")),
        },
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(result), encoding="utf8")
    msg.good(f"Wrote {output} and {json_path}")
    for row in rows:
        msg.text(
            f"{row['name']}: "
            + ", ".join(f"{g} {fmt(row['macro_f'][g])}" for g in GROUPS)
            + f", {row['docs_per_second']:,.0f} docs/s"
        )


def versions(packages: Sequence[str]) -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


if __name__ == "__main__":
    typer.run(main)
