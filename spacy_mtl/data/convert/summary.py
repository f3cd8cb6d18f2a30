"""What a conversion did: rows read and rejected, docs, files and label counts per split."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Set, Union

from ...schema import GroupSchema, LabelGroup, cat_key
from ...tables import Table
from .spec import ConvertSpec

if TYPE_CHECKING:
    from .frames import FrameInput


@dataclass
class CorpusSummary:
    """What one output corpus got.

    name (str): The corpus name (file stem of its .spacy files).
    inputs (List[Union[Path, FrameInput]]): The input files (or DataFrame), in order.
    rows_read (int): Rows read (records; blank lines of CSV/TSV/JSONL are not rows).
    rows_rejected (int): Bad rows written to the rejects file (skip mode).
    docs (Dict[str, int]): Docs written per split ('all' without --split).
    files (Dict[str, List[Path]]): Files written per split.
    annotated (Dict[str, Dict[str, int]]): split → group → docs annotated for the group.
    label_counts (Dict[str, Dict[str, Dict[str, int]]]): split → group → label → docs
        with that label positive.
    first_rejects (List[str]): The first few rejected rows' messages.
    joined_rows_rejected (int): Rows of joined files (`join`) that belong to no input row
        (a key no input row has, rows past the input's end, bad rows without a key),
        written to the rejects file (skip mode). Not input rows, so not in `rows_read`:
        rows_read = docs_written + rows_rejected holds for the input rows.
    input_rows (Dict[Path, int]): Rows read from each input file (0: an empty file; the
        summary warns).
    join_unmatched (Dict[Path, int]): For each joined file (`join`), the input rows that
        no row of it reached (a key it lacks, rows past its end): their groups from it are
        missing. A joined file read with `header: true` that has no header loses its
        first row to the header, which shows here.
    conflicts_dropped (Dict[str, int]): For each conditional group with `on_conflict:
        drop`, the docs written without its keys: rows annotated for it where its parent's
        condition did not hold. The rows are kept (so they count in `docs`); the group is
        missing on them.
    """

    name: str
    inputs: List[Union[Path, "FrameInput"]]
    rows_read: int = 0
    rows_rejected: int = 0
    docs: Dict[str, int] = field(default_factory=dict)
    files: Dict[str, List[Path]] = field(default_factory=dict)
    annotated: Dict[str, Dict[str, int]] = field(default_factory=dict)
    label_counts: Dict[str, Dict[str, Dict[str, int]]] = field(default_factory=dict)
    first_rejects: List[str] = field(default_factory=list)
    joined_rows_rejected: int = 0
    input_rows: Dict[Path, int] = field(default_factory=dict)
    join_unmatched: Dict[Path, int] = field(default_factory=dict)
    conflicts_dropped: Dict[str, int] = field(default_factory=dict)

    @property
    def docs_written(self) -> int:
        return sum(self.docs.values())

    def total_label_counts(self) -> Dict[str, Dict[str, int]]:
        """group → label → positives, summed over the splits."""
        out: Dict[str, Dict[str, int]] = {}
        for groups in self.label_counts.values():
            for group, labels in groups.items():
                target = out.setdefault(group, {})
                for label, n in labels.items():
                    target[label] = target.get(label, 0) + n
        return out

    def total_annotated(self) -> Dict[str, int]:
        """group → docs annotated for it, summed over the splits."""
        out: Dict[str, int] = {}
        for groups in self.annotated.values():
            for group, n in groups.items():
                out[group] = out.get(group, 0) + n
        return out

    def files_table(self) -> Table:
        """split, docs, files written."""
        rows = [
            (split, f"{self.docs[split]:,}", ", ".join(map(str, paths)))
            for split, paths in self.files.items()
        ]
        return Table(rows, header=("split", "docs", "files"), aligns=("l", "r", "l"))

    def label_table(self, group: LabelGroup) -> Table:
        """Docs annotated for the group and docs with each label, per split and in all."""
        splits = list(self.docs)
        per_split = len(splits) > 1
        header = ("label", *splits, "total") if per_split else ("label", "docs")
        annotated = [f"{self.annotated[s][group.name]:,}" for s in splits] if per_split else []
        rows = [("(annotated)", *annotated, f"{self.total_annotated()[group.name]:,}")]
        totals = self.total_label_counts()[group.name]
        for label in group.labels:
            counts = (
                [f"{self.label_counts[s][group.name][label]:,}" for s in splits]
                if per_split
                else []
            )
            rows.append((label, *counts, f"{totals[label]:,}"))
        return Table(
            rows,
            header=header,
            aligns=("l",) + ("r",) * (len(header) - 1),
            title=f"{group.name} ({group.kind}): docs with each label",
        )


@dataclass
class ConvertSummary:
    """What `convert_files` did.

    corpora (List[CorpusSummary]): One per output name.
    schema (Optional[GroupSchema]): The groups and labels written (after inference).
    rejects (Optional[Path]): The rejects CSV (skip mode).
    inferred_labels (Dict[str, List[str]]): Labels inferred from the data, per group.
    warnings (List[str]): Things worth a look (inferred labels, empty splits).
    """

    corpora: List[CorpusSummary]
    schema: Optional[GroupSchema] = None
    rejects: Optional[Path] = None
    inferred_labels: Dict[str, List[str]] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(c.rows_read for c in self.corpora)

    @property
    def rows_rejected(self) -> int:
        return sum(c.rows_rejected for c in self.corpora)

    @property
    def docs_written(self) -> int:
        return sum(c.docs_written for c in self.corpora)

    @property
    def joined_rows_rejected(self) -> int:
        return sum(c.joined_rows_rejected for c in self.corpora)

    @property
    def conflicts_dropped(self) -> Dict[str, int]:
        """group → docs written without its keys by `on_conflict: drop`, over the corpora."""
        out: Dict[str, int] = {}
        for corpus in self.corpora:
            for group, n in corpus.conflicts_dropped.items():
                out[group] = out.get(group, 0) + n
        return out

    @property
    def files(self) -> List[Path]:
        return [p for c in self.corpora for paths in c.files.values() for p in paths]


class LabelCounter:
    """Per-split label counts, from each written doc's cats."""

    def __init__(self, spec: ConvertSpec, summary: CorpusSummary, splits: Sequence[str]) -> None:
        self.keys = {
            cat_key(g.name, label): (g.name, label) for g in spec.groups for label in g.labels
        }
        for split in splits:
            summary.docs[split] = 0
            summary.annotated[split] = {g.name: 0 for g in spec.groups}
            summary.label_counts[split] = {
                g.name: {label: 0 for label in g.labels} for g in spec.groups
            }
        summary.conflicts_dropped = {
            g.name: 0 for g in spec.groups if g.parent is not None and g.on_conflict == "drop"
        }
        self.summary = summary

    def add(self, split: str, cats: Mapping[str, float]) -> None:
        self.summary.docs[split] += 1
        counts = self.summary.label_counts[split]
        seen: Set[str] = set()
        for key, value in cats.items():
            group, label = self.keys[key]
            seen.add(group)
            if value == 1.0:
                counts[group][label] += 1
        annotated = self.summary.annotated[split]
        for group in seen:
            annotated[group] += 1
