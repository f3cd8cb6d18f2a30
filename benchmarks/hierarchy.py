"""Conditional groups on a label hierarchy: one joint mtl_textcat against one model per level,
at the same number of updates and at equal compute (issue 30).

    python benchmarks/hierarchy.py --seeds 0,1,2                 # results/hierarchy.json
    python benchmarks/hierarchy.py --seeds 0 --runs joint_groups --updates 100   # a quick look

The hierarchy is derived from GoEmotions (Demszky et al. 2020; ../shared/data/goemotions or
$SPACY_MTL_DATA) with the data set's own sentiment mapping (sentiment_dict.json), three
levels in one file, each annotated exactly where its condition holds:

- `emotional` (multiclass no / yes): yes when the comment has any emotion but `neutral`;
- `polarity` (multilabel ambiguous / negative / positive), parent `emotional/yes`: the
  sentiments of its emotions;
- `negative` (multilabel, the 11 negative emotions), parent `polarity/negative`.

Runs (each seed; all on MiniLM with the shipped cpu.cfg's head lr_scale and mixed batcher):
- joint_file: one mtl_textcat with the three conditional groups, --updates updates, the
  batcher's strata by file (one file: plain shuffled batches);
- joint_groups: the same with `strata = "groups"` and --alpha: the deeper levels' docs
  (annotated for two or three groups) get size^alpha shares;
- single_<level>: one mtl_textcat with that level alone, trained on the docs annotated for
  it, --updates updates (the joint model's updates, each: K times its compute);
- single_<level>_equal: the same with --updates / K updates (together, the joint model's
  compute).
Scores: per level, macro F1 on the test docs annotated for it (the level's conditional
scoring; threshold 0.5, multiclass argmax), the scorer's own `score_arrays`; for the joint
runs also the end-to-end macro F1 of the two conditional levels.
"""

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import harness

LEVELS: Dict[str, Dict[str, Any]] = {
    "emotional": {"kind": "multiclass", "labels": ["no", "yes"]},
    "polarity": {
        "kind": "multilabel",
        "labels": ["ambiguous", "negative", "positive"],
        "parent": "emotional/yes",
    },
    "negative": {"kind": "multilabel", "labels": [], "parent": "polarity/negative"},
}
SINGLE = tuple(f"single_{level}" for level in LEVELS)
RUNS = ("joint_file", "joint_groups", *SINGLE, *(f"{run}_equal" for run in SINGLE))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="HF model folder (default: MiniLM)")
    parser.add_argument("--train", type=int, default=8000, help="train docs (GoEmotions train)")
    parser.add_argument("--test", type=int, default=2000, help="test docs (GoEmotions test)")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learn-rate", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--alpha", type=float, default=0.5, help="joint_groups' alpha")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--runs", default="all", help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    return parser.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else parse_args([])


def read_hierarchy(root: Path, split: str) -> List[harness.Item]:
    """GoEmotions rows with the three levels' gold, each level only where it applies."""
    folder = root / "goemotions"
    names = harness.emotion_labels(root)
    mapping = json.loads((folder / "sentiment_dict.json").read_text(encoding="utf8"))
    sentiment_of = {emotion: s for s, emotions in mapping.items() for emotion in emotions}
    negatives = sorted(mapping["negative"])
    polarities = LEVELS["polarity"]["labels"]
    items = []
    with (folder / f"{split}.tsv").open(encoding="utf8", newline="") as file:
        for row in csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE):
            on = {names[int(i)] for i in row[1].split(",")} - {"neutral"}
            cats = {"emotional/yes": float(bool(on)), "emotional/no": float(not on)}
            if on:
                held = {sentiment_of[e] for e in on}
                cats.update({f"polarity/{p}": float(p in held) for p in polarities})
                if "negative" in held:
                    cats.update({f"negative/{e}": float(e in on) for e in negatives})
            items.append(harness.Item(row[0], cats, "goemotions"))
    return items


def levels_of(run: str) -> List[str]:
    if run.startswith("joint"):
        return list(LEVELS)
    return [run.split("_")[1]]


def groups_of(run: str, negatives: List[str]) -> Dict[str, Dict[str, Any]]:
    groups = {name: dict(cfg) for name, cfg in LEVELS.items()}
    groups["negative"]["labels"] = negatives
    if run.startswith("joint"):
        return groups
    (level,) = levels_of(run)
    single = dict(groups[level])
    single.pop("parent", None)
    return {level: single}


def annotated(item: harness.Item, level: str) -> bool:
    return any(key.startswith(f"{level}/") for key in item.cats)


def batches(examples: List[Any], run: str, seed: int, shipped: Dict[str, Any]) -> Iterator[Any]:
    """The shipped batcher's batches; joint_groups mixes the docs by the groups they are
    annotated for, with --alpha."""
    grouped = run == "joint_groups"
    return harness.endless_batches(
        examples,
        seed,
        shipped,
        size=ARGS.batch_size,
        alpha=ARGS.alpha if grouped else None,
        strata="groups" if grouped else "file",
        verbose=False,
    )


def train_and_score(
    run: str,
    seed: int,
    train: List[harness.Item],
    test: List[harness.Item],
    negatives: List[str],
    shipped: Dict[str, Any],
) -> Dict[str, Any]:
    import spacy
    from spacy.training import Example
    from spacy.util import fix_random_seed
    from thinc.api import Adam, warmup_linear

    from spacy_mtl.gold import DATASET_KEY

    model = ARGS.model or harness.default_model()
    levels = levels_of(run)
    groups = groups_of(run, negatives)
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config=harness.transformer_config(model))
    nlp.add_pipe("mtl_textcat", config={"groups": groups, "lr_scale": shipped["lr_scale"]})
    items = train if run.startswith("joint") else [it for it in train if annotated(it, levels[0])]
    examples = []
    for it in items:
        cats = {k: v for k, v in it.cats.items() if k.split("/")[0] in groups}
        example = Example.from_dict(nlp.make_doc(it.text), {"cats": cats})
        example.reference.user_data[DATASET_KEY] = it.source
        examples.append(example)
    k = len(LEVELS)
    updates = ARGS.updates // k if run.endswith("_equal") else ARGS.updates
    started = time.perf_counter()
    nlp.initialize(lambda: examples)
    optimizer = Adam(
        learn_rate=warmup_linear(ARGS.learn_rate, ARGS.warmup, updates),
        L2=0.01,
        L2_is_weight_decay=True,
        grad_clip=1.0,
        use_averages=False,
    )
    stream = batches(examples, run, seed, shipped)
    seen: Dict[str, int] = {}
    for _ in range(updates):
        batch = next(stream)
        for eg in batch:
            name = "+".join(sorted({key.split("/")[0] for key in eg.reference.cats}))
            seen[name] = seen.get(name, 0) + 1
        nlp.update(batch, sgd=optimizer, drop=0.1)
        optimizer.step_schedules()
    train_seconds = time.perf_counter() - started
    return {
        "run": run,
        "seed": seed,
        "updates": updates,
        "n_train": len(examples),
        "docs_seen": dict(sorted(seen.items())),
        "train_seconds": round(train_seconds, 1),
        "seconds_per_update": round(train_seconds / max(1, updates), 3),
        "scores": score(nlp, groups, test),
    }


def score(nlp: Any, groups: Dict[str, Dict[str, Any]], test: List[harness.Item]) -> Dict[str, Any]:
    from spacy.training import Example

    from spacy_mtl.scorer import gold_and_scores, score_arrays
    from spacy_mtl.trf.batching import pipe_by_length

    schema = nlp.get_pipe("mtl_textcat").schema
    docs = list(pipe_by_length(nlp, [it.text for it in test], batch_size=64))
    examples = []
    for doc, it in zip(docs, test):
        reference = nlp.make_doc(it.text)
        reference.cats = {k: v for k, v in it.cats.items() if k.split("/")[0] in groups}
        examples.append(Example(doc, reference))
    truths, masks, values = gold_and_scores(examples, schema)
    metrics = score_arrays(schema, truths, masks, values)
    out: Dict[str, Any] = {}
    for group, start, end in schema.slices():
        out[group.name] = {
            "macro_f": metrics[f"mtl_{group.name}_macro_f"],
            "e2e_macro_f": metrics.get(f"mtl_{group.name}_e2e_macro_f"),
            "n_test": int((masks[:, start:end] > 0).any(axis=1).sum()),
        }
    return out


def summarize(rows: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """{run: {level: [mean, sd] of macro F1 (and e2e)}} over seeds."""
    out: Dict[str, Dict[str, Any]] = {}
    for run in dict.fromkeys(row["run"] for row in rows):
        mine = [row for row in rows if row["run"] == run]
        out[run] = {}
        for level in mine[0]["scores"]:
            out[run][level] = harness.mean_sd([r["scores"][level]["macro_f"] for r in mine])
            e2e = [r["scores"][level]["e2e_macro_f"] for r in mine]
            if all(v is not None for v in e2e):
                out[run][f"{level}_e2e"] = harness.mean_sd(e2e)
        out[run]["seconds_per_update"] = round(
            statistics.fmean(r["seconds_per_update"] for r in mine), 3
        )
    return out


def main() -> None:
    harness.set_threads(ARGS.threads)
    model = ARGS.model or harness.default_model()
    device = harness.use_device(-1)
    root = harness.data_dir()
    seeds = [int(s) for s in ARGS.seeds.split(",") if s.strip()]
    runs = list(RUNS) if ARGS.runs == "all" else [r.strip() for r in ARGS.runs.split(",")]
    unknown = sorted(set(runs) - set(RUNS))
    if unknown:
        raise SystemExit(f"Unknown run(s) {unknown}; known: {', '.join(RUNS)}")
    negatives = sorted(
        json.loads((root / "goemotions" / "sentiment_dict.json").read_text())["negative"]
    )
    train = harness.sample(read_hierarchy(root, "train"), ARGS.train, seed=0)
    test = harness.sample(read_hierarchy(root, "test"), ARGS.test, seed=0)
    shipped = harness.shipped_training()
    started = time.time()
    result: Dict[str, Any] = {
        **harness.result_header("hierarchy", ARGS, model, device),
        "data": {
            split: {level: sum(annotated(it, level) for it in items) for level in LEVELS}
            | {"docs": len(items)}
            for split, items in (("train", train), ("test", test))
        },
        "seeds": seeds,
        "rows": [],
    }
    print(json.dumps(result["data"]), flush=True)
    for seed in seeds:
        for run in runs:
            row = train_and_score(run, seed, train, test, negatives, shipped)
            row["load"] = harness.load_avg()
            result["rows"].append(row)
            scores = ", ".join(
                f"{level} {s['macro_f']:.3f}"
                + (f" (e2e {s['e2e_macro_f']:.3f})" if s["e2e_macro_f"] is not None else "")
                for level, s in row["scores"].items()
            )
            print(
                f"seed {seed} {run}: {scores}  [{row['seconds_per_update']} s/update]", flush=True
            )
            result["summary"] = summarize(result["rows"])
            harness.write_json(ARGS.out or harness.RESULTS_DIR / "hierarchy.json.partial", result)
    result["summary"] = summarize(result["rows"])
    harness.finish(result, started, ARGS.out, "hierarchy")
    partial = harness.RESULTS_DIR / "hierarchy.json.partial"
    if ARGS.out is None and partial.exists():
        partial.unlink()


if __name__ == "__main__":
    sys.exit(main())
