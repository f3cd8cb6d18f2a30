"""Draw a seeded random sample of each data set of a converted corpus split.

    python scripts/sample_corpus.py corpus/full/train corpus/train --max-docs 6000 \
        --config configs/cpu.cfg --seed 0

Every data set in INPUT_DIR (`<name>.spacy`, or shards `<name>-000.spacy`, ...) becomes
OUTPUT_DIR/<name>.spacy with at most --max-docs docs (0 keeps all), drawn at random, so
each data set is represented whatever its size. A random draw matters: `convert --limit`
and spaCy's corpus `limit` keep the *first* rows, and Davidson et al.'s file is sorted by
tweet text. Gold cats of groups that the config's `mtl_textcat` components do not define
(e.g. the `ekman` group of the GoEmotions spec) are dropped: the component rejects gold of
unknown groups. Fails if a configured group ends up with no annotated doc at all.
"""

import random
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Set

import typer
from spacy.tokens import Doc, DocBin
from spacy.util import load_config
from spacy.vocab import Vocab
from wasabi import msg

# convert writes `<name>.spacy`, or `<name>-000.spacy`, ... above its shard size.
_SHARD = re.compile(r"^(?P<name>.+?)(-\d{3,})?$")


def configured_groups(config_path: Path) -> Set[str]:
    """Names of the label groups of every `mtl_textcat` component in a training config.

    config_path (Path): A spaCy config file.
    RETURNS (Set[str]): The group names.
    """
    config = load_config(config_path, interpolate=False)
    groups: Set[str] = set()
    for block in config.get("components", {}).values():
        if block.get("factory") == "mtl_textcat":
            groups.update(block.get("groups", {}))
    if not groups:
        msg.fail(f"No mtl_textcat component with groups in {config_path}", exits=1)
    return groups


def data_sets(input_dir: Path) -> Dict[str, List[Path]]:
    """{data set name: [its .spacy files, sorted]} for the .spacy files in a folder.

    input_dir (Path): A folder written by `spacy-mtl convert`.
    RETURNS (Dict[str, List[Path]]): Shards grouped by data set, in name order.
    """
    found: Dict[str, List[Path]] = {}
    for path in sorted(input_dir.glob("*.spacy")):
        match = _SHARD.match(path.stem)
        name = match.group("name") if match else path.stem
        found.setdefault(name, []).append(path)
    return found


def sample_docs(docs: List[Doc], max_docs: int, seed: int) -> List[Doc]:
    """A seeded random sample of `max_docs` docs (all of them, shuffled, if 0 or more).

    docs (List[Doc]): The docs of one data set.
    max_docs (int): Most docs to keep; 0 keeps all.
    seed (int): Seed of the draw: the same inputs and seed give the same sample.
    RETURNS (List[Doc]): The sample, in random order.
    """
    rng = random.Random(seed)
    if max_docs <= 0 or max_docs >= len(docs):
        sample = list(docs)
        rng.shuffle(sample)
        return sample
    return rng.sample(docs, max_docs)


def hash_seed(seed: int, name: str) -> int:
    """A stable per-data-set seed (Python's hash() of a str changes between runs)."""
    value = seed
    for char in name:
        value = (value * 1_000_003 + ord(char)) % (2**61 - 1)
    return value


def main(
    input_dir: Path = typer.Argument(
        ..., help="Folder of converted .spacy files (one split).", exists=True, file_okay=False
    ),
    output_dir: Path = typer.Argument(..., help="Folder for the sampled <name>.spacy files."),
    max_docs: int = typer.Option(
        0, "--max-docs", "-n", help="Most docs per data set; 0 keeps all."
    ),
    config: Path = typer.Option(
        ...,
        "--config",
        "-c",
        help="Training config: keep only its mtl_textcat groups.",
        exists=True,
        dir_okay=False,
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random draw."),
) -> None:
    """Sample each data set of a converted split and keep only the configured groups."""
    keep = configured_groups(config)
    sets = data_sets(input_dir)
    if not sets:
        msg.fail(f"No .spacy files in {input_dir}", exits=1)
    output_dir.mkdir(parents=True, exist_ok=True)
    vocab = Vocab()
    annotated: Counter = Counter()
    rows = []
    for name, paths in sets.items():
        docs: List[Doc] = []
        attrs = None
        for path in paths:
            doc_bin = DocBin().from_disk(path)
            attrs = attrs or doc_bin.attrs
            docs.extend(doc_bin.get_docs(vocab))
        # The seed is mixed with the name so that two data sets of equal size do not get
        # the same row positions.
        sample = sample_docs(docs, max_docs, seed=hash_seed(seed, name))
        out = DocBin(attrs=attrs, store_user_data=False)
        dropped: Set[str] = set()
        counts: Counter = Counter()
        for doc in sample:
            cats = {}
            for key, value in doc.cats.items():
                group = key.split("/", 1)[0]
                if group in keep:
                    cats[key] = value
                else:
                    dropped.add(group)
            doc.cats = cats
            counts.update({key.split("/", 1)[0] for key in cats})
            out.add(doc)
        out.to_disk(output_dir / f"{name}.spacy")
        annotated.update(counts)
        groups = ", ".join(f"{g} {n}" for g, n in sorted(counts.items())) or "none"
        rows.append((name, len(docs), len(sample), groups, ", ".join(sorted(dropped)) or "-"))
    msg.table(
        rows,
        header=("data set", "docs in", "docs out", "annotated docs per group", "dropped groups"),
        divider=True,
    )
    missing = sorted(keep - set(annotated))
    if missing:
        msg.fail(
            f"No doc in {output_dir} is annotated for group(s) {missing} of {config}: "
            f"check the inputs in {input_dir} and the groups of the config.",
            exits=1,
        )
    msg.good(f"Wrote {len(sets)} data set(s) to {output_dir}")


if __name__ == "__main__":
    typer.run(main)
