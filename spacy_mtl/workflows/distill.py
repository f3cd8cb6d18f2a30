"""Distillation workflow: run teachers over a corpus and write their logits with each doc.

`distill_corpus` (the `spacy-mtl distill-labels` command) writes a `.spacy` corpus whose
docs carry each teacher's logits in `doc._.mtl_teacher`; a student `mtl_textcat` with a
`distill` block trains on it with plain `spacy train` (see `spacy_mtl.teacher`).

DOCS: docs/distillation.md
"""

import json
import warnings
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.util import minibatch

from ..data.io import (
    TextLines,
    format_from_name,
    may_have_surrogates,
    replace_surrogates,
    same_file,
)
from ..errors import MTLWarning
from ..teacher import TEACHER_ATTR
from ..trf.batching import iter_by_length


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


# Corpus files by format (spacy_mtl.data.io's names): .spacy, or unlabelled texts.
TEXT_FORMATS = {"lines": ".txt", "jsonl": ".jsonl"}


def check_corpus(path: Path) -> None:
    """FileNotFoundError naming the path unless it is a file, or a folder of .spacy files;
    ValueError for a file that is not .spacy, .txt or .jsonl (optionally .gz/.bz2/.xz)."""
    if not path.exists():
        raise FileNotFoundError(f"Corpus not found: {path}")
    if path.is_dir():
        if not any(path.rglob("*.spacy")):
            raise FileNotFoundError(f"No .spacy files under {path}.")
    elif path.suffix != ".spacy" and format_from_name(path) not in TEXT_FORMATS:
        raise ValueError(
            f"{path}: the corpus must be a .spacy file (or a folder of them), a .txt file "
            '(one text per line) or a .jsonl file (one {"text": ...} per line).'
        )


def check_output(corpus: Path, output: Path) -> None:
    """ValueError when `output` is the corpus itself (the same file once links and `..`
    are resolved, or a hard link to it) or a file inside the corpus folder: writing it
    would destroy the input, or add the output to the corpus the next run reads."""
    if same_file(output, corpus):
        raise ValueError(
            f"The output {output} is the input corpus {corpus}: writing it would replace "
            "the corpus. Give another OUTPUT."
        )
    if corpus.is_dir():
        try:
            inside = output.resolve().is_relative_to(corpus.resolve())
        except (OSError, RuntimeError):  # a symlink loop
            inside = False
        if inside:
            raise ValueError(
                f"The output {output} is inside the input corpus folder {corpus}: it would "
                "become part of the corpus. Give an OUTPUT outside that folder."
            )


def read_docs(
    path: Path, nlp: Language, warn: Optional[Callable[[str], None]] = None
) -> Iterator[Doc]:
    """Docs from a .spacy file, a folder of them, or a text file (.txt: one text per line;
    .jsonl: one {"text": ...} object per line; both optionally compressed) of unlabelled
    texts.

    Characters that are not valid UTF-8 (bad bytes, lone surrogates such as "\\udfff" in
    JSON) are replaced with U+FFFD and reported to `warn` with their file and line (as
    `predict` does); anything else wrong names the file, line and field (ValueError).
    """
    check_corpus(path)
    if path.is_dir() or path.suffix == ".spacy":
        files = sorted(path.rglob("*.spacy")) if path.is_dir() else [path]
        for file in files:
            try:
                docs = DocBin().from_disk(file)
            except Exception as err:  # DocBin raises several types for a bad file
                reason = " ".join(str(err).split())[:200]
                raise ValueError(
                    f"{file}: not a readable .spacy file ({type(err).__name__}: {reason})"
                ) from None
            yield from docs.get_docs(nlp.vocab)
        return
    jsonl = format_from_name(path) == "jsonl"
    lines = TextLines(path, errors="replace")
    try:
        for line in lines:
            where = f"{path}:{lines.line_no}"
            if jsonl:
                if not line.strip():
                    continue
                text = _jsonl_text(line, where)
                if may_have_surrogates(line) and replace_surrogates(text) != text:
                    text = replace_surrogates(text)
                    lines.replaced.append(lines.line_no)
            else:
                text = line.rstrip("\r\n")
            for bad in lines.replaced:
                message = (
                    f"{path}:{bad}: characters that are not valid UTF-8 (bad bytes, lone "
                    "surrogates) were replaced with U+FFFD"
                )
                if warn is not None:
                    warn(message)
                else:
                    warnings.warn(message, MTLWarning, stacklevel=2)
            lines.replaced.clear()
            yield nlp.make_doc(text)
    finally:
        lines.close()


def _jsonl_text(line: str, where: str) -> str:
    try:
        record = json.loads(line)
    except ValueError as err:
        raise ValueError(f"{where}: invalid JSON ({err}).") from None
    if not isinstance(record, dict):
        raise ValueError(
            f"{where}: expected a JSON object with a 'text' field, got {type(record).__name__}."
        )
    if "text" not in record:
        raise ValueError(f"{where}: no 'text' field (keys: {sorted(record)}).")
    text = record["text"]
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return str(text)
    if not isinstance(text, str):
        raise ValueError(
            f"{where}: field 'text' must be a string, got {type(text).__name__} {text!r}."
        )
    return text


def distill_corpus(
    teachers: Sequence[Union[Path, str, Language]],
    corpus: Path,
    output: Path,
    *,
    component: str = "mtl_textcat",
    batch_size: int = 64,
    limit: int = 0,
    warn: Optional[Callable[[str], None]] = None,
) -> int:
    """Write `corpus` with each teacher's logits in doc._.mtl_teacher to a .spacy file.

    teachers (Sequence[Union[Path, str, Language]]): Trained pipelines (folders, package
        names or loaded pipelines).
    corpus (Path): Labelled or unlabelled docs (see read_docs); gold cats are kept.
    output (Path): The .spacy file to write (its folder is created).
    warn (Optional[Callable[[str], None]]): Told of replaced characters ('file:line: ...');
        default: an MTLWarning.
    RETURNS (int): The number of docs written.
    RAISES ModelLoadError: A teacher cannot be loaded (names its folder and file).
    RAISES ValueError: The corpus cannot be read (names the file, line and field).
    """
    from tqdm import tqdm

    from .loading import find_component, load_pipeline

    check_corpus(corpus)
    check_output(corpus, output)
    loaded = [load_pipeline(teacher) for teacher in teachers]
    for nlp in loaded:
        find_component(nlp, component)
    docs: Iterable[Doc] = read_docs(corpus, loaded[0], warn)
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
    try:
        out.to_disk(tmp)
        tmp.replace(output)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no half-written file beside the output
        raise
    return len(out)
