"""Training batches that mix several partially labelled data sets and pad little.

Two things decide how much a joint model learns per CPU minute:

- **Mixing.** With several corpora, each labelled for different groups, spaCy's batcher
  cuts batches from the shuffled concatenation, so each data set's share of the updates is
  its share of the docs. `alpha` sets that share to size^alpha / Σ size^alpha ("temperature
  sampling" in multi-task NLP: alpha = 1 proportional, alpha = 0 uniform; alpha < 1 gives a
  small data set more updates by repeating its docs).
- **Padding.** A transformer pads a batch to its longest text. Unsorted batches of tweets and
  Reddit comments pad several times the real wordpieces; batches of similar length pad
  little. Docs are sorted by length inside buffers of `buffer` batches, and the batches of a
  buffer are shuffled, so the order of updates stays random.

A doc's data set is its file (`spacy-mtl.Corpus.v1` records it in
`doc.user_data["mtl_dataset"]`), or else the set of groups it is annotated for. With
`strata = "groups"` the batcher mixes by the set of groups each doc is annotated for, in
whatever file it is: one file of a label hierarchy (a child group annotated only where its
parent condition holds) then gives its deep levels size^alpha shares too.

DOCS: docs/training.md, "Training on several data sets"; docs/benchmarks.md.
"""

import random
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from spacy.language import Language
from spacy.training import Corpus, Example
from spacy.training.corpus import walk_corpus
from spacy.util import registry
from wasabi import msg

from ..gold import DATASET_KEY, STRATUM_KEY, dataset_of, groups_of

# DATASET_KEY and dataset_of live in the core (the component counts docs per data set);
# importable from here too, where the reader that records them is.
__all__ = [
    "DATASET_KEY",
    "STRATA",
    "MixedBatcher",
    "configure_mixed_batcher",
    "create_dataset_corpus",
    "dataset_of",
]


# What a stratum of the mix is: a doc's data set (its file) or the groups it is annotated for.
STRATA = ("file", "groups")


def char_length(example: Example) -> int:
    """Length of an example's text in characters: a free proxy for its wordpieces."""
    return len(example.reference.text)


@registry.readers("spacy-mtl.Corpus.v1")
def create_dataset_corpus(
    path: Optional[Union[str, Path]],
    *,
    gold_preproc: bool = False,
    max_length: int = 0,
    limit: int = 0,
    augmenter: Optional[Callable] = None,
) -> Callable[[Language], Iterable[Example]]:
    """`spacy.Corpus.v1` that records each doc's file as its data set.

    path: A .spacy file or a folder of them; a doc's data set is its file's path relative
        to `path`, without the suffix ('goemotions' for corpus/train/goemotions.spacy).
    gold_preproc, max_length, augmenter: as for `spacy.Corpus.v1`.
    limit (int): Most docs per file (0: all).
    """
    if path is None:
        raise ValueError("spacy-mtl.Corpus.v1 needs a path (set paths.train / paths.dev).")
    root = Path(path)
    files = walk_corpus(root, ".spacy")
    corpora = []
    for file in files:
        name = file.stem if root.is_file() else file.relative_to(root).with_suffix("").as_posix()
        corpus = Corpus(
            file,
            gold_preproc=gold_preproc,
            max_length=max_length,
            limit=limit,
            augmenter=augmenter,
        )
        corpora.append((name, corpus))

    def read(nlp: Language) -> Iterator[Example]:
        for name, corpus in corpora:
            for example in corpus(nlp):
                example.reference.user_data[DATASET_KEY] = name
                example.predicted.user_data[DATASET_KEY] = name
                yield example

    return read


class MixedBatcher:
    """Batches of `size` docs drawn from the data sets in proportion to size^alpha, of
    similar length within buffers of `buffer` batches. Called once per epoch by spaCy's
    training loop with that epoch's examples; seeded by (seed, epoch)."""

    def __init__(
        self,
        *,
        size: int,
        alpha: float = 1.0,
        sort_by_length: bool = True,
        buffer: int = 16,
        seed: int = 0,
        epoch_docs: int = 0,
        get_length: Optional[Callable[[Example], int]] = None,
        get_dataset: Optional[Callable[[Example], str]] = None,
        strata: str = "file",
        verbose: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError(f"mixed_batcher: size must be at least 1, got {size}.")
        if alpha < 0:
            raise ValueError(f"mixed_batcher: alpha must be >= 0, got {alpha}.")
        if buffer < 1:
            raise ValueError(f"mixed_batcher: buffer must be at least 1 batch, got {buffer}.")
        if epoch_docs < 0:
            raise ValueError(f"mixed_batcher: epoch_docs must be >= 0, got {epoch_docs}.")
        if strata not in STRATA:
            raise ValueError(f"mixed_batcher: strata must be one of {STRATA}, got {strata!r}.")
        self.size = size
        self.alpha = float(alpha)
        self.sort_by_length = sort_by_length
        self.buffer = buffer
        self.seed = seed
        self.epoch_docs = epoch_docs
        self.get_length = get_length or char_length
        self.strata = strata
        if get_dataset is None:
            get_dataset = groups_of if strata == "groups" else dataset_of
        self.get_dataset = get_dataset
        self.verbose = verbose
        self.epoch = 0
        self._printed_plan: Optional[Dict[str, int]] = None

    def proportions(self, sizes: Dict[str, int]) -> Dict[str, float]:
        """Each data set's target share of the docs: size^alpha / Σ size^alpha."""
        powered = {name: float(n) ** self.alpha for name, n in sizes.items() if n}
        total = sum(powered.values())
        return {name: value / total for name, value in powered.items()}

    def plan(self, sizes: Dict[str, int]) -> Dict[str, int]:
        """Docs per data set in one epoch (largest remainder: the counts add up exactly)."""
        n_docs = self.epoch_docs or sum(sizes.values())
        shares = self.proportions(sizes)
        exact = {name: share * n_docs for name, share in shares.items()}
        counts = {name: int(value) for name, value in exact.items()}
        left = n_docs - sum(counts.values())
        for name in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[:left]:
            counts[name] += 1
        return counts

    def __call__(self, items: Iterable[Example]) -> Iterator[List[Example]]:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        epoch = self.epoch
        self.epoch += 1
        by_set: Dict[str, List[Example]] = {}
        for example in items:
            name = self.get_dataset(example)
            if self.strata == "groups":
                # The component counts docs per stratum for the training table.
                example.reference.user_data[STRATUM_KEY] = name
            by_set.setdefault(name, []).append(example)
        if not by_set:
            return
        names = sorted(by_set)
        counts = self.plan({name: len(by_set[name]) for name in names})
        # Once, and again only if the plan changes: spaCy calls the batcher every epoch, and
        # a line per epoch drowns the training table on small corpora.
        if self.verbose and counts != self._printed_plan:
            self._printed_plan = counts
            shares = ", ".join(
                f"{name} {counts[name]} of {len(by_set[name])}" for name in names if name in counts
            )
            by = "" if self.strata == "file" else f", strata by {self.strata}"
            msg.info(f"mixed_batcher epoch {epoch} (alpha {self.alpha:g}{by}): docs {shares}")
        stream = self._draw(rng, by_set, counts)
        if not self.sort_by_length:
            yield from _cut(stream, self.size)
            return
        window = self.size * self.buffer
        for start in range(0, len(stream), window):
            chunk = sorted(stream[start : start + window], key=self.get_length)
            batches = _cut(chunk, self.size)
            rng.shuffle(batches)
            yield from batches

    def _draw(
        self, rng: random.Random, by_set: Dict[str, List[Example]], counts: Dict[str, int]
    ) -> List[Example]:
        """The epoch's docs in random order: counts[name] from each set, each set's docs in a
        fresh random order, passing over a set again only when it is used up."""
        slots = [name for name in sorted(counts) for _ in range(counts[name])]
        rng.shuffle(slots)
        queues: Dict[str, List[Example]] = {name: [] for name in counts}
        stream = []
        for name in slots:
            queue = queues[name]
            if not queue:
                queue.extend(by_set[name])
                rng.shuffle(queue)
            stream.append(queue.pop())
        return stream


def _cut(items: Sequence[Any], size: int) -> List[List[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@registry.batchers("spacy-mtl.mixed_batcher.v1")
def configure_mixed_batcher(
    size: int,
    alpha: float = 1.0,
    sort_by_length: bool = True,
    buffer: int = 16,
    seed: int = 0,
    epoch_docs: int = 0,
    get_length: Optional[Callable[[Example], int]] = None,
    strata: str = "file",
) -> MixedBatcher:
    """Create the mixing, length-bucketing training batcher.

    size (int): Docs per batch.
    alpha (float): Data set i gets a share size_i^alpha / Σ size^alpha of each epoch's docs
        (1: proportional, every doc exactly once per epoch; 0: uniform).
    sort_by_length (bool): Sort docs by length inside buffers of `buffer` batches, then
        shuffle those batches (less padding, same randomness between buffers).
    buffer (int): Batches per sorting buffer.
    seed (int): The draw of epoch e is seeded by (seed, e): reproducible.
    epoch_docs (int): Docs per epoch (0: the number of training docs).
    get_length (Optional[Callable[[Example], int]]): Length key (default: characters).
    strata (str): What is mixed: "file" (each doc's data set) or "groups" (the set of
        groups each doc is annotated for, across files: for label hierarchies).
    RETURNS (MixedBatcher): Called by spaCy once per epoch with that epoch's examples.
    """
    return MixedBatcher(
        size=size,
        alpha=alpha,
        sort_by_length=sort_by_length,
        buffer=buffer,
        seed=seed,
        epoch_docs=epoch_docs,
        get_length=get_length,
        strata=strata,
    )
