"""Quality on partial labels: one joint mtl_textcat against one model per group and against
spaCy's built-ins, same budget (updates, batch, model, learning rate), on real data.

    python benchmarks/quality.py                    # setting (a), 1 seed, the CPU budget
    python benchmarks/quality.py --seeds 0,1,2      # mean ± sd over seeds
    python benchmarks/quality.py --setting tweeteval --seeds 0,1,2   # setting (b)
    python benchmarks/quality.py --train-per-set 20000 --updates 5000 --gpu-id 0   # GPU

Setting (a) `goemotions_davidson` (results/quality.json): GoEmotions (emotion: 28 labels,
sentiment: 4 labels, both multilabel) and Davidson (offense: hate / offensive / neither,
multiclass). A GoEmotions doc has no offense label and a Davidson doc no emotion or sentiment
label: each corpus annotates only its own groups.

Setting (b) `tweeteval` (results/quality_tweeteval.json): four TweetEval tasks as four
multiclass groups and four data sets -- emotion (4 labels), hate, irony, offensive (2 each);
each doc is annotated for its own task only. Trained on the train split, scored on the test
split; each task also gets TweetEval's official metric (see tweeteval.py), next to the
leaderboard's RoBERTa-base row.

Training follows configs/cpu.cfg: mtl_textcat with its `lr_scale` (the heads learn at 10x
the transformer's rate) and batches from the registered `spacy-mtl.mixed_batcher.v1` (each
doc's data set is its corpus; alpha, sort_by_length and buffer as in cpu.cfg) for every
run, so all runs see the same kind of batches. `--weighting uncertainty` is passed to
mtl_textcat's `weighting` setting.

Runs (each gets --updates updates of --batch-size docs), both settings:
- ours_joint: transformer + mtl_textcat with all groups, on all corpora;
- ours_single_<group>: transformer + mtl_textcat with one group, on its corpus only;
- ours_joint_equal_compute: the joint model with K x --updates, the training compute of the
  K single-group models together (setting (a): only with --runs; (b): in the default set);
- builtin_joint: transformer + one built-in per group (textcat for a multiclass group,
  textcat_multilabel for a multilabel one) on all corpora. (a): spaCy refuses it (E895:
  textcat sees the emotion and sentiment positives of a GoEmotions doc as two exclusive
  labels); recorded, not trained. (b): trained, but textcat cannot skip missing labels, so
  every doc of another task teaches each textcat 'none of my labels' (all zeros);
- builtin_joint_multilabel: the same with every group as textcat_multilabel (which skips
  missing labels), scored by its argmax where the group is multiclass.
Setting (a) only:
- builtin_textcat_all_docs: textcat (offense) on both corpora: every GoEmotions doc is
  trained toward 'no offense label at all' (all zeros);
- builtin_textcat_davidson: textcat (offense) on Davidson only.
Setting (b) only:
- builtin_textcat_<task>: one textcat on its task's data only (spaCy's one model per task).
Scores: per group, on the test docs annotated for it, with spacy_mtl's scorer: macro F1
(multilabel at threshold 0.5, multiclass by argmax), accuracy / macro ROC AUC; (b) adds
`official`.
"""

import argparse
import collections
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

SETTINGS_DEFAULT_TEST = {"goemotions_davidson": 500, "tweeteval": 0}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--setting",
        choices=sorted(SETTINGS_DEFAULT_TEST),
        default="goemotions_davidson",
        help="(a) goemotions_davidson or (b) tweeteval",
    )
    parser.add_argument("--model", default=None, help="HF model folder (default: MiniLM)")
    parser.add_argument("--train-per-set", type=int, default=2000)
    parser.add_argument(
        "--test-per-set",
        type=int,
        default=None,
        help="test docs per data set (0: all; default 500 for (a), all for (b))",
    )
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learn-rate", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=30, help="linear warm-up updates")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument(
        "--weighting",
        choices=["fixed", "uncertainty"],
        default="fixed",
        help="mtl_textcat's group weighting (uncertainty: learned, Kendall et al. 2018)",
    )
    parser.add_argument(
        "--group-weight",
        action="append",
        default=[],
        metavar="GROUP=W",
        help="override a shipped group's loss weight (repeatable), e.g. offense=1",
    )
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
    args = parser.parse_args(argv)
    if args.test_per_set is None:
        args.test_per_set = SETTINGS_DEFAULT_TEST[args.setting]
    return args


ARGS = parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

harness.set_threads(ARGS.threads)

import tweeteval  # noqa: E402
from wasabi import msg  # noqa: E402

SHIPPED_CONFIG = harness.SHIPPED_CONFIG
LOSS_KEYS = ("weight", "class_weights", "pos_weight")


@dataclass(frozen=True)
class Setting:
    """A quality benchmark: its groups, which corpus annotates which groups, its runs."""

    name: str
    title: str
    groups: Dict[str, Dict[str, Any]]
    corpora: Dict[str, Tuple[str, ...]]
    runs: Tuple[str, ...]
    extra_runs: Tuple[str, ...]
    out_name: str
    # builtin_textcat_<corpus> runs of this setting; the built-in each group is compared to.
    builtin_compared: Dict[str, str]
    official: bool = False

    def corpus_of(self, group: str) -> str:
        return next(name for name, groups in self.corpora.items() if group in groups)


def make_setting(name: str, root: Path) -> Setting:
    if name == "goemotions_davidson":
        emotion, sentiment, offense = harness.EMOTION, harness.SENTIMENT, harness.OFFENSE
        return Setting(
            name=name,
            title="(a) GoEmotions + Davidson",
            groups=harness.benchmark_groups(root),
            corpora={"goemotions": (emotion, sentiment), "davidson": (offense,)},
            runs=(
                "ours_joint",
                "ours_single_emotion",
                "ours_single_sentiment",
                "ours_single_offense",
                "builtin_joint",
                "builtin_joint_multilabel",
                "builtin_textcat_all_docs",
                "builtin_textcat_davidson",
            ),
            # Not in the default set (it trains 3x longer).
            extra_runs=("ours_joint_equal_compute",),
            out_name="quality.json",
            builtin_compared={
                emotion: "builtin_joint_multilabel",
                sentiment: "builtin_joint_multilabel",
                offense: "builtin_textcat_davidson",
            },
        )
    if name == "tweeteval":
        tasks = tweeteval.TASKS
        return Setting(
            name=name,
            title="(b) TweetEval: emotion, hate, irony, offensive",
            groups=tweeteval.groups(root / "tweeteval"),
            corpora={task: (task,) for task in tasks},
            runs=(
                "ours_joint",
                *(f"ours_single_{task}" for task in tasks),
                "ours_joint_equal_compute",
                "builtin_joint",
                "builtin_joint_multilabel",
                *(f"builtin_textcat_{task}" for task in tasks),
            ),
            extra_runs=(),
            out_name="quality_tweeteval.json",
            builtin_compared={task: f"builtin_textcat_{task}" for task in tasks},
            official=True,
        )
    raise ValueError(f"Unknown setting {name!r}; known: {sorted(SETTINGS_DEFAULT_TEST)}")


RUN_NOTES = {
    "ours_joint": "mtl_textcat, all groups, all corpora",
    "ours_single_": "mtl_textcat, one group, its corpus only (one model per group)",
    "ours_joint_equal_compute": "mtl_textcat, all groups, K x the updates (equal compute)",
    "builtin_joint": "one built-in per group on one shared transformer, all corpora; "
    "textcat cannot skip missing labels: other corpora's docs are trained toward all zeros",
    "builtin_joint_multilabel": "one textcat_multilabel per group (skips missing labels), "
    "all corpora, multiclass groups scored by argmax",
    "builtin_textcat_all_docs": "textcat (offense) on both corpora: GoEmotions docs trained "
    "toward all zeros",
    "builtin_textcat_": "textcat on its corpus only (one spaCy model per group)",
}


def run_note(run: str) -> str:
    if run in RUN_NOTES:
        return RUN_NOTES[run]
    return next((note for key, note in RUN_NOTES.items() if run.startswith(key)), "")


def shipped_training() -> Dict[str, Any]:
    """harness.shipped_training, with the loss settings of the shipped groups."""
    from thinc.api import Config

    config = Config().from_disk(SHIPPED_CONFIG, interpolate=False)
    groups = config["components"]["mtl_textcat"]["groups"]
    group_loss = {
        name: {key: group[key] for key in LOSS_KEYS if key in group}
        for name, group in groups.items()
    }
    for override in ARGS.group_weight:
        name, _, weight = override.partition("=")
        group_loss.setdefault(name, {})["weight"] = float(weight)
    # Loss settings of the shipped groups (weight, class_weights, pos_weight), copied onto
    # the groups of the same name (setting (a)); other groups keep the defaults.
    return {**harness.shipped_training(), "group_loss": group_loss}


def load_data(setting: Setting) -> Dict[str, Dict[str, List[harness.Item]]]:
    """{"train": {corpus: items}, "test": {corpus: items}}. The data draw is fixed (seed 0);
    the training seed varies the initialization and the batch order only."""
    root = harness.data_dir()
    n_train, n_test = ARGS.train_per_set, ARGS.test_per_set

    def cap(items: List[harness.Item], n: int) -> List[harness.Item]:
        return harness.sample(items, n if n > 0 else len(items), 0)

    if setting.name == "tweeteval":
        folder = root / "tweeteval"
        return {
            split: {
                task: cap(tweeteval.read_split(folder, task, split), n) for task in setting.corpora
            }
            for split, n in (("train", n_train), ("test", n_test))
        }
    davidson_train, davidson_test = harness.davidson_split(root)
    return {
        "train": {
            "goemotions": cap(harness.read_goemotions(root, "train"), n_train),
            "davidson": cap(davidson_train, n_train),
        },
        "test": {
            "goemotions": cap(harness.read_goemotions(root, "test"), n_test),
            "davidson": cap(davidson_test, n_test),
        },
    }


def only(items: List[harness.Item], groups: List[str]) -> List[harness.Item]:
    """Items with their gold restricted to `groups` (other groups' keys dropped)."""
    keep = tuple(f"{g}/" for g in groups)
    return [
        harness.Item(it.text, {k: v for k, v in it.cats.items() if k.startswith(keep)}, it.source)
        for it in items
    ]


def plan(
    run: str, setting: Setting, data: Dict[str, Dict[str, List[harness.Item]]]
) -> Tuple[List[harness.Item], List[str]]:
    """(training items, groups scored) of a run."""
    train = data["train"]
    everything = [it for corpus in setting.corpora for it in train[corpus]]
    if run.startswith("ours_joint") or run.startswith("builtin_joint"):
        return everything, list(setting.groups)
    if run.startswith("ours_single_"):
        group = run[len("ours_single_") :]
        if group in setting.groups:
            return only(train[setting.corpus_of(group)], [group]), [group]
    if run == "builtin_textcat_all_docs" and run in setting.runs:
        multiclass = [g for g, cfg in setting.groups.items() if cfg["kind"] == "multiclass"]
        return only(everything, multiclass), multiclass
    if run.startswith("builtin_textcat_") and run in setting.runs:
        corpus = run[len("builtin_textcat_") :]
        return train[corpus], list(setting.corpora[corpus])
    raise ValueError(
        f"Unknown run {run!r} for setting {setting.name}; known: "
        f"{list(setting.runs + setting.extra_runs)}"
    )


def mtl_config(groups: Dict[str, Dict[str, Any]], shipped: Dict[str, Any]) -> Dict[str, Any]:
    loss = shipped.get("group_loss", {})
    groups = {name: {**cfg, **loss.get(name, {})} for name, cfg in groups.items()}
    config: Dict[str, Any] = {"groups": groups, "lr_scale": shipped["lr_scale"]}
    if ARGS.weighting != "fixed":
        # Passed only when asked for, so the benchmark runs on a spacy_mtl without it.
        config["weighting"] = ARGS.weighting
    return config


def check_weighting() -> None:
    """Refuse --weighting early (not after hours of other runs) if mtl_textcat lacks it."""
    if ARGS.weighting == "fixed":
        return
    from spacy.language import Language

    import spacy_mtl.pipeline  # noqa: F401  (registers the factory)

    if "weighting" not in Language.get_factory_meta("mtl_textcat").default_config:
        raise SystemExit(
            f"--weighting {ARGS.weighting}: this spacy_mtl's mtl_textcat has no `weighting` "
            "setting; update spacy_mtl or use --weighting fixed."
        )


def build(run: str, model: str, groups: Dict[str, Dict[str, Any]], shipped: Dict[str, Any]) -> Any:
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config=harness.transformer_config(model))
    if run.startswith("ours"):
        nlp.add_pipe("mtl_textcat", config=mtl_config(groups, shipped))
        return nlp
    for name, cfg in groups.items():
        if run == "builtin_joint_multilabel":
            cfg = {**cfg, "kind": "multilabel"}
        harness.add_builtin(nlp, name, cfg)
        # Without labels, a built-in's initialize takes *every* cat of the examples as its
        # label (all the groups' labels), and the components overwrite each other's
        # doc.cats. Give each one its own group's labels, as `spacy init labels` would.
        labels = [f"{name}/{label}" for label in cfg["labels"]]
        nlp.config["initialize"]["components"][name] = {"labels": labels}
    return nlp


def train_and_score(
    run: str,
    seed: int,
    setting: Setting,
    data: Dict[str, Dict[str, List[harness.Item]]],
    shipped: Dict[str, Any],
) -> Dict[str, Any]:
    from spacy.training import Example
    from spacy.util import fix_random_seed
    from thinc.api import Adam, warmup_linear

    from spacy_mtl.training.batchers import DATASET_KEY

    model = ARGS.model or harness.default_model()
    train_items, scored = plan(run, setting, data)
    groups = {name: setting.groups[name] for name in scored}
    fix_random_seed(seed)
    nlp = build(run, model, groups, shipped)
    examples = []
    for it in train_items:
        example = Example.from_dict(nlp.make_doc(it.text), {"cats": it.cats})
        # The batcher's data set of a doc: its corpus (as spacy-mtl.Corpus.v1 records it).
        example.reference.user_data[DATASET_KEY] = it.source
        example.predicted.user_data[DATASET_KEY] = it.source
        examples.append(example)
    updates = ARGS.updates * (len(scored) if run == "ours_joint_equal_compute" else 1)
    row: Dict[str, Any] = {
        "run": run,
        "seed": seed,
        "groups": scored,
        "n_train": len(examples),
        "updates": updates,
        "batch_size": ARGS.batch_size,
    }
    started = time.perf_counter()
    try:
        nlp.initialize(lambda: examples)
    except ValueError as err:
        # builtin_joint of (a): spaCy's textcat refuses docs with two positive cats (E895).
        row["error"] = " ".join(str(err).split()).split(" Example of")[0][:300]
        return row
    schedule = warmup_linear(ARGS.learn_rate, ARGS.warmup, updates)
    optimizer = Adam(
        learn_rate=schedule, L2=0.01, L2_is_weight_decay=True, grad_clip=1.0, use_averages=False
    )
    batches = harness.endless_batches(examples, seed, shipped, size=ARGS.batch_size)
    losses: Dict[str, float] = {}
    rates: List[float] = []
    seen: collections.Counter = collections.Counter()
    train_started, train_cpu = time.perf_counter(), time.process_time()
    for _ in range(updates):
        batch = next(batches)
        seen.update(eg.reference.user_data[DATASET_KEY] for eg in batch)
        losses = {}
        rates.append(float(optimizer.learn_rate))
        nlp.update(batch, sgd=optimizer, drop=ARGS.dropout, losses=losses)
        # Advance the learning-rate schedule, as spaCy's training loop does: without it
        # warmup_linear stays at step 0, a learning rate of 0.
        optimizer.step_schedules()
    row["train_seconds"] = round(time.perf_counter() - started, 1)
    row["seconds_per_update"] = round((time.perf_counter() - train_started) / updates, 3)
    # CPU seconds (all threads) per update: steadier than wall time on a shared machine.
    row["cpu_seconds_per_update"] = round((time.process_time() - train_cpu) / updates, 3)
    row["docs_per_dataset"] = dict(sorted(seen.items()))
    row["final_losses"] = {k: round(float(v), 4) for k, v in losses.items()}
    row["mean_learn_rate"] = sum(rates) / max(1, len(rates))
    if run.startswith("ours") and ARGS.weighting != "fixed":
        weights = getattr(nlp.get_pipe("mtl_textcat"), "group_loss_weights", None)
        row["group_loss_weights"] = weights
    row["scores"] = score(nlp, setting, data, scored, groups)
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def score(
    nlp: Any,
    setting: Setting,
    data: Dict[str, Dict[str, List[harness.Item]]],
    scored: List[str],
    groups: Dict[str, Dict[str, Any]],
) -> Dict[str, Any]:
    """Each group on the test docs of its corpus, with that group's gold only."""
    from spacy.training import Example

    from spacy_mtl.schema import GroupSchema
    from spacy_mtl.scorer import gold_and_scores, score_arrays
    from spacy_mtl.trf.batching import pipe_by_length

    corpora = list(dict.fromkeys(setting.corpus_of(group) for group in scored))
    tests = [it for corpus in corpora for it in data["test"][corpus]]
    predicted = list(pipe_by_length(nlp, [it.text for it in tests], batch_size=64))
    scores: Dict[str, Any] = {}
    for group in scored:
        source = setting.corpus_of(group)
        chosen = []
        for doc, it in zip(predicted, tests):
            if it.source == source:
                reference = nlp.make_doc(it.text)
                reference.cats = {k: v for k, v in it.cats.items() if k.startswith(f"{group}/")}
                chosen.append(Example(doc, reference))
        one = GroupSchema.from_config({group: groups[group]})
        truths, masks, values = gold_and_scores(chosen, one)
        metrics = score_arrays(one, truths, masks, values)
        scores[group] = {
            "macro_f": metrics[f"mtl_{group}_macro_f"],
            "acc": metrics.get(f"mtl_{group}_acc"),
            "macro_auc": metrics.get(f"mtl_{group}_macro_auc"),
            "n_test": len(chosen),
        }
        if setting.official:
            scores[group]["official"] = tweeteval.official_score(
                group,
                [int(i) for i in truths.argmax(axis=1)],
                [int(i) for i in values.argmax(axis=1)],
                len(groups[group]["labels"]),
            )
    return scores


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


def setting_info(setting: Setting) -> Dict[str, Any]:
    """What make_table needs to render the setting from the JSON alone."""
    info: Dict[str, Any] = {
        "name": setting.name,
        "title": setting.title,
        "groups": {
            name: {"kind": cfg["kind"], "labels": list(cfg["labels"])}
            for name, cfg in setting.groups.items()
        },
        "corpora": {name: list(groups) for name, groups in setting.corpora.items()},
        "runs": {run: run_note(run) for run in [*setting.runs, *setting.extra_runs]},
        "builtin_compared": setting.builtin_compared,
    }
    if setting.official:
        info["official_metric"] = dict(tweeteval.OFFICIAL_METRIC)
        info["reference"] = {
            "name": "RoBERTa-base",
            "scores": dict(tweeteval.ROBERTA_BASE),
            "source": tweeteval.REFERENCE_SOURCE,
        }
    return info


def main() -> None:
    model = ARGS.model or harness.default_model()
    device = harness.use_device(ARGS.gpu_id)
    check_weighting()
    setting = make_setting(ARGS.setting, harness.data_dir())
    seeds = [int(s) for s in ARGS.seeds.split(",") if s.strip()]
    runs = list(setting.runs) if ARGS.runs == "all" else [r.strip() for r in ARGS.runs.split(",")]
    data = load_data(setting)
    for run in runs:
        plan(run, setting, data)  # an unknown run name fails now, not hours later
    shipped = shipped_training()
    started = time.time()
    result: Dict[str, Any] = {
        **harness.result_header("quality", ARGS, model, device),
        "setting": setting_info(setting),
        "budget": {
            "setting": setting.name,
            "train_per_set": ARGS.train_per_set,
            "test_per_set": ARGS.test_per_set,
            "updates": ARGS.updates,
            "batch_size": ARGS.batch_size,
            "learn_rate": ARGS.learn_rate,
            "warmup": ARGS.warmup,
            "dropout": ARGS.dropout,
            "optimizer": "thinc Adam, L2 0.01 as weight decay, grad_clip 1.0, no averages",
            "threshold": 0.5,
            "head_lr_scale": shipped["lr_scale"],
            "builtin_head_lr_scale": 1.0,
            "batcher": (
                f"{shipped['batcher']} (alpha {shipped['alpha']:g}, sort_by_length "
                f"{str(shipped['sort_by_length']).lower()}, buffer {shipped['buffer']}, "
                "seeded by the run's seed; data set = corpus)"
            ),
            "weighting": ARGS.weighting,
            "group_loss": shipped["group_loss"],
            "from_config": str(SHIPPED_CONFIG.relative_to(harness.ROOT)),
        },
        "data": {
            split: {corpus: len(items) for corpus, items in by_corpus.items()}
            for split, by_corpus in data.items()
        },
        "seeds": seeds,
        "rows": [],
    }
    out = ARGS.out or harness.RESULTS_DIR / setting.out_name
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
            row = train_and_score(run, seed, setting, data, shipped)
            row["load"] = harness.load_avg()
            result["rows"].append(row)
            if "error" in row:
                msg.warn(f"  {run}: {row['error']}")
            else:
                for group, s in row["scores"].items():
                    official = f", official {s['official']:.3f}" if "official" in s else ""
                    print(
                        f"  {group:>10}: macro F1 {s['macro_f']:.3f}{official}  "
                        f"({row['seconds']} s, {row['seconds_per_update']} s/update)"
                    )
            # Written after every run: a long run that stops still leaves its results.
            result["summary"] = summarize(result["rows"])
            result["wall_seconds"] = round(time.time() - started, 1)
            harness.write_json(out, result)
    result["load_end"] = harness.load_avg()
    harness.write_json(out, result)
    msg.good(f"Wrote {out} ({result['wall_seconds']} s)")


if __name__ == "__main__":
    main()
