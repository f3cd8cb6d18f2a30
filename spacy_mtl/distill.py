"""Distillation: teacher logits stored with each doc, blended with gold during training.

A teacher (a trained pipeline with an `mtl_textcat`) writes its raw logits into
`doc._.mtl_teacher` as `{"{group}/{label}": logit}`; the student's `mtl_textcat` trains on

    target = λ·gold + (1 − λ)·activation(teacher_logit / T)   where the doc has gold,
    target = activation(teacher_logit / T)                      where only the teacher has it,
    target = gold                                               where only gold has it,

with λ (the gold weight) from a schedule that rises from 0 to 1 over training by default:
teacher annealing (Clark et al., 2019, "BAM! Born-Again Multi-Task Networks"). The loss is the
same CE / BCE as for gold (torch's soft-target definitions), so a student never needs its own
training loop: it is `spacy train` with a corpus that carries teacher logits.
"""

from itertools import islice
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy
import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.util import minibatch, registry

from .batching import iter_by_length
from .errors import GoldError, doc_start
from .loss import activate
from .schema import GroupSchema

TEACHER_ATTR = "mtl_teacher"


@registry.schedules("spacy-mtl.linear.v1")
def linear_schedule(start: float = 0.0, stop: float = 1.0, steps: int = 1000) -> Iterator[float]:
    """Yield values from `start` to `stop` in `steps` equal steps, then `stop` for ever.

    The default gold-weight schedule of teacher annealing: 0 → 1 over the training run (set
    `steps` to `${training.max_steps}`).
    """
    if steps <= 0:
        raise ValueError(f"spacy-mtl.linear.v1: steps must be positive, got {steps}.")
    for i in range(steps):
        yield start + (stop - start) * i / steps
    while True:
        yield stop


class TeacherReader:
    """Reads `doc._.mtl_teacher` logits against a schema."""

    def __init__(self, schema: GroupSchema) -> None:
        self.schema = schema
        self.columns = {key: i for i, key in enumerate(schema.keys)}
        self.group_of = {
            key: (start, end) for group, start, end in schema.slices() for key in group.keys
        }

    def read_batch(self, docs: Iterable[Doc]) -> Tuple[numpy.ndarray, numpy.ndarray, bool]:
        """(logits, mask, any_teacher) arrays of shape (n_docs, n_labels).

        Keys of groups the student does not have are ignored (a teacher may know more).
        A multiclass group counts as taught only when the teacher gave all of its labels.
        """
        docs = list(docs)
        n = self.schema.n_labels
        logits = numpy.zeros((len(docs), n), dtype="f")
        mask = numpy.zeros((len(docs), n), dtype="f")
        found = False
        for i, doc in enumerate(docs):
            teacher: Optional[Mapping[str, float]] = doc._.get(TEACHER_ATTR)
            if not teacher:
                continue
            for key, value in teacher.items():
                col = self.columns.get(key)
                if col is None:
                    continue
                if not numpy.isfinite(value):
                    raise GoldError(
                        f"Doc {doc_start(doc.text)}: teacher logit for {key!r} is {value!r}; "
                        "teacher logits must be finite numbers."
                    )
                logits[i, col] = value
                mask[i, col] = 1.0
                found = True
        for group, start, end in self.schema.slices():
            if group.is_multiclass:
                complete = numpy.asarray(mask[:, start:end].all(axis=1))
                mask[:, start:end] = complete[:, None]
        return logits, mask, found


def blend_targets(
    schema: GroupSchema,
    truths: numpy.ndarray,
    gold_mask: numpy.ndarray,
    teacher_logits: numpy.ndarray,
    teacher_mask: numpy.ndarray,
    gold_weight: float,
    temperature: float = 1.0,
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Targets and mask for the loss: λ·gold + (1 − λ)·teacher where both, else either one.

    gold_weight (float): λ in [0, 1].
    temperature (float): The teacher's logits are divided by this before the activation.
    RETURNS (Tuple[ndarray, ndarray]): (targets, mask), both (n_docs, n_labels).
    """
    if not 0.0 <= gold_weight <= 1.0:
        raise ValueError(f"The gold weight must be in [0, 1], got {gold_weight}.")
    teacher = activate(numpy, schema, teacher_logits, temperature=temperature)
    has_gold = gold_mask > 0
    has_teacher = teacher_mask > 0
    both = gold_weight * truths + (1.0 - gold_weight) * teacher
    targets = numpy.where(has_gold & has_teacher, both, numpy.where(has_gold, truths, teacher))
    mask = (has_gold | has_teacher).astype("f")
    return (targets * mask).astype("f"), mask


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
                logits = pipe.model.ops.to_numpy(pipe.predict_logits([doc for _, doc in batch]))
                for (index, _), values in zip(batch, logits.tolist()):
                    merged[index].update(zip(keys, values))
        for doc, row in zip(chunk, merged):
            doc._.set(TEACHER_ATTR, row)
            yield doc


def read_docs(path: Path, nlp: Language) -> Iterator[Doc]:
    """Docs from a .spacy file, a folder of them, or a text file (.txt: one text per line;
    .jsonl: one {"text": ...} object per line) of unlabelled texts."""
    if path.is_dir() or path.suffix == ".spacy":
        files = sorted(path.rglob("*.spacy")) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(f"No .spacy files under {path}.")
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

    from .loading import find_component, load_pipeline

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
