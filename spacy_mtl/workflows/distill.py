"""Distillation workflow: run teachers over a corpus and write their logits with each doc.

`distill_corpus` (the `spacy-mtl distill-labels` command) writes a `.spacy` corpus whose
docs carry each teacher's logits in `doc._.mtl_teacher`; a student `mtl_textcat` with a
`distill` block trains on it with plain `spacy train` (see `spacy_mtl.distill`).

DOCS: docs/distillation.md
"""

from itertools import islice
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.util import minibatch

from ..batching import iter_by_length
from ..distill import TEACHER_ATTR


def teacher_logits(
    teachers: List[Language],
    docs: Iterable[Doc],
    *,
    component: str = "mtl_textcat",
    batch_size: int = 64,
    buffer_size: Optional[int] = None,
) -> Iterator[Doc]:
    """Run each teacher's component over the docs and store its logits in doc._.mtl_teacher.

    Several teachers (e.g. a sentiment model and a hate-speech model) each add their groups;
    a later teacher overrides an earlier one for a group both know. The docs' gold `cats` are
    kept as they are. Within each buffer of `buffer_size` docs (default 16 batches) the texts
    are run sorted by length, so batches pad little; docs are yielded in input order.
    """
    buffer_size = buffer_size or batch_size * 16
    for chunk in minibatch(docs, size=buffer_size):
        texts = [doc.text for doc in chunk]
        merged: List[Dict[str, float]] = [dict(doc._.get(TEACHER_ATTR) or {}) for doc in chunk]
        for nlp in teachers:
            pipe: Any = nlp.get_pipe(component)
            keys = pipe.schema.keys
            # The teacher's own tokenization and earlier components (its transformer).
            analysed = iter_by_length(nlp, texts, batch_size=batch_size, disable=[component])
            for batch in minibatch(analysed, size=batch_size):
                logits = pipe.model.ops.to_numpy(pipe.predict([doc for _, doc in batch]))
                for (index, _), values in zip(batch, logits.tolist()):
                    merged[index].update(zip(keys, values))
        for doc, row in zip(chunk, merged):
            doc._.set(TEACHER_ATTR, row)
            yield doc


def check_corpus(path: Path) -> None:
    """FileNotFoundError naming the path unless it is a file, or a folder of .spacy files."""
    if not path.exists():
        raise FileNotFoundError(f"Corpus not found: {path}")
    if path.is_dir() and not any(path.rglob("*.spacy")):
        raise FileNotFoundError(f"No .spacy files under {path}.")


def read_docs(path: Path, nlp: Language) -> Iterator[Doc]:
    """Docs from a .spacy file, a folder of them, or a text file (.txt: one text per line;
    .jsonl: one {"text": ...} object per line) of unlabelled texts."""
    if path.is_dir() or path.suffix == ".spacy":
        check_corpus(path)
        files = sorted(path.rglob("*.spacy")) if path.is_dir() else [path]
        for file in files:
            yield from DocBin().from_disk(file).get_docs(nlp.vocab)
        return
    with path.open(encoding="utf8") as lines:
        for line_no, line in enumerate(lines, start=1):
            if path.suffix == ".jsonl":
                if not line.strip():
                    continue
                try:
                    record = srsly.json_loads(line)
                    text = record["text"]
                except (ValueError, KeyError, TypeError) as err:
                    raise ValueError(
                        f"{path}:{line_no}: expected a JSON object with a 'text' field ({err})."
                    ) from None
            else:
                text = line.rstrip("\n")
            yield nlp.make_doc(text)


def distill_corpus(
    teachers: Sequence[Union[Path, str, Language]],
    corpus: Path,
    output: Path,
    *,
    component: str = "mtl_textcat",
    batch_size: int = 64,
    limit: int = 0,
) -> int:
    """Write `corpus` with each teacher's logits in doc._.mtl_teacher to a .spacy file.

    teachers (Sequence[Union[Path, str, Language]]): Trained pipelines (folders, package
        names or loaded pipelines).
    corpus (Path): Labelled or unlabelled docs (see read_docs); gold cats are kept.
    output (Path): The .spacy file to write (its folder is created).
    RETURNS (int): The number of docs written.
    RAISES ModelLoadError: A teacher cannot be loaded (names its folder and file).
    """
    from tqdm import tqdm

    from ..loading import find_component, load_pipeline

    check_corpus(corpus)
    loaded = [load_pipeline(teacher) for teacher in teachers]
    for nlp in loaded:
        find_component(nlp, component)
    docs: Iterable[Doc] = read_docs(corpus, loaded[0])
    if limit:
        docs = islice(docs, limit)
    out = DocBin(store_user_data=True)
    for doc in tqdm(
        teacher_logits(loaded, docs, component=component, batch_size=batch_size),
        desc="teacher logits",
        unit="doc",
        disable=None,
    ):
        out.add(doc)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    out.to_disk(tmp)
    tmp.replace(output)
    return len(out)
