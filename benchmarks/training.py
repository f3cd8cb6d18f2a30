"""Training speed and memory: one `nlp.update` of transformer + mtl_textcat against one step
of a hand-written PyTorch loop (same model, same batch, AdamW, CE + BCE heads).

    python benchmarks/training.py                   # the full run (~2 minutes on 2 cores)
    python benchmarks/training.py --updates 2 --model /tmp/tiny_bert    # smoke

Batching: spaCy's `batch_by_sequence` on shuffled docs against `spacy-mtl.mixed_batcher.v1`
(length-bucketed): padded ÷ real wordpieces over a whole epoch of --batching-docs docs, and
seconds per `nlp.update` on batches drawn from each, in turns.

Both sides see the same batch of real texts with partial labels (GoEmotions docs carry
emotion + sentiment, Davidson docs carry offense) and take turns, one update each, so they
share the machine's load. Peak memory is measured per side in its own subprocess.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="HF model folder (default: MiniLM)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--updates", type=int, default=16, help="timed updates per side")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--learn-rate", type=float, default=5e-5)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--rss-updates", type=int, default=3)
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile ours' updates")
    parser.add_argument(
        "--batching-docs",
        type=int,
        default=2000,
        help="training docs (half per corpus) for the batcher comparison; 0 skips it",
    )
    parser.add_argument("--batching-updates", type=int, default=8, help="timed updates each")
    parser.add_argument("--gpu-id", type=int, default=-1, help="-1: CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


ARGS = parse_args()
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

harness.set_threads(ARGS.threads)

from wasabi import msg  # noqa: E402


def batch_items() -> List[harness.Item]:
    """Half GoEmotions train (emotion + sentiment), half Davidson (offense)."""
    root = harness.data_dir()
    n = ARGS.batch_size
    goemotions = harness.sample(harness.read_goemotions(root, "train"), n - n // 2, ARGS.seed)
    davidson = harness.sample(harness.davidson_split(root)[0], n // 2, ARGS.seed)
    return goemotions + davidson


def make_ours(model: str, items: List[harness.Item], device: str) -> Callable[[], float]:
    """One call = one nlp.update on the batch, thinc Adam with decoupled weight decay."""
    import spacy
    from spacy.training import Example
    from spacy.util import fix_random_seed
    from thinc.api import Adam

    fix_random_seed(ARGS.seed)
    groups = harness.benchmark_groups(harness.data_dir())
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config=harness.transformer_config(model))
    nlp.add_pipe("mtl_textcat", config={"groups": groups})
    examples = [Example.from_dict(nlp.make_doc(it.text), {"cats": it.cats}) for it in items]
    nlp.initialize(lambda: examples)
    optimizer = Adam(
        learn_rate=ARGS.learn_rate,
        L2=0.01,
        L2_is_weight_decay=True,
        grad_clip=1.0,
        use_averages=False,
    )

    def update() -> float:
        losses: Dict[str, float] = {}
        nlp.update(examples, sgd=optimizer, drop=ARGS.dropout, losses=losses)
        return losses["mtl_textcat"]

    return update


def make_torch(
    model: str, items: List[harness.Item], device: str, *, fused: bool = False
) -> Callable[[], float]:
    """One call = tokenize, forward, masked CE + BCE, backward, clip, AdamW step.

    fused: AdamW(fused=True), one kernel for all parameters; the default (what a
    hand-written loop gets) is a per-parameter loop on CPU (`foreach` is CUDA's default).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(ARGS.seed)
    root = harness.data_dir()
    groups = harness.benchmark_groups(root)
    tokenizer = AutoTokenizer.from_pretrained(model, use_fast=True)
    encoder = AutoModel.from_pretrained(model).to(device)
    width = encoder.config.hidden_size
    heads = torch.nn.ModuleDict(
        {name: torch.nn.Linear(width, len(cfg["labels"])) for name, cfg in groups.items()}
    ).to(device)
    dropout = torch.nn.Dropout(ARGS.dropout)
    params = list(encoder.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(
        params, lr=ARGS.learn_rate, weight_decay=0.01, **({"fused": True} if fused else {})
    )
    texts = [it.text for it in items]
    # Gold as tensors, built once: targets and masks per group (missing = masked out).
    gold: Dict[str, Any] = {}
    for name, cfg in groups.items():
        keys = [f"{name}/{label}" for label in cfg["labels"]]
        if cfg["kind"] == "multiclass":
            target = [
                next((j for j, k in enumerate(keys) if it.cats.get(k) == 1.0), -100) for it in items
            ]
            gold[name] = torch.tensor(target, device=device)
        else:
            y = [[it.cats.get(k, 0.0) for k in keys] for it in items]
            m = [[float(k in it.cats) for k in keys] for it in items]
            gold[name] = (torch.tensor(y, device=device), torch.tensor(m, device=device))
    encoder.train()

    def update() -> float:
        batch = tokenizer(
            texts, padding=True, truncation=True, max_length=512, return_tensors="pt"
        ).to(device)
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = dropout((hidden * mask).sum(dim=1) / mask.sum(dim=1))
        loss = hidden.new_zeros(())
        for name, cfg in groups.items():
            logits = heads[name](pooled)
            if cfg["kind"] == "multiclass":
                if (gold[name] >= 0).any():
                    loss = loss + torch.nn.functional.cross_entropy(
                        logits, gold[name], ignore_index=-100
                    )
            else:
                y, m = gold[name]
                if m.sum() > 0:
                    each = torch.nn.functional.binary_cross_entropy_with_logits(
                        logits, y, reduction="none"
                    )
                    loss = loss + (each * m).sum() / m.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        return float(loss.detach())

    return update


def make_torch_fused(model: str, items: List[harness.Item], device: str) -> Callable[[], float]:
    return make_torch(model, items, device, fused=True)


def compare_batchers(model: str) -> Dict[str, Any]:
    """Padding and seconds per update of spaCy's sequence batcher vs the mixed batcher."""
    import random

    import spacy
    from spacy.training import Example
    from spacy.util import minibatch
    from thinc.api import Adam
    from transformers import AutoTokenizer

    from spacy_mtl.training.batchers import MixedBatcher

    root = harness.data_dir()
    n = ARGS.batching_docs
    items = harness.sample(harness.read_goemotions(root, "train"), n - n // 2, ARGS.seed)
    items += harness.sample(harness.davidson_split(root)[0], n // 2, ARGS.seed)
    tokenizer = AutoTokenizer.from_pretrained(model, use_fast=True)
    lengths = {
        it.text: len(ids)
        for it, ids in zip(
            items, tokenizer([it.text for it in items], truncation=True)["input_ids"]
        )
    }
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config=harness.transformer_config(model))
    nlp.add_pipe("mtl_textcat", config={"groups": harness.benchmark_groups(root)})
    examples = [Example.from_dict(nlp.make_doc(it.text), {"cats": it.cats}) for it in items]
    nlp.initialize(lambda: examples)
    optimizer = Adam(learn_rate=ARGS.learn_rate, L2=0.01, L2_is_weight_decay=True, grad_clip=1.0)
    shuffled = list(examples)
    random.Random(ARGS.seed).shuffle(shuffled)
    mixed = MixedBatcher(size=ARGS.batch_size, seed=ARGS.seed, verbose=False)
    batchings = {
        "spacy_batch_by_sequence": list(minibatch(shuffled, ARGS.batch_size)),
        "mixed_batcher_sorted": list(mixed(examples)),
    }
    out: Dict[str, Any] = {"docs": len(examples), "batch_size": ARGS.batch_size}
    times: Dict[str, List[float]] = {name: [] for name in batchings}
    for name, batches in batchings.items():
        real = sum(lengths[eg.reference.text] for b in batches for eg in b)
        padded = sum(max(lengths[eg.reference.text] for eg in b) * len(b) for b in batches)
        out[name] = {"batches": len(batches), "padded_over_real": round(padded / real, 3)}
    # Updates in turns on batches that are typical of each batcher (a random sample).
    picks = {
        name: random.Random(ARGS.seed).sample(batches, min(ARGS.batching_updates, len(batches)))
        for name, batches in batchings.items()
    }
    for i in range(min(len(p) for p in picks.values())):
        for name, batches in picks.items():
            start = time.perf_counter()
            nlp.update(batches[i], sgd=optimizer, drop=ARGS.dropout)
            times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        out[name]["median_s_per_update"] = round(harness.median(values), 4)
        print(
            f"  {name:>24}: padded/real wordpieces {out[name]['padded_over_real']:.2f}, "
            f"{out[name]['median_s_per_update']:.3f} s/update (median of {len(values)})"
        )
    out["speedup_s_per_update"] = harness.ratio(
        out["spacy_batch_by_sequence"]["median_s_per_update"],
        out["mixed_batcher_sorted"]["median_s_per_update"],
    )
    return out


SIDES = {"ours": make_ours, "torch": make_torch, "torch_fused": make_torch_fused}


def worker(name: str, model: str, device: str) -> Dict[str, Any]:
    items = batch_items()
    after_import = harness.peak_rss_mb()
    update = SIDES[name](model, items, device)
    after_build = harness.peak_rss_mb()
    start = time.perf_counter()
    for _ in range(ARGS.rss_updates):
        update()
    return {
        "side": name,
        "updates": ARGS.rss_updates,
        "seconds": round(time.perf_counter() - start, 3),
        "rss_after_import_mb": round(after_import, 1),
        "rss_after_build_mb": round(after_build, 1),
        "peak_rss_mb": round(harness.peak_rss_mb(), 1),
    }


def spawn_worker(name: str, model: str) -> Dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--model", model]
    for flag in ("threads", "batch_size", "rss_updates", "gpu_id", "seed", "dropout"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(ARGS, flag))]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        raise RuntimeError(f"memory worker {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    model = ARGS.model or harness.default_model()
    device = harness.use_device(ARGS.gpu_id)
    if ARGS.worker:
        print(json.dumps(worker(ARGS.worker, model, device)))
        return
    started = time.time()
    items = batch_items()
    result: Dict[str, Any] = {
        **harness.result_header("training", ARGS, model, device),
        "batch_size": len(items),
        "learn_rate": ARGS.learn_rate,
        "dropout": ARGS.dropout,
        "seed": ARGS.seed,
    }
    updates = {name: make(model, items, device) for name, make in SIDES.items()}
    for _ in range(ARGS.warmup):
        for update in updates.values():
            update()
    seconds: Dict[str, List[float]] = {name: [] for name in updates}
    losses: Dict[str, List[float]] = {name: [] for name in updates}
    msg.info(f"{ARGS.updates} updates per side, batch {len(items)}, in turns")
    for _ in range(ARGS.updates):
        for name, update in updates.items():
            start = time.perf_counter()
            losses[name].append(update())
            seconds[name].append(time.perf_counter() - start)
    pair_ratios = [a / b for a, b in zip(seconds["ours"], seconds["torch"])]
    fused_pairs = [a / b for a, b in zip(seconds["ours"], seconds["torch_fused"])]
    result["sides"] = {
        name: {
            "median_s_per_update": round(harness.median(values), 4),
            "mean_s_per_update": round(sum(values) / len(values), 4),
            "first_loss": round(losses[name][0], 4),
            "last_loss": round(losses[name][-1], 4),
        }
        for name, values in seconds.items()
    }
    result["ratio_ours_torch"] = harness.ratio(
        result["sides"]["ours"]["median_s_per_update"],
        result["sides"]["torch"]["median_s_per_update"],
    )
    result["ratio_ours_torch_paired_median"] = round(harness.median(pair_ratios), 3)
    result["ratio_ours_torch_fused"] = harness.ratio(
        result["sides"]["ours"]["median_s_per_update"],
        result["sides"]["torch_fused"]["median_s_per_update"],
    )
    result["ratio_ours_torch_fused_paired_median"] = round(harness.median(fused_pairs), 3)
    result["load_after_timing"] = harness.load_avg()
    for name, side in result["sides"].items():
        print(f"  {name:>6}: {side['median_s_per_update']:.3f} s/update (median)")
    print(
        f"  ours/torch: {result['ratio_ours_torch']} (medians), "
        f"{result['ratio_ours_torch_paired_median']} (median of paired ratios); "
        f"ours/torch_fused: {result['ratio_ours_torch_fused']}, "
        f"{result['ratio_ours_torch_fused_paired_median']}"
    )
    if ARGS.profile:
        update = updates["ours"]
        n = max(2, ARGS.updates // 4)
        result["profile_ours"] = harness.profile(lambda: [update() for _ in range(n)])
        result["profile_ours"]["updates"] = n
    del updates
    if ARGS.batching_docs:
        msg.info(f"Batchers: {ARGS.batching_docs} docs, batch {ARGS.batch_size}")
        result["batching"] = compare_batchers(model)
    if not ARGS.no_rss:
        msg.info("Peak memory, one subprocess per side")
        result["memory"] = {name: spawn_worker(name, model) for name in SIDES}
        for name, row in result["memory"].items():
            print(f"  {name:>6}: peak RSS {row['peak_rss_mb']:.0f} MB")
    harness.finish(result, started, ARGS.out, "training")


if __name__ == "__main__":
    main()
