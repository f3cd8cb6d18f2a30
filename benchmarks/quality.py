"""Quality on partial labels: one joint mtl_textcat against one model per group and against
spaCy's built-ins, same budget (updates, batch, model, learning rate), on real data.

    python benchmarks/quality.py                    # 1 seed, the CPU budget (~30 min)
    python benchmarks/quality.py --seeds 0,1,2      # mean ± sd over seeds
    python benchmarks/quality.py --train-per-set 20000 --updates 5000 --gpu-id 0   # GPU

Data: GoEmotions (emotion: 28 labels, sentiment: 4 labels, both multilabel) and Davidson
(offense: hate / offensive / neither, multiclass). A GoEmotions doc has no offense label and
a Davidson doc no emotion or sentiment label: each corpus annotates only its own groups.

Runs (each gets --updates updates of --batch-size docs):
- ours_joint: transformer + mtl_textcat with the 3 groups, on both corpora;
- ours_single_<group>: transformer + mtl_textcat with one group, on its corpus only;
- builtin_joint: transformer + textcat_multilabel (emotion, sentiment) + textcat (offense)
  on both corpora -- spaCy refuses it (E895: textcat sees the emotion and sentiment
  positives of a GoEmotions doc as two exclusive labels); recorded, not trained;
- builtin_joint_multilabel: the same with offense as textcat_multilabel (which can skip
  missing labels), scored by its argmax;
- builtin_textcat_all_docs: textcat (offense) on both corpora: textcat cannot skip missing
  labels, so every GoEmotions doc is trained toward 'no offense label at all' (all zeros);
- builtin_textcat_davidson: textcat (offense) on Davidson only;
- ours_joint_equal_compute (only with --runs): the joint model with K x --updates, the
  training compute of the K single-group models together.
Scores: per group, on the test docs annotated for it, with spacy_mtl's scorer: macro F1
(multilabel at threshold 0.5, multiclass by argmax), accuracy / macro ROC AUC.
"""

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="HF model folder (default: MiniLM)")
    parser.add_argument("--train-per-set", type=int, default=2000)
    parser.add_argument("--test-per-set", type=int, default=500)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learn-rate", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=30, help="linear warm-up updates")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    parser.add_argument("--runs", default="all", help="comma-separated run names, or all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gpu-id", type=int, default=-1, help="-1: CPU")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--append",
        action="store_true",
        help="add these runs to the rows already in --out (same budget required)",
    )
    return parser.parse_args(argv)


ARGS = parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

harness.set_threads(ARGS.threads)

from wasabi import msg  # noqa: E402

RUNS = [
    "ours_joint",
    "ours_single_emotion",
    "ours_single_sentiment",
    "ours_single_offense",
    "builtin_joint",
    "builtin_joint_multilabel",
    "builtin_textcat_all_docs",
    "builtin_textcat_davidson",
]
# Not in the default set (it trains 3x longer): the joint model with the updates of all the
# single-group models together, i.e. the same total training compute as K models.
EXTRA_RUNS = ["ours_joint_equal_compute"]


def load_data(seed: int) -> Dict[str, List[harness.Item]]:
    """Train / test items per corpus; the data draw is fixed (seed 0), the training seed
    varies the initialization and the batch order only."""
    root = harness.data_dir()
    n_train, n_test = ARGS.train_per_set, ARGS.test_per_set
    davidson_train, davidson_test = harness.davidson_split(root)
    return {
        "goemotions_train": harness.sample(harness.read_goemotions(root, "train"), n_train, 0),
        "goemotions_test": harness.sample(harness.read_goemotions(root, "test"), n_test, 0),
        "davidson_train": harness.sample(davidson_train, n_train, 0),
        "davidson_test": harness.sample(davidson_test, n_test, 0),
    }


def only(items: List[harness.Item], groups: List[str]) -> List[harness.Item]:
    """Items with their gold restricted to `groups` (other groups' keys dropped)."""
    keep = tuple(f"{g}/" for g in groups)
    return [
        harness.Item(it.text, {k: v for k, v in it.cats.items() if k.startswith(keep)}, it.source)
        for it in items
    ]


def plan(run: str, data: Dict[str, List[harness.Item]]) -> Tuple[List[harness.Item], List[str]]:
    """(training items, groups scored) of a run."""
    goemotions, davidson = data["goemotions_train"], data["davidson_train"]
    if run.startswith("ours_joint") or run.startswith("builtin_joint"):
        return goemotions + davidson, [harness.EMOTION, harness.SENTIMENT, harness.OFFENSE]
    if run.startswith("ours_single_"):
        group = run[len("ours_single_") :]
        corpus = davidson if group == harness.OFFENSE else goemotions
        return only(corpus, [group]), [group]
    if run == "builtin_textcat_all_docs":
        return only(goemotions, [harness.OFFENSE]) + davidson, [harness.OFFENSE]
    if run == "builtin_textcat_davidson":
        return davidson, [harness.OFFENSE]
    raise ValueError(f"Unknown run {run!r}; known: {RUNS + EXTRA_RUNS}")


def build(run: str, model: str, groups: Dict[str, Dict[str, Any]]) -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config=harness.transformer_config(model))
    if run.startswith("ours"):
        nlp.add_pipe("mtl_textcat", config={"groups": groups})
        return nlp
    for name, cfg in groups.items():
        if run == "builtin_joint_multilabel":
            cfg = {**cfg, "kind": "multilabel"}
        harness.add_builtin(nlp, name, cfg)
        # Without labels, a built-in's initialize takes *every* cat of the examples as its
        # label (all 35 of the three groups), and the components overwrite each other's
        # doc.cats. Give each one its own group's labels, as `spacy init labels` would.
        labels = [f"{name}/{label}" for label in cfg["labels"]]
        nlp.config["initialize"]["components"][name] = {"labels": labels}
    return nlp


def train_and_score(run: str, seed: int, data: Dict[str, List[harness.Item]]) -> Dict[str, Any]:
    from spacy.training import Example
    from spacy.util import fix_random_seed
    from thinc.api import Adam, warmup_linear

    from spacy_mtl.batching import pipe_by_length
    from spacy_mtl.schema import GroupSchema
    from spacy_mtl.scorer import gold_and_scores, score_arrays

    model = ARGS.model or harness.default_model()
    all_groups = harness.benchmark_groups(harness.data_dir())
    train_items, scored = plan(run, data)
    groups = {name: all_groups[name] for name in scored}
    fix_random_seed(seed)
    nlp = build(run, model, groups)
    examples = [Example.from_dict(nlp.make_doc(it.text), {"cats": it.cats}) for it in train_items]
    row: Dict[str, Any] = {
        "run": run,
        "seed": seed,
        "groups": scored,
        "n_train": len(examples),
        "updates": ARGS.updates,
        "batch_size": ARGS.batch_size,
    }
    updates = ARGS.updates * (len(scored) if run == "ours_joint_equal_compute" else 1)
    row["updates"] = updates
    started = time.perf_counter()
    try:
        nlp.initialize(lambda: examples)
    except ValueError as err:
        # builtin_joint: spaCy's textcat refuses docs with two positive cats (E895).
        row["error"] = " ".join(str(err).split()).split(" Example of")[0][:300]
        return row
    schedule = warmup_linear(ARGS.learn_rate, ARGS.warmup, updates)
    optimizer = Adam(
        learn_rate=schedule, L2=0.01, L2_is_weight_decay=True, grad_clip=1.0, use_averages=False
    )
    rng = random.Random(seed)
    order: List[int] = []
    losses: Dict[str, float] = {}
    rates: List[float] = []
    for _ in range(updates):
        if len(order) < ARGS.batch_size:
            more = list(range(len(examples)))
            rng.shuffle(more)
            order += more
        batch = [examples[i] for i in order[: ARGS.batch_size]]
        del order[: ARGS.batch_size]
        losses = {}
        rates.append(float(optimizer.learn_rate))
        nlp.update(batch, sgd=optimizer, drop=ARGS.dropout, losses=losses)
        # Advance the learning-rate schedule, as spaCy's training loop does: without it
        # warmup_linear stays at step 0, a learning rate of 0.
        optimizer.step_schedules()
    row["train_seconds"] = round(time.perf_counter() - started, 1)
    row["final_losses"] = {k: round(float(v), 4) for k, v in losses.items()}
    row["mean_learn_rate"] = sum(rates) / max(1, len(rates))
    # Score each group on the test docs of its corpus, with that group's gold only.
    tests = data["goemotions_test"] + data["davidson_test"]
    predicted = list(pipe_by_length(nlp, [it.text for it in tests], batch_size=64))
    scores: Dict[str, Any] = {}
    for group in scored:
        source = "davidson" if group == harness.OFFENSE else "goemotions"
        chosen = []
        for doc, it in zip(predicted, tests):
            if it.source == source:
                reference = nlp.make_doc(it.text)
                reference.cats = {k: v for k, v in it.cats.items() if k.startswith(f"{group}/")}
                chosen.append(Example(doc, reference))
        one = GroupSchema.from_config({group: groups[group]})
        metrics = score_arrays(one, *gold_and_scores(chosen, one))
        scores[group] = {
            "macro_f": metrics[f"mtl_{group}_macro_f"],
            "acc": metrics.get(f"mtl_{group}_acc"),
            "macro_auc": metrics.get(f"mtl_{group}_macro_auc"),
            "n_test": len(chosen),
        }
    row["scores"] = scores
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def summarize(rows: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """{run: {group: {metric: {mean, sd, n, values}}}} over seeds."""
    summary: Dict[str, Dict[str, Any]] = {}
    for row in rows:
        if "scores" not in row:
            summary.setdefault(row["run"], {})["error"] = row.get("error")
            continue
        for group, metrics in row["scores"].items():
            for metric, value in metrics.items():
                if metric == "n_test" or value is None:
                    continue
                slot = summary.setdefault(row["run"], {}).setdefault(group, {})
                slot.setdefault(metric, {"values": []})["values"].append(value)
    for groups in summary.values():
        for group, metrics in groups.items():
            if group == "error":
                continue
            for values in metrics.values():
                vals = values["values"]
                values["mean"] = round(statistics.fmean(vals), 4)
                values["sd"] = round(statistics.stdev(vals), 4) if len(vals) > 1 else None
                values["n"] = len(vals)
    return summary


def main() -> None:
    model = ARGS.model or harness.default_model()
    device = harness.use_device(ARGS.gpu_id)
    seeds = [int(s) for s in ARGS.seeds.split(",") if s.strip()]
    runs = RUNS if ARGS.runs == "all" else [r.strip() for r in ARGS.runs.split(",")]
    started = time.time()
    result: Dict[str, Any] = {
        **harness.result_header("quality", ARGS, model, device),
        "budget": {
            "train_per_set": ARGS.train_per_set,
            "test_per_set": ARGS.test_per_set,
            "updates": ARGS.updates,
            "batch_size": ARGS.batch_size,
            "learn_rate": ARGS.learn_rate,
            "warmup": ARGS.warmup,
            "dropout": ARGS.dropout,
            "optimizer": "thinc Adam, L2 0.01 as weight decay, grad_clip 1.0, no averages",
            "threshold": 0.5,
        },
        "seeds": seeds,
        "rows": [],
    }
    data = load_data(0)
    out = ARGS.out or harness.RESULTS_DIR / "quality.json"
    if ARGS.append and out.exists():
        previous = json.loads(out.read_text(encoding="utf8"))
        if previous["budget"] != result["budget"]:
            raise SystemExit(
                f"--append: {out} was measured with budget {previous['budget']}, not "
                f"{result['budget']}."
            )
        result["rows"] = previous["rows"]
        result["seeds"] = sorted(set(previous["seeds"]) | set(seeds))
        result["appended"] = [*previous.get("appended", []), result["command"]]
        result["command"] = previous["command"]
    for seed in seeds:
        for run in runs:
            msg.info(f"seed {seed}: {run}")
            row = train_and_score(run, seed, data)
            row["load"] = harness.load_avg()
            result["rows"].append(row)
            if "error" in row:
                msg.warn(f"  {run}: {row['error']}")
            else:
                for group, s in row["scores"].items():
                    print(f"  {group:>10}: macro F1 {s['macro_f']:.3f}  ({row['seconds']} s)")
            # Written after every run: a long run that stops still leaves its results.
            result["summary"] = summarize(result["rows"])
            result["wall_seconds"] = round(time.time() - started, 1)
            harness.write_json(out, result)
    result["load_end"] = harness.load_avg()
    harness.write_json(out, result)
    msg.good(f"Wrote {out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
