"""TweetEval for the quality benchmark: reader, label groups, official metric, reference.

TweetEval (Barbieri et al., Findings of EMNLP 2020) gives each task as line-aligned files:
`{task}/{split}_text.txt` (one tweet per line), `{task}/{split}_labels.txt` (its label id)
and `{task}/mapping.txt` ("id<TAB>name" per line). The benchmark uses four tasks as four
multiclass groups, each doc annotated for its own task only:

- emotion: anger / joy / optimism / sadness;
- hate: not-hate / hate;
- irony: non_irony / irony;
- offensive: not-offensive / offensive.

Imported by quality.py and the tests; needs neither spaCy nor torch.
"""

from pathlib import Path
from typing import Any, Dict, List, Sequence

from harness import Item

TASKS = ("emotion", "hate", "irony", "offensive")
SPLITS = ("train", "val", "test")

# The leaderboard's "RoBERTa-Base" row (test set, official metric x 100): README.md of
# cardiffnlp/tweeteval at commit 4fbd22cd78421f05b1ecdb4fc5725bc7a7bd8f66, copied to
# ../shared/data/tweeteval/README.md, whose Reference column for that row is the paper
# (https://arxiv.org/pdf/2010.12421.pdf). Context only: RoBERTa-base is a 125M-parameter
# encoder fine-tuned per task on all its training data, far beyond our budget.
ROBERTA_BASE = {"emotion": 76.1, "hate": 46.6, "irony": 59.7, "offensive": 79.5}
REFERENCE_SOURCE = (
    "TweetEval leaderboard, row RoBERTa-Base (test set): README.md of cardiffnlp/tweeteval "
    "@ 4fbd22c; Barbieri et al., Findings of EMNLP 2020, arXiv:2010.12421"
)

# The official metric of each task, as cardiffnlp/tweeteval's evaluation script computes
# it from sklearn's classification_report: macro F1, except irony: F1 of the irony class
# (label id 1).
OFFICIAL_METRIC = {
    "emotion": "macro F1",
    "hate": "macro F1",
    "irony": "F1 of the irony class",
    "offensive": "macro F1",
}
POSITIVE_CLASS = {"irony": 1}


class TweetEvalError(ValueError):
    """A TweetEval file that cannot be read as the benchmark needs it."""


def _lines(path: Path) -> List[str]:
    """The file's lines, split on '\\n' only: a tweet may hold other Unicode line breaks
    (str.splitlines would cut it in two and shift every later label)."""
    if not path.exists():
        raise TweetEvalError(f"TweetEval file not found: {path}")
    lines = path.read_text(encoding="utf8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_mapping(root: Path, task: str) -> List[str]:
    """Label names of `task` in id order, from {task}/mapping.txt ('0<TAB>anger' lines)."""
    path = root / task / "mapping.txt"
    names: Dict[int, str] = {}
    for n, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip().isdigit() or not parts[1].strip():
            raise TweetEvalError(f"{path}, line {n}: expected 'id<TAB>name', got {line!r}.")
        names[int(parts[0])] = parts[1].strip()
    if sorted(names) != list(range(len(names))) or not names:
        raise TweetEvalError(f"{path}: label ids must be 0..n-1, got {sorted(names)}.")
    return [names[i] for i in range(len(names))]


def read_split(root: Path, task: str, split: str) -> List[Item]:
    """The docs of one task and split, with gold for that task's group only.

    root (Path): The tweeteval folder (holding emotion/, hate/, ...).
    RETURNS (List[Item]): cats {'{task}/{name}': 1.0 for the gold label, 0.0 for the
        others}, source `task`. Raises TweetEvalError when the text and label files differ
        in length or a label id is not in mapping.txt.
    """
    names = read_mapping(root, task)
    text_path = root / task / f"{split}_text.txt"
    label_path = root / task / f"{split}_labels.txt"
    texts, labels = _lines(text_path), _lines(label_path)
    if len(texts) != len(labels):
        raise TweetEvalError(
            f"{text_path} has {len(texts)} lines but {label_path} has {len(labels)}: "
            "the files must be line-aligned (one tweet and its label per line)."
        )
    items = []
    for n, (text, label) in enumerate(zip(texts, labels), start=1):
        value = label.strip()
        if not value.isdigit() or int(value) >= len(names):
            raise TweetEvalError(
                f"{label_path}, line {n}: label {label!r} is not an id of "
                f"{root / task / 'mapping.txt'} (0..{len(names) - 1})."
            )
        gold = int(value)
        cats = {f"{task}/{name}": float(i == gold) for i, name in enumerate(names)}
        items.append(Item(text, cats, task))
    return items


def groups(root: Path, tasks: Sequence[str] = TASKS) -> Dict[str, Dict[str, Any]]:
    """One multiclass group per task, labels in mapping.txt order."""
    return {task: {"kind": "multiclass", "labels": read_mapping(root, task)} for task in tasks}


def per_class_f1(gold: Sequence[int], pred: Sequence[int], n_classes: int) -> List[float]:
    """F1 of each class id 0..n_classes-1 (0.0 where it has no true or predicted doc)."""
    scores = []
    for c in range(n_classes):
        tp = sum(1 for g, p in zip(gold, pred) if g == c and p == c)
        fp = sum(1 for g, p in zip(gold, pred) if g != c and p == c)
        fn = sum(1 for g, p in zip(gold, pred) if g == c and p != c)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return scores


def official_score(task: str, gold: Sequence[int], pred: Sequence[int], n_classes: int) -> float:
    """TweetEval's official metric of `task` on label ids, in [0, 1].

    Macro F1 over all n_classes (the evaluation script's classification_report averages
    over the classes present in gold or predictions: the same on the full test sets, where
    every class occurs), or for irony the F1 of the irony class.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{task}: {len(gold)} gold labels but {len(pred)} predictions.")
    if not gold:
        raise ValueError(f"{task}: no test docs to score.")
    f1 = per_class_f1(gold, pred, n_classes)
    if task in POSITIVE_CLASS:
        return f1[POSITIVE_CLASS[task]]
    return sum(f1) / n_classes
