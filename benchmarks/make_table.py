"""Write docs/benchmarks.md from the result files in benchmarks/results/.

    python benchmarks/make_table.py                 # results/*.json -> docs/benchmarks.md
    python benchmarks/make_table.py --results DIR --out FILE

docs/benchmarks.md is generated: edit this script, not the page. A result file that is
absent leaves its section out with a note, so the page can be rebuilt at any time.
"""

import argparse
import json
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]

# Targets of the project, and how each is read from the results.
SHORT_TARGET = 0.95
LONG_TARGET = 0.95
TRAIN_TARGET = 1.05
MEMORY_FLAT = 1.05
LATENCY_TARGET = 1.15
INT8_SPEED_TARGET = 2.0
INT8_F1_TOLERANCE = 0.01
# The method `spacy-mtl quantize` uses by default (a variant of benchmarks/quantize.py).
INT8_DEFAULT = "onnx"

NAMES = {
    "ours": "ours as shipped: plain `nlp.pipe`, `mtl_transformer` (sorted buffers) + "
    "`wordpiece_spans` + mtl_textcat",
    "ours_stock": "ours on spacy-transformers' `transformer`, strided spans (the old default)",
    "ours_sorted": "ours stock + `pipe_by_length` (sorted across batches)",
    "ours_wordpiece": "ours stock + `wordpiece_spans` windows",
    "ours_wordpiece_sorted": "ours stock + `pipe_by_length` + `wordpiece_spans` windows",
    "limit": "hand-written PyTorch loop, unsorted",
    "limit_sorted": "hand-written PyTorch loop, sorted by length",
    "limit_sorted_onednn": "the sorted loop with oneDNN linear layers, as ours runs on CPU "
    "(reference: same kernels on both sides)",
    "builtins": "spaCy built-ins, one shared transformer",
    "separate": "K separate spaCy pipelines",
}


def load(folder: Path, name: str) -> Optional[Dict[str, Any]]:
    path = folder / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf8"))


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) if not isinstance(v, str) else v for v in row) + " |")
    return [*lines, ""]


def verdict(value: Optional[float], target: float, higher_is_better: bool = True) -> str:
    if value is None:
        return "not measured"
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "**not met**"


RATIO_FIELDS = (
    ("ratios", "wall"),
    ("paired_ratios", "paired"),
    ("cpu_ratios", "CPU"),
    ("round_ratios", "rounds wall"),
    ("round_cpu_ratios", "rounds CPU"),
)


def ratio_text(section: Dict[str, Any], key: str) -> str:
    """'0.97 wall, 0.98 paired, 0.99 CPU' from a section's ratios; for a pair with rounds,
    the rounds first (the verdict's basis, `verdict_fields`), then the turns."""
    basis = verdict_fields(section, key)
    labels = dict(RATIO_FIELDS)

    def listed(fields: Sequence[str]) -> List[str]:
        values = [(f, section.get(f, {}).get(key)) for f in fields]
        return [f"{fmt(v, 3)} {labels[f]}" for f, v in values if v is not None]

    parts = listed(basis)
    others = listed([f for f, _ in RATIO_FIELDS if f not in basis])
    if others:
        # Only where the basis is the rounds: the turns' readings, shown after it.
        parts.append("turns: " + ", ".join(others))
    return ", ".join(parts) or "–"


def with_same_kernels(section: Optional[Dict[str, Any]], text: str) -> str:
    """A target's reading, and where measured, ours against the sorted loop with the same
    oneDNN linear layers (a reference, not the target: it shows what the pipeline costs
    apart from what the kernels gain)."""
    key = "ours/limit_sorted_onednn"
    if not section or worst_ratio(section, key) is None:
        return text
    return f"{text}; vs the loop with the same oneDNN kernels (reference): " + ratio_text(
        section, key
    )


def verdict_fields(section: Dict[str, Any], key: str) -> List[str]:
    """The readings a verdict is taken from: the rounds' wall and CPU medians where the pair
    has rounds, else the turns' wall, paired and CPU ratios (see `worst_ratio`)."""
    rounds = [f for f, _ in RATIO_FIELDS if f.startswith("round")]
    if any(section.get(f, {}).get(key) is not None for f in rounds):
        return rounds
    return [f for f, _ in RATIO_FIELDS if not f.startswith("round")]


def worst_ratio(section: Optional[Dict[str, Any]], key: str) -> Optional[float]:
    """The verdict's basis: for a pair with rounds (ours, which reads a buffer ahead,
    against the sorted loop) the least favourable of the rounds' wall and CPU medians;
    otherwise the least favourable of the wall, paired and CPU ratios of the turns.

    A contender that reads ahead does a buffer's work in one turn, so its turns reading is
    one unpaired block of minutes against the other side's turns spread over the run;
    the rounds pair whole passes, alternate which goes first, and run on text neither side
    has seen (inference.run_rounds)."""
    if not section:
        return None
    values = [section.get(field, {}).get(key) for field in verdict_fields(section, key)]
    values = [v for v in values if v is not None]
    return min(values) if values else None


def memory_flat(inference: Optional[Dict[str, Any]]) -> Optional[float]:
    """Peak RSS of the largest grid point (most groups, then labels) over the smallest."""
    grid = (inference or {}).get("memory", {}).get("scaling", [])
    if len(grid) < 2:
        return None
    ordered = sorted(grid, key=lambda row: (row["groups"], row["labels"]))
    return round(ordered[-1]["peak_rss_mb"] / ordered[0]["peak_rss_mb"], 3)


def int8_targets(quantize: Optional[Dict[str, Any]]) -> List[tuple]:
    """The two int8 targets (speed, F1) of the default method, from quantize.json."""
    speed = (quantize or {}).get("speed", {}).get("contenders", {}).get(INT8_DEFAULT, {})
    ratios = [speed.get(k) for k in ("x_sorted_loop", "x_sorted_loop_cpu")]
    ratios = [r for r in ratios if r is not None]
    f1 = (quantize or {}).get("f1", {}).get("variants", {}).get(INT8_DEFAULT, {})
    delta = f1.get("tuned_thresholds", {}).get("delta", {})
    losses = [-d for d in delta.values() if d is not None]
    worst = max(losses) if losses else None
    return [
        (
            f"int8 (`spacy-mtl quantize`, {INT8_DEFAULT}): ≥ {INT8_SPEED_TARGET:g}× the docs/s of "
            "the fp32 length-sorted loop, short texts, 2 threads",
            f"{fmt(speed.get('x_sorted_loop'), 3)} rounds wall, "
            f"{fmt(speed.get('x_sorted_loop_cpu'), 3)} rounds CPU"
            if speed
            else "–",
            verdict(min(ratios) if ratios else None, INT8_SPEED_TARGET),
        ),
        (
            f"int8 ({INT8_DEFAULT}): every group's test macro F1 within {INT8_F1_TOLERANCE} of "
            "fp32",
            ", ".join(f"{g} {d:+.4f}" for g, d in delta.items() if d is not None) or "–",
            verdict(worst, INT8_F1_TOLERANCE, higher_is_better=False),
        ),
    ]


def int8_section(quantize: Dict[str, Any]) -> List[str]:
    """Docs/s and test macro F1 per int8 variant (benchmarks/quantize.py)."""
    f1 = quantize.get("f1", {})
    speed = quantize.get("speed", {})
    lines = ["## int8 on CPU", ""]
    lines.append(
        f"Pipeline {Path(quantize.get('pipeline', '')).name}; test macro F1 on "
        f"{f1.get('n_test', '–')} test docs with the pipeline's tuned thresholds, and "
        f"re-tuned on {f1.get('n_dev', '–')} dev docs with the variant itself; speed: "
        f"{speed.get('n_docs', '–')} short texts, {speed.get('rounds', '–')} whole passes per "
        "contender in a rotating order, median per-round ratio to the fp32 length-sorted "
        f"loop. AVX512-VNNI: {quantize.get('avx512_vnni')}. Load average before / after: "
        f"{speed.get('load_before')} / {speed.get('load_after')}."
    )
    lines.append("")
    variants = f1.get("variants", {})
    contenders = speed.get("contenders", {})
    groups = f1.get("groups", ["emotion", "sentiment", "offense"])
    rows = []
    for name in dict.fromkeys([*contenders, *variants]):
        row = contenders.get(name, {})
        tuned = variants.get(name, {}).get("tuned_thresholds", {})
        retuned = variants.get(name, {}).get("retuned", {})
        cells = [name, fmt(row.get("docs_per_s"), 1), fmt(row.get("x_sorted_loop"), 3)]
        cells.append(fmt(row.get("x_sorted_loop_cpu"), 3))
        for group in groups:
            value = tuned.get("macro_f", {}).get(group)
            delta = tuned.get("delta", {}).get(group)
            again = retuned.get("macro_f", {}).get(group)
            text = fmt(value, 3) if delta is None else f"{value:.3f} ({delta:+.3f})"
            cells.append(text if again is None else f"{text}; {again:.3f}")
        rows.append(cells)
    header = ("variant", "docs/s", "× sorted loop", "× CPU", *groups)
    lines += table(header, rows)
    lines.append(
        "F1 cells: tuned thresholds (change from fp32); after the semicolon, re-tuned on dev."
    )
    lines.append("")
    return lines


def targets(
    inference: Optional[Dict[str, Any]],
    training: Optional[Dict[str, Any]],
    quantize: Optional[Dict[str, Any]] = None,
) -> List[str]:
    short = (inference or {}).get("short")
    long = (inference or {}).get("long")
    k = 3
    short_ratio = worst_ratio(short, "ours/limit_sorted")
    long_ratio = worst_ratio(long, "ours/limit_sorted")
    plain_k = worst_ratio(short, "ours/separate")
    train_values = [
        (training or {}).get(key) for key in ("ratio_ours_torch", "ratio_ours_torch_paired_median")
    ]
    train_ratio = max((v for v in train_values if v is not None), default=None)
    flat = memory_flat(inference)
    latency = (inference or {}).get("latency") or {}
    latency_worst = max(
        (latency.get(k) for k in ("ratio_p50", "ratio_p95") if latency.get(k) is not None),
        default=None,
    )
    rows = [
        (
            f"inference, short texts: plain `nlp.pipe` ≥ {SHORT_TARGET}× the length-sorted loop",
            with_same_kernels(short, ratio_text(short or {}, "ours/limit_sorted")),
            verdict(short_ratio, SHORT_TARGET),
        ),
        (
            f"inference, ~500-word texts: plain `nlp.pipe` ≥ {LONG_TARGET}× the length-sorted loop",
            with_same_kernels(long, ratio_text(long or {}, "ours/limit_sorted")),
            verdict(long_ratio, LONG_TARGET),
        ),
        (
            f"inference: ≥ K× ({k}×) faster than K separate pipelines (plain `nlp.pipe` "
            "both, as shipped; and on the stock transformer)",
            f"{ratio_text(short or {}, 'ours/separate')}; stock: "
            f"{ratio_text(short or {}, 'ours_stock/separate')}",
            verdict(plain_k, k),
        ),
        (
            f"single-doc latency: `nlp(text)` p50 and p95 ≤ {LATENCY_TARGET}× a raw Hugging "
            "Face forward of one text",
            f"p50 {fmt(latency.get('ratio_p50'), 3)}, p95 {fmt(latency.get('ratio_p95'), 3)} "
            f"(per-text paired median {fmt(latency.get('paired_median_ratio'), 3)})"
            + (
                f"; vs the raw forward with oneDNN linear layers (reference): p50 "
                f"{fmt(latency.get('ratio_p50_onednn'), 3)}, p95 "
                f"{fmt(latency.get('ratio_p95_onednn'), 3)}"
                if latency.get("ratio_p50_onednn") is not None
                else ""
            )
            if latency
            else "–",
            verdict(latency_worst, LATENCY_TARGET, higher_is_better=False),
        ),
        (
            "memory flat in the number of groups (peak RSS at the most groups and labels ÷ "
            f"at 1 group ≤ {MEMORY_FLAT})",
            fmt(flat, 3),
            verdict(flat, MEMORY_FLAT, higher_is_better=False),
        ),
        (
            f"training update ≤ {TRAIN_TARGET}× the PyTorch loop",
            f"{fmt((training or {}).get('ratio_ours_torch'), 3)} medians, "
            f"{fmt((training or {}).get('ratio_ours_torch_paired_median'), 3)} paired "
            f"(vs fused AdamW: {fmt((training or {}).get('ratio_ours_torch_fused'), 3)}, "
            f"{fmt((training or {}).get('ratio_ours_torch_fused_paired_median'), 3)})",
            verdict(train_ratio, TRAIN_TARGET, higher_is_better=False),
        ),
        *int8_targets(quantize),
    ]
    lines = table(("target", "measured (ours / other)", "verdict"), rows)
    lines.append(
        "wall: docs/s over the whole run; paired: median over turns of the per-turn ratio "
        "(same docs, same moment; not for contenders that read a buffer ahead); CPU: process "
        "time; rounds: median over whole passes alternated with the other side (same docs, "
        "adjacent minutes, each round over text neither side has seen). A verdict uses the "
        "least favourable of the rounds where a pair has rounds (a contender that reads a "
        "buffer ahead, as ours does, does its buffer in one turn: its turns reading is one "
        "unpaired block), else of the turns' readings."
    )
    lines.append("")
    return lines


def speed_section(section: Dict[str, Any], memory: Dict[str, Any], title: str) -> List[str]:
    lines = [f"### {title}", ""]
    lines.append(
        f"{section['n_docs']} docs, {fmt(section.get('wordpieces_per_doc'), 1)} wordpieces per "
        f"doc on average. Load average before / after: {section['load_before']} / "
        f"{section['load_after']}."
    )
    lines.append("")
    contenders = section["contenders"]
    has_limit_sorted = "limit_sorted" in contenders
    rows = []
    for name, c in contenders.items():
        limit = contenders.get("limit", {}).get("docs_per_s")
        limit_sorted = contenders.get("limit_sorted", {}).get("docs_per_s")
        rss = rss_text(memory.get(name))
        rows.append(
            (
                NAMES.get(name, name),
                c["docs_per_s"],
                c.get("cpu_seconds"),
                c.get("padding"),
                round(c["docs_per_s"] / limit, 3) if limit else None,
                round(c["docs_per_s"] / limit_sorted, 3) if has_limit_sorted else None,
                rss,
            )
        )
    lines += table(
        (
            "contender",
            "docs/s",
            "CPU s",
            "padded / real wordpieces",
            "× loop",
            "× sorted loop",
            "peak RSS MB (above imports)",
        ),
        rows,
    )
    paired = section.get("paired_ratios") or {}
    if paired:
        lines.append(
            "Paired ratios (median over turns of the same docs, steadier under load): "
            + ", ".join(f"{k} = {fmt(v, 3)}" for k, v in paired.items())
            + "."
        )
        lines.append("")
    for key, row in (section.get("rounds") or {}).items():
        mean, sd = row.get("mean_sd_wall") or (None, None)
        fresh = "each round over texts neither side had seen, " if row.get("fresh_texts") else ""
        lines.append(
            f"Whole passes alternated, {key} per round ({fresh}"
            f"{row.get('docs_per_round', ['?'])[0]} docs): wall {row['wall']}, CPU {row['cpu']} "
            f"(medians {fmt(row['median_wall'], 3)} and {fmt(row['median_cpu'], 3)}; wall mean "
            f"{fmt(mean, 3)} ± {fmt(sd, 3)} sd; load after: {row.get('load_after')})."
        )
        lines.append("")
    return lines


def rss_text(row: Optional[Dict[str, Any]]) -> str:
    if not row:
        return "–"
    peak = row["peak_rss_mb"]
    return f"{peak:.0f} ({peak - row['rss_after_import_mb']:.0f})"


def latency_section(inference: Dict[str, Any]) -> List[str]:
    latency = inference.get("latency")
    if not latency:
        return []
    lines = ["### Single-doc latency", ""]
    lines.append(
        f"`nlp(text)` (the pipeline as shipped) against a raw Hugging Face forward of the same "
        f"text (tokenizer + AutoModel under `inference_mode`, no pooling or head), one text "
        f"at a time, in turns, over {latency['n_docs']} short texts. Load average before / "
        f"after: {latency['load_before']} / {latency['load_after']}."
    )
    lines.append("")
    sides = (
        ("ours", "ours: `nlp(text)`"),
        ("raw_hf", "raw HF forward"),
        ("raw_hf_onednn", "raw HF forward, oneDNN linear layers (as ours on CPU)"),
    )
    rows = [
        (name, fmt(latency[key]["p50_ms"], 2), fmt(latency[key]["p95_ms"], 2))
        for key, name in sides
        if key in latency
    ]
    rows.append(("ours / raw", fmt(latency["ratio_p50"], 3), fmt(latency["ratio_p95"], 3)))
    if "ratio_p50_onednn" in latency:
        rows.append(
            (
                "ours / raw with oneDNN",
                fmt(latency["ratio_p50_onednn"], 3),
                fmt(latency["ratio_p95_onednn"], 3),
            )
        )
    lines += table(("", "p50 ms", "p95 ms"), rows)
    return lines


def scaling_section(inference: Dict[str, Any]) -> List[str]:
    scaling = inference.get("scaling")
    if not scaling:
        return []
    memory = {
        (row["groups"], row["labels"]): rss_text(row)
        for row in inference.get("memory", {}).get("scaling", [])
    }
    lines = ["### Cost in the number of groups and labels", ""]
    lines.append(
        f"transformer + mtl_textcat on {scaling['n_docs']} short texts, run in turns; "
        "`head ms/doc` is mtl_textcat alone (predict + set_annotations) on docs whose "
        "transformer output is already computed, to set against the docs/s of the whole "
        "pipeline; peak RSS in a subprocess per row."
    )
    lines.append("")
    rows = [
        (
            p["groups"],
            p["labels"],
            p["docs_per_s"],
            p["relative_docs_per_s"],
            fmt(p["head_ms_per_doc"], 3),
            fmt(p.get("head_predict_ms_per_doc"), 3),
            fmt(p.get("head_set_annotations_ms_per_doc"), 3),
            memory.get((p["groups"], p["labels"])),
        )
        for p in scaling["points"]
    ]
    lines += table(
        (
            "groups",
            "labels",
            "docs/s",
            "× first row",
            "head ms/doc",
            "of which predict",
            "of which set_annotations",
            "peak RSS MB (above imports)",
        ),
        rows,
    )
    return lines


def profile_section(profiles: Dict[str, Dict[str, Any]], title: str) -> List[str]:
    """Shares of cProfile own time by category, one column per profile."""
    if not profiles:
        return []
    names = list(profiles)
    categories: List[str] = []
    for prof in profiles.values():
        for category in prof["by_category"]:
            if category not in categories:
                categories.append(category)
    lines = [f"### {title}", ""]
    lines.append(
        "cProfile own time by where it is spent (cProfile slows every Python call, so the "
        "Python shares are upper bounds)."
    )
    lines.append("")
    rows = []
    for category in categories:
        shares = [profiles[n]["by_category"].get(category, {}).get("share") for n in names]
        if any(shares):
            rows.append((category, *(f"{100 * (v or 0):.1f} %" for v in shares)))
    lines += table(("where", *names), rows)
    return lines


TRAIN_NAMES = {
    "ours": "ours: `nlp.update`, transformer + mtl_textcat, thinc Adam",
    "torch": "hand-written PyTorch: CE + BCE heads, AdamW (defaults)",
    "torch_fused": "hand-written PyTorch, AdamW(fused=True)",
}


def training_section(training: Dict[str, Any]) -> List[str]:
    lines = ["## Training", ""]
    lines.append(
        f"One update on the same batch of {training['batch_size']} real texts with partial "
        f"labels (half GoEmotions: emotion + sentiment; half Davidson: offense), learn rate "
        f"{training['learn_rate']}, dropout {training['dropout']}; the sides take turns, "
        "one update each. "
        f"Load average at start / after timing: {training['load_start']} / "
        f"{training.get('load_after_timing')}."
    )
    lines.append("")
    memory = training.get("memory", {})
    rows = [
        (
            TRAIN_NAMES.get(name, name),
            side["median_s_per_update"],
            side["mean_s_per_update"],
            rss_text(memory.get(name)),
        )
        for name, side in training["sides"].items()
    ]
    lines += table(
        ("side", "median s/update", "mean s/update", "peak RSS MB (above imports)"), rows
    )
    lines.append(
        f"ours / PyTorch: {fmt(training['ratio_ours_torch'], 3)} (medians), "
        f"{fmt(training['ratio_ours_torch_paired_median'], 3)} (median of paired ratios)."
    )
    if training.get("ratio_ours_torch_fused") is not None:
        lines.append(
            f"ours / PyTorch with fused AdamW: {fmt(training['ratio_ours_torch_fused'], 3)} "
            f"(medians), {fmt(training['ratio_ours_torch_fused_paired_median'], 3)} (paired)."
        )
    lines.append("")
    batching = training.get("batching")
    if batching:
        lines += [
            "### Training batches: padding and seconds per update",
            "",
            f"One epoch of {batching['docs']} training docs (half GoEmotions, half Davidson), "
            f"batches of {batching['batch_size']}; wordpieces counted with the model's "
            "tokenizer; updates in turns on a random sample of each batcher's batches.",
            "",
        ]
        rows = [
            (name, batching[name]["padded_over_real"], batching[name]["median_s_per_update"])
            for name in ("spacy_batch_by_sequence", "mixed_batcher_sorted")
        ]
        lines += table(("batcher", "padded / real wordpieces", "median s/update"), rows)
        lines += [
            f"Seconds per update, spaCy's batcher / ours: "
            f"{fmt(batching['speedup_s_per_update'], 3)}.",
            "",
        ]
    if training.get("profile_ours"):
        profile = {
            f"ours, {training['profile_ours'].get('updates')} updates": training["profile_ours"]
        }
        lines += profile_section(profile, "Where an update's time goes")
    return lines


QUALITY_SETTINGS = (
    # (results file, title when the file predates "setting", command that makes it)
    (
        "quality",
        "(a) GoEmotions + Davidson",
        "python benchmarks/quality.py --seeds 0,1,2 --group-weight offense=1",
    ),
    (
        "quality_tweeteval",
        "(b) TweetEval: emotion, hate, irony, offensive",
        "python benchmarks/quality.py --setting tweeteval --seeds 0,1,2",
    ),
)
METRIC_NAMES = {"macro_f": "F1", "official": "official", "macro_auc": "AUC", "acc": "acc"}


def loss_weights(budget: Dict[str, Any], groups: Any) -> str:
    """', loss weights emotion 1, offense 3': the budget's group_loss weights of the
    setting's groups ('' if none apply)."""
    weights = {
        name: loss["weight"]
        for name, loss in (budget.get("group_loss") or {}).items()
        if "weight" in loss and name in groups
    }
    if not weights:
        return ""
    return ", loss weights " + ", ".join(f"{name} {w:g}" for name, w in weights.items())


def quality_section(quality: Dict[str, Any], title: str = QUALITY_SETTINGS[0][1]) -> List[str]:
    """One quality setting: budget, mean ± sd per run and group, joint-minus-other table,
    and (TweetEval) the official metric next to the leaderboard's reference row."""
    budget = quality["budget"]
    setting = quality.get("setting") or {}
    lines = [f"## Quality on partial labels: {setting.get('title', title)}", ""]
    # Files written before the runs copied configs/cpu.cfg carry no batcher or lr_scale.
    training = (
        f"mtl_textcat lr_scale {budget['head_lr_scale']:g} (spaCy's built-ins have none: "
        f"{budget.get('builtin_head_lr_scale', 1.0):g}), batches from {budget['batcher']}, "
        f"group weighting {budget.get('weighting', 'fixed')}"
        f"{loss_weights(budget, setting.get('groups') or {})}"
        if "batcher" in budget
        else "batches in a seeded shuffled order, mtl_textcat lr_scale 1"
    )
    lines.append(
        f"Budget per model: {budget['updates']} updates of {budget['batch_size']} docs, "
        f"{budget['train_per_set']} training docs per data set, "
        f"{budget['test_per_set'] or 'all'} test docs per data set, learn rate "
        f"{budget['learn_rate']} (warm-up {budget['warmup']}), dropout {budget['dropout']}, "
        f"{budget['optimizer']}; {training}; multilabel F1 at {budget['threshold']}. "
        f"Seeds: {quality['seeds']}. Mean ± sd over seeds where there are several."
    )
    lines.append("")
    if quality.get("data"):
        sizes = ", ".join(
            f"{split}: " + ", ".join(f"{corpus} {n}" for corpus, n in corpora.items())
            for split, corpora in quality["data"].items()
        )
        lines += [f"Docs per data set: {sizes}.", ""]
    notes = setting.get("runs", {})
    ran = list(quality.get("summary", {}))
    if notes:
        lines += [f"- `{run}`: {note}" for run, note in notes.items() if run in ran and note]
        lines.append("")
    lines += quality_table(quality)
    compared = [
        (group, f"ours_single_{group}", builtin)
        for group, builtin in setting.get("builtin_compared", {}).items()
    ]
    lines += quality_comparison(quality.get("summary", {}), compared or COMPARED)
    lines += equal_compute_verdict(quality.get("summary", {}), compared or COMPARED)
    if setting.get("official_metric"):
        lines += official_table(quality)
    return lines


def quality_table(quality: Dict[str, Any]) -> List[str]:
    summary = quality.get("summary", {})
    updates = {row["run"]: row.get("updates") for row in quality.get("rows", [])}
    train = {row["run"]: row.get("n_train") for row in quality.get("rows", [])}
    present = {
        metric
        for groups in summary.values()
        for group, metrics in groups.items()
        if group != "error"
        for metric in metrics
    }
    metrics = [
        m for m in ("macro_f", "official", "macro_auc", "acc") if m in present or m == "macro_f"
    ]
    header_names = {
        "macro_f": "macro F1",
        "official": "official metric",
        "macro_auc": "macro ROC AUC",
        "acc": "accuracy",
    }
    rows = []
    for run, groups in summary.items():
        if "error" in groups and len(groups) == 1:
            rows.append((run, "all", "fails: " + str(groups["error"]), *[""] * (len(metrics) + 1)))
            continue
        for group, values in groups.items():
            if group == "error":
                continue
            cells = [mean_sd(values.get(m, {})) for m in metrics]
            rows.append((run, group, *cells, fmt(updates.get(run)), fmt(train.get(run))))
    return table(
        ("run", "group", *(header_names[m] for m in metrics), "updates", "train docs"), rows
    )


# (group, the single-group run of ours, the spaCy built-in run that scores that group) of
# setting (a), for result files that predate the "setting" field.
COMPARED = [
    ("emotion", "ours_single_emotion", "builtin_joint_multilabel"),
    ("sentiment", "ours_single_sentiment", "builtin_joint_multilabel"),
    ("offense", "ours_single_offense", "builtin_textcat_davidson"),
]


def quality_comparison(
    summary: Dict[str, Any], compared: Sequence[Tuple[str, str, str]] = COMPARED
) -> List[str]:
    """Joint vs single-group vs built-in, per group: mean macro F1 (and the official
    metric / ROC AUC / accuracy) differences, computed from the summary so the words follow
    the numbers."""

    def mean(run: str, group: str, metric: str) -> Optional[float]:
        value = summary.get(run, {}).get(group, {}).get(metric, {})
        return value.get("mean") if value else None

    def diff(a: str, b: str, group: str) -> str:
        parts = []
        for metric, name in METRIC_NAMES.items():
            x, y = mean(a, group, metric), mean(b, group, metric)
            if x is not None and y is not None:
                parts.append(f"{name} {x - y:+.3f}")
        return ", ".join(parts) if parts else "–"

    rows = []
    for group, single, builtin in compared:
        rows.append(
            (
                group,
                diff("ours_joint", single, group),
                diff("ours_joint_equal_compute", single, group),
                diff("ours_joint", builtin, group),
            )
        )
    if not any(cell != "–" for row in rows for cell in row[1:]):
        return []
    k = len(compared)
    builtins = ", ".join(f"`{builtin}` for {group}" for group, _, builtin in compared)
    lines = [
        "Differences of the means (joint minus the other; positive: the joint model is "
        f"better). Single-group models each take the full budget, so {k} of them cost {k} "
        f"times the training and {k} times the inference of one joint model; "
        "`ours_joint_equal_compute` gets their training budget together. Built-ins: "
        f"{builtins}.",
        "",
    ]
    lines += table(
        (
            "group",
            "joint − single (same updates)",
            "joint − single (equal compute)",
            "joint − built-in (same updates)",
        ),
        rows,
    )
    return lines


def equal_compute_verdict(
    summary: Dict[str, Any], compared: Sequence[Tuple[str, str, str]] = COMPARED
) -> List[str]:
    """The target "joint >= one model per group at equal training compute", group by group:
    both runs' mean ± sd over seeds and a verdict. A difference counts only outside the
    noise: |d| > sqrt(sd_joint² + sd_single²), the sd of a one-seed difference. One seed
    gives no verdict."""
    rows = []
    for group, single, _ in compared:
        joint_scores = summary.get("ours_joint_equal_compute", {}).get(group, {})
        single_scores = summary.get(single, {}).get(group, {})
        metric = "official" if "official" in joint_scores else "macro_f"
        joint, alone = joint_scores.get(metric), single_scores.get(metric)
        if not joint or not alone:
            continue
        d = joint["mean"] - alone["mean"]
        if (joint.get("n") or 1) < 2 or (alone.get("n") or 1) < 2:
            verdict = "one seed: no verdict"
        else:
            noise = math.sqrt((joint.get("sd") or 0.0) ** 2 + (alone.get("sd") or 0.0) ** 2)
            if d > noise:
                verdict = "joint ahead: met"
            elif d < -noise:
                verdict = "joint behind: NOT met"
            else:
                verdict = f"tie inside the noise (±{noise:.3f}): met"
        rows.append(
            (group, METRIC_NAMES[metric], mean_sd(alone), mean_sd(joint), f"{d:+.3f}", verdict)
        )
    if not rows:
        return []
    lines = [
        "Target: the joint model at equal training compute is not behind one model per group "
        "on any group (mean ± sd over seeds; a difference counts when it exceeds "
        "sqrt(sd_joint² + sd_single²)).",
        "",
    ]
    return lines + table(
        (
            "group",
            "metric",
            "one model per group",
            "joint, equal compute",
            "joint − single",
            "verdict",
        ),
        rows,
    )


def official_table(quality: Dict[str, Any]) -> List[str]:
    """TweetEval's official metric (x 100, as the leaderboard) per task: our runs, one model
    per task, the built-ins, and the leaderboard's reference row for context."""
    setting = quality["setting"]
    summary = quality.get("summary", {})
    tasks = list(setting["official_metric"])

    def cell(run: str, task: str) -> str:
        values = summary.get(run, {}).get(task, {}).get("official")
        if not values:
            return "–"
        text = f"{100 * values['mean']:.1f}"
        if values.get("sd") is not None:
            text += f" ± {100 * values['sd']:.1f}"
        return text

    rows = []
    for run, label in (
        ("ours_joint", "ours, joint (one model)"),
        ("ours_joint_equal_compute", "ours, joint, equal compute"),
        ("ours_single_{}", "ours, one model per task"),
        ("builtin_joint", "spaCy textcat per task, one shared transformer"),
        ("builtin_joint_multilabel", "spaCy textcat_multilabel per task, shared transformer"),
        ("builtin_textcat_{}", "spaCy textcat, one model per task"),
    ):
        cells = [cell(run.format(task), task) for task in tasks]
        if any(c != "–" for c in cells):
            rows.append((label, *cells))
    reference = setting.get("reference")
    if reference:
        rows.append(
            (
                f"{reference['name']} (leaderboard, for context)",
                *(fmt(reference["scores"].get(task), 1) for task in tasks),
            )
        )
    metrics = "; ".join(f"{task}: {metric}" for task, metric in setting["official_metric"].items())
    lines = [
        f"TweetEval's official metric × 100 on the test docs ({metrics}).",
        "",
    ]
    lines += table(("model", *tasks), rows)
    if reference:
        lines += [
            f"Reference: {reference['source']}. It fine-tunes a larger encoder per task on all "
            "of its training data; it is context, not a target.",
            "",
        ]
    return lines


def mean_sd(values: Dict[str, Any]) -> str:
    if not values:
        return "–"
    text = f"{values['mean']:.3f}"
    if values.get("sd") is not None:
        text += f" ± {values['sd']:.3f}"
    return text


def environment(*results: Optional[Dict[str, Any]]) -> List[str]:
    lines = ["## How these were measured", ""]
    for result in results:
        if not result:
            continue
        env = result["environment"]
        lines.append(
            f"- `{result['command']}` at {result['started']}: {env['cpu_count']} CPUs, "
            f"{env['threads']} threads, device {env['device']}, model {result['model']}, "
            f"load average at start {result['load_start']}, at end {result.get('load_end')}, "
            f"{result.get('wall_seconds')} s."
        )
        for command in result.get("appended", []):
            lines.append(f"- then `{command}` (rows added to the same file).")
    versions = next((r["environment"]["versions"] for r in results if r), {})
    if versions:
        lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    lines.append("")
    return lines


USAGE = """## The fast path is the default

A pipeline built from `configs/` is fast with plain `nlp.pipe`: its transformer is an
`mtl_transformer`, spacy-transformers' `transformer` whose `pipe` reads a buffer of
`buffer_batches` batches (32; at most `buffer_wordpieces` wordpieces), runs it sorted by
wordpieces and gives the docs back in input order; long docs are cut into windows of at
most 128 wordpieces (`spacy-mtl.wordpiece_spans.v1`). `spacy-mtl predict` sorts too.

```ini
[components.transformer]
factory = "mtl_transformer"
sort_by_length = true
buffer_batches = 32          # x nlp.pipe's batch_size docs held with their output at most
buffer_wordpieces = 131072   # a buffer of long docs ends here

[components.transformer.model.get_spans]
@span_getters = "spacy-mtl.wordpiece_spans.v1"
window = 128
```

A pipeline on spacy-transformers' own `transformer` (trained before) can still sort across
batches by hand: `spacy_mtl.trf.batching.pipe_by_length(nlp, texts)` (input order) or
`iter_by_length` (`(index, doc)` as they are done); its `wordpiece_spans` getter then needs
`name` (the transformer's folder) or `spacy_mtl.trf.span_getters.attach_tokenizers(nlp)` after
`spacy.load`.
"""


def render(folder: Path) -> str:
    inference = load(folder, "inference")
    training = load(folder, "training")
    qualities = [load(folder, name) for name, _, _ in QUALITY_SETTINGS]
    quantize = load(folder, "quantize")
    lines = [
        "# Benchmarks",
        "",
        "<!-- GENERATED by benchmarks/make_table.py from benchmarks/results/*.json. "
        "Do not edit: run the benchmarks, then `python benchmarks/make_table.py`. -->",
        "",
        "The claim: one model, one forward pass, K groups, no loss of quality. Speed and "
        "memory against a hand-written PyTorch loop (the limit), spaCy's built-in "
        "components on one shared transformer, and K separate pipelines; quality against "
        "one model per group and the built-ins. How to run: benchmarks/README.md.",
        "",
        "Ratios are measured in one run with the contenders taking turns, so they share the "
        "machine's load; docs/s depend on the load (recorded below) and are not comparable "
        "across runs.",
        "",
        "## Targets",
        "",
    ]
    lines += targets(inference, training, quantize)
    if inference:
        memory = inference.get("memory", {}).get("contenders", {})
        lines += ["## Inference", ""]
        lines.append(
            f"Batch size {inference['batch_size']}, {inference['environment']['threads']} "
            f"threads, windows of {inference['window']} wordpieces for the loop and "
            f"`wordpiece_spans` (ours as shipped); spaCy's default strided spans (128 spaCy "
            f"tokens, stride 96) for the stock transformer, the built-ins and the separate "
            f"pipelines. Peak RSS: each contender alone in a subprocess over "
            f"{next(iter(memory.values()), {}).get('n_docs', '–')} texts."
        )
        lines.append("")
        lines += speed_section(inference["short"], memory, "Short texts (GoEmotions + Davidson)")
        if "long" in inference:
            lines += speed_section(
                inference["long"], {}, f"Long texts (~{inference['long']['words']} words)"
            )
        lines += latency_section(inference)
        lines += scaling_section(inference)
        profiles = {
            f"{name} texts, {prof.get('n_docs')} docs": prof
            for name, prof in inference.get("profile", {}).items()
        }
        lines += profile_section(profiles, "Where inference time goes (ours)")
    else:
        lines += ["## Inference", "", "No results yet (benchmarks/results/inference.json).", ""]
    if quantize:
        lines += int8_section(quantize)
    else:
        lines += ["## int8 on CPU", "", "No results yet (benchmarks/results/quantize.json).", ""]
    if training:
        lines += training_section(training)
    else:
        lines += ["## Training", "", "No results yet (benchmarks/results/training.json).", ""]
    for quality, (name, title, command) in zip(qualities, QUALITY_SETTINGS):
        if quality:
            lines += quality_section(quality, title)
        else:
            lines += [
                f"## Quality on partial labels: {title}",
                "",
                f"Not run yet (benchmarks/results/{name}.json): `{command}`.",
                "",
            ]
    lines += hierarchy_section(load(folder, "hierarchy"))
    lines += [*USAGE.splitlines(), ""]
    lines += environment(inference, training, *qualities, quantize)
    return "\n".join(lines).rstrip() + "\n"


HIERARCHY_RUNS = {
    "joint_file": "joint, batches by file (one file: plain shuffle)",
    "joint_groups": 'joint, `strata = "groups"`',
    "single": "one model per level, the joint model's updates each",
    "single_equal": "one model per level, 1/K of them each (equal compute)",
}


def hierarchy_section(result: Optional[Dict[str, Any]]) -> List[str]:
    """Joint conditional groups against one model per level (benchmarks/hierarchy.py)."""
    title = "## Label hierarchies: conditional groups against one model per level"
    if not result:
        return [
            title,
            "",
            "Not run yet (benchmarks/results/hierarchy.json): "
            "`python benchmarks/hierarchy.py --seeds 0,1,2`.",
            "",
        ]
    summary = result.get("summary", {})
    args = result.get("args", {})
    levels = list(result.get("data", {}).get("train", {}))
    levels = [level for level in levels if level != "docs"]
    data = result.get("data", {})
    train = data.get("train", {})
    annotated = ", ".join(f"{level} {train.get(level)}" for level in levels)
    rows_of = result.get("rows", [])
    seeds = sorted({row["seed"] for row in rows_of})
    runs_per_seed = {run: sum(row["run"] == run for row in rows_of) for run in summary}
    lines = [
        title,
        "",
        "GoEmotions with three derived levels in one file (benchmarks/hierarchy.py): "
        "`emotional` (no / yes) → `polarity` (where emotional; 3 labels) → `negative` "
        "(where polarity is negative; 11 emotions). "
        f"Train {data.get('train', {}).get('docs')} docs "
        f"({annotated} annotated), "
        f"test {data.get('test', {}).get('docs')} docs; MiniLM, {args.get('updates')} updates "
        f"of {args.get('batch_size')}, alpha {args.get('alpha')} for joint_groups. Macro F1 on "
        "the test docs annotated for each level (mean ± sd over seeds "
        f"{', '.join(str(s) for s in seeds)}); e2e: end to end, blocked "
        "predictions count as missed.",
        "",
    ]

    def cell(run: str, level: str) -> str:
        value = summary.get(run, {}).get(level)
        if not value:
            return "–"
        mean, sd = value
        return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")

    rows = []
    for run in ("joint_file", "joint_groups"):
        if run in summary:
            cells = [
                f"{cell(run, lv)} (e2e {cell(run, lv + '_e2e')})"
                if lv != levels[0]
                else cell(run, lv)
                for lv in levels
            ]
            rows.append([f"`{run}`: {HIERARCHY_RUNS[run]}", *cells])
    for kind in ("single", "single_equal"):
        suffix = "_equal" if kind == "single_equal" else ""
        cells = [cell(f"single_{lv}{suffix}", lv) for lv in levels]
        if any(c != "–" for c in cells):
            rows.append([f"`{kind}`: {HIERARCHY_RUNS[kind]}", *cells])
    lines += table(("run", *levels), rows)
    partial = [run for run, n in runs_per_seed.items() if n < 3]
    if partial:
        lines += [
            f"Fewer than 3 seeds for {', '.join(sorted(partial)) or 'every run'}: "
            "differences are not yet read against the noise.",
            "",
        ]
    return lines


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    text = render(args.results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf8")
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
