"""`convert_files`: the inputs of each corpus → parsed rows → split → written shards.

Output is written to a temporary folder next to the destination and renamed into place
only when every input converted, so a failed run leaves no partial corpus.
"""

import itertools
import os
import re
import shutil
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from spacy.language import Language
from tqdm import tqdm

from ...errors import Errors, format_labels
from ..io import PathLike, base_name, input_clash, same_file
from .exceptions import CellError, ConvertError, RowError, SpecError
from .frames import FrameInput, Input, input_size, open_source
from .readers import Record, check_input_file, strip_eol
from .rows import GroupParser, Parsed, RowParser, whole_number
from .spec import ConvertSpec, load_spec
from .splits import SplitLabels, assign_splits, parse_split
from .summary import ConvertSummary, CorpusSummary, LabelCounter
from .writers import (
    Rejects,
    ShardWriter,
    final_paths,
    make_temp_dir,
    remove_stale_debris,
    stale_outputs,
    write_error,
)

ON_ERROR = ("fail", "skip")
DEFAULT_SHARD_SIZE = 50_000
DEFAULT_CHUNK_SIZE = 10_000
# The split name of a corpus converted without --split.
NO_SPLIT = "all"
_SHARD_SUFFIX = re.compile(r"-\d{3,}$")
_INTEGER = re.compile(r"^([+-]?)(\d+)$")


def convert_files(
    inputs: Sequence[Union[PathLike, FrameInput]],
    output_dir: PathLike,
    spec: Union[ConvertSpec, PathLike],
    *,
    split: Union[str, Mapping[str, float], None] = None,
    seed: int = 0,
    on_error: str = "fail",
    rejects: Optional[PathLike] = None,
    limit: Optional[int] = None,
    lang: str = "en",
    name: Optional[str] = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = False,
) -> ConvertSummary:
    """Convert tabular files to .spacy corpora with label groups in doc.cats.

    Without `name`, each input becomes its own corpus named after the file
    (`OUTPUT_DIR/<stem>.spacy`); with `name`, the inputs are read in order into one
    corpus. With `split`, each corpus is split into `OUTPUT_DIR/<split>/<name>.spacy`.
    A corpus above `shard_size` docs is written as `<name>-000.spacy`, `<name>-001.spacy`,
    ... Docs keep input order in every file. Nothing is written unless every input
    converts: files are written to a hidden temporary folder in OUTPUT_DIR and renamed
    into place at the end (replacing earlier outputs of the same name).

    inputs (Sequence[Union[str, Path, FrameInput]]): CSV, TSV, JSONL or one-text-per-line
        files (optionally .gz, .bz2 or .xz); a DataFrame in a `FrameInput` (what
        `convert_dataframe` passes).
    output_dir (Union[str, Path]): Folder for the corpora (created if needed).
    spec (Union[ConvertSpec, str, Path]): The spec, or the path of a spec file.
    split (Union[str, Mapping[str, float], None]): e.g. 'train=0.8,dev=0.1,test=0.1'.
        Stratified by the spec's first multiclass group; deterministic for a seed.
    seed (int): Seed of the split.
    on_error (str): 'fail' stops at the first bad row and writes nothing; 'skip' writes
        the good rows and lists every bad row in the rejects file.
    rejects (Optional[Union[str, Path]]): Rejects CSV (skip mode); default
        OUTPUT_DIR/<first corpus name>.rejects.csv.
    limit (Optional[int]): Read at most this many rows of each input.
    lang (str): Language of the tokenizer (`spacy.blank(lang)`).
    name (Optional[str]): Name of the one corpus made from all inputs.
    shard_size (int): Most docs per .spacy file.
    chunk_size (int): Rows read and parsed at a time (one progress update each).
    progress (bool): Show tqdm progress bars (on stderr).
    RETURNS (ConvertSummary): Rows read and rejected, docs and label counts per split,
        files written.

    DOCS: docs/convert.md
    """
    if on_error not in ON_ERROR:
        raise ConvertError(Errors.E226.format(value=on_error))
    if on_error == "fail" and rejects is not None:
        raise ConvertError(Errors.E227)
    for label, number in (("shard_size", shard_size), ("chunk_size", chunk_size)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ConvertError(Errors.E231.format(n=label, value=number))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConvertError(Errors.E231.format(n="limit", value=limit))
    if not isinstance(spec, ConvertSpec):
        spec = load_spec(spec)
    fractions = parse_split(split)
    paths: List[Input] = [p if isinstance(p, FrameInput) else Path(p) for p in inputs]
    if not paths:
        raise ConvertError(Errors.E230.format(path="(no inputs)"))
    for path in paths:
        if not isinstance(path, FrameInput):
            check_input_file(path)
    plan = _plan_corpora(paths, name)
    out_dir = Path(output_dir)
    rejects_path: Optional[Path] = None
    if on_error == "skip":
        rejects_path = (
            Path(rejects) if rejects is not None else out_dir / f"{plan[0][0]}.rejects.csv"
        )
    _check_outputs(plan, out_dir, fractions, rejects_path, _all_inputs(paths, spec))

    summary = ConvertSummary(corpora=[])
    if not spec.is_complete:
        inferred = _infer_labels(paths, spec, limit)
        spec = spec.with_labels(inferred)
        summary.inferred_labels = {g: list(labels) for g, labels in inferred.items() if labels}
        for group, labels in summary.inferred_labels.items():
            summary.warnings.append(Errors.W201.format(group=group, labels=labels))
            summary.warnings.extend(_case_clashes(group, labels))
    for group_spec in spec.groups:
        if not group_spec.labels:
            # Nothing in the data for it either: the group cannot be written.
            raise SpecError(
                Errors.E215.format(
                    spec=spec.source, error=Errors.E004.format(group=group_spec.name)
                )
            )
    summary.schema = spec.schema()

    nlp = _blank(lang)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConvertError(Errors.E233.format(path=out_dir))
    created_out = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(out_dir, "the output folder", err) from err
    # Debris of killed runs (their PID is gone) goes before this run makes its own.
    remove_stale_debris(out_dir)
    if rejects_path is not None and rejects_path.parent != out_dir:
        remove_stale_debris(rejects_path.parent)
    tmp_root = make_temp_dir(out_dir)
    rejects_file: Optional[Rejects] = None
    try:
        if rejects_path is not None:
            rejects_file = Rejects(rejects_path)
            summary.rejects = rejects_path
        moves: List[Tuple[Path, Path]] = []
        stale: List[Path] = []
        for index, (corpus_name, corpus_inputs) in enumerate(plan):
            corpus = CorpusSummary(name=corpus_name, inputs=corpus_inputs)
            summary.corpora.append(corpus)
            temp_files = _convert_corpus(
                corpus,
                spec,
                nlp,
                tmp_root / f"{index:03d}",
                fractions=fractions,
                seed=seed,
                rejects=rejects_file,
                limit=limit,
                shard_size=shard_size,
                chunk_size=chunk_size,
                progress=progress,
            )
            if corpus.rows_read != corpus.docs_written + corpus.rows_rejected:
                raise RuntimeError(  # a bug, not a data problem
                    f"{corpus_name}: {corpus.rows_read} rows read but "
                    f"{corpus.docs_written} written + {corpus.rows_rejected} rejected."
                )
            for split_name, files in temp_files.items():
                folder = out_dir if fractions is None else out_dir / split_name
                finals = final_paths(folder, corpus_name, len(files))
                corpus.files[split_name] = finals
                moves.extend(zip(files, finals))
                stale.extend(stale_outputs(folder, corpus_name, finals))
                if corpus.docs[split_name] == 0 and fractions is not None:
                    summary.warnings.append(Errors.W202.format(name=corpus_name, split=split_name))
            summary.warnings.extend(_empty_inputs(corpus))
            summary.warnings.extend(_dropped_notes(corpus, spec))
        # Everything converted: make every folder and check every name first, so that a
        # folder that cannot be made stops the run before any file has its final name;
        # then move into place and drop earlier outputs this run replaced with a different
        # number of shards.
        for _tmp, final in moves:
            _check_destination(final)
        for tmp, final in moves:
            try:
                os.replace(tmp, final)
            except OSError as err:
                raise write_error(final, "a corpus file", err) from err
        for path in stale:
            try:
                path.unlink(missing_ok=True)
            except OSError as err:
                raise write_error(path, "over an earlier shard", err) from err
        if rejects_file is not None:
            rejects_file.commit()
    except BaseException:
        # Each step on its own: one that fails (a full disk, a read-only folder) must not
        # keep the others from removing this run's temporary files.
        if rejects_file is not None:
            rejects_file.discard()
        shutil.rmtree(tmp_root, ignore_errors=True)
        try:
            if created_out and out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()
        except OSError:
            pass
        raise
    shutil.rmtree(tmp_root, ignore_errors=True)
    return summary


def _check_destination(final: Path) -> None:
    """Make the folder of an output file; refuse a name taken by a folder, or a folder
    name taken by a file (e.g. a file called `train` where the train split goes)."""
    parent = final.parent
    if parent.exists() and not parent.is_dir():
        raise ConvertError(
            Errors.E267.format(
                path=parent,
                what=f"{final.name} into it",
                cause="it is a file, where a folder of the output goes; move or rename it",
            )
        )
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(parent, "a folder of the output", err) from err
    if final.is_dir():
        raise ConvertError(
            Errors.E267.format(
                path=final,
                what="the corpus file",
                cause="a folder has its name; move or rename the folder",
            )
        )


def _empty_inputs(corpus: CorpusSummary) -> List[str]:
    """Warnings for the corpus's input files that gave no row (W203)."""
    out = []
    for path in corpus.inputs:
        if not isinstance(path, Path) or corpus.input_rows.get(path, 0):
            continue
        try:
            empty = path.stat().st_size == 0
        except OSError:
            empty = False
        why = "the file is empty: 0 bytes" if empty else "only blank lines or a header row"
        out.append(Errors.W203.format(path=path, why=why, name=corpus.name))
    return out


def _dropped_notes(corpus: CorpusSummary, spec: ConvertSpec) -> List[str]:
    """Warnings for the conditional groups whose labels `on_conflict: drop` left out of
    some rows of the corpus (W204)."""
    return [
        Errors.W204.format(name=corpus.name, group=group, n=n, parent=spec.group(group).parent)
        for group, n in corpus.conflicts_dropped.items()
        if n
    ]


def _all_inputs(inputs: Sequence[Input], spec: ConvertSpec) -> List[Path]:
    """Every file the run reads: the inputs, their paired label and joined files, the spec
    file."""
    paths = [path for path in inputs if isinstance(path, Path)]
    found = list(paths)
    for path in paths:
        found.extend(join.path_for(path) for join in spec.join)
        try:
            labels = spec.labels_path(path)
        except ConvertError:
            continue  # reported when the input is read
        if labels is not None:
            found.append(labels)
    if spec.source != "<dict>" and Path(spec.source).is_file():
        found.append(Path(spec.source))
    return found


def _check_outputs(
    plan: Sequence[Tuple[str, Sequence[Input]]],
    out_dir: Path,
    fractions: Optional[Mapping[str, float]],
    rejects: Optional[Path],
    inputs: Sequence[Path],
) -> None:
    """Refuse, before anything is written, a rejects file or corpus file (one this run
    writes, or an old shard it deletes) that is an input or a link to one."""
    if rejects is not None:
        if rejects.is_dir():
            raise ConvertError(Errors.E273.format(path=rejects))
        clash = input_clash(rejects, inputs)
        if clash is not None:
            raise ConvertError(
                Errors.E270.format(what="The rejects file", path=rejects, input=clash)
            )
    folders = [out_dir] if fractions is None else [out_dir / split for split in fractions]
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise ConvertError(
                Errors.E267.format(
                    path=folder,
                    what="the corpus into it",
                    cause="it is a file, where a folder of the output goes; move or rename it",
                )
            )
        for corpus_name, _ in plan:
            if (folder / f"{corpus_name}.spacy").is_dir():
                raise ConvertError(
                    Errors.E267.format(
                        path=folder / f"{corpus_name}.spacy",
                        what="the corpus file",
                        cause="a folder has its name; move or rename the folder",
                    )
                )
            for path in [folder / f"{corpus_name}.spacy", *stale_outputs(folder, corpus_name, [])]:
                clash = input_clash(path, inputs)
                if clash is not None:
                    raise ConvertError(
                        Errors.E270.format(what="The output file", path=path, input=clash)
                    )
            # The rejects file is committed last: it would replace a corpus file.
            shard = rf"{re.escape(corpus_name)}(-\d{{3,}})?\.spacy"
            if (
                rejects is not None
                and re.fullmatch(shard, rejects.name)
                and same_file(rejects.parent, folder)
            ):
                raise ConvertError(Errors.E278.format(path=rejects))


def _blank(lang: str) -> Language:
    import spacy

    try:
        return spacy.blank(lang)
    except (ImportError, OSError, ValueError) as err:
        # ValueError/ImportError: unknown language code or its missing dependencies.
        raise ConvertError(Errors.E229.format(lang=lang, error=err)) from err


def _plan_corpora(paths: Sequence[Input], name: Optional[str]) -> List[Tuple[str, List[Input]]]:
    if name is not None:
        _check_name(name)
        return [(name, list(paths))]
    plan: List[Tuple[str, List[Input]]] = []
    seen: Dict[str, Input] = {}
    for path in paths:
        if isinstance(path, FrameInput):
            raise ConvertError(
                Errors.E224.format(
                    name="(a DataFrame)", why="a DataFrame has no file name; give `name`"
                )
            )
        stem = base_name(path)
        if stem in seen:
            raise ConvertError(Errors.E223.format(name=stem, first=seen[stem], second=path))
        _check_name(stem)
        seen[stem] = path
        plan.append((stem, [path]))
    return plan


def _check_name(name: str) -> None:
    why = None
    if not name or "/" in name or "\\" in name:
        why = "it must be a non-empty file name"
    elif name.startswith("."):
        why = "spaCy's corpus reader skips files whose name starts with '.'"
    elif _SHARD_SUFFIX.search(name):
        why = "names ending in '-' and three or more digits are kept for shards"
    if why is not None:
        raise ConvertError(Errors.E224.format(name=name, why=why))


def _infer_labels(
    paths: Sequence[Input], spec: ConvertSpec, limit: Optional[int]
) -> Dict[str, List[str]]:
    """Labels of the groups the spec lists none for, from every input's cells.

    Bad rows are passed over here: the conversion pass reports them with their place.
    """
    todo = [g for g in spec.groups if not g.labels and g.column is not None]
    by_name = {g.name: g for g in spec.groups}
    parsers = [GroupParser(g, spec, by_name) for g in todo]
    found: Dict[str, Set[str]] = {g.name: set() for g in todo}
    for path in paths:
        with open_source(path, spec, limit=limit) as (_reader, records):
            for record in records:
                if record.cells is None:
                    continue
                for parser in parsers:
                    assert parser.group.column is not None
                    try:
                        values = parser.cell_values(record.cells, parser.group.column)
                    except CellError:
                        continue
                    found[parser.name].update(map(whole_number, values or ()))
    for group, labels in found.items():
        _check_spellings(group, labels)
    return {group: _label_order(labels) for group, labels in found.items()}


def _check_spellings(group: str, values: Iterable[str]) -> None:
    """Refuse inferred labels that are one number written two ways ('1' and '01', '+1'):
    explicit labels compare cell values as text (only '1.0' matches '1'), so they would
    be two classes here but one value and an error there."""
    spellings: Dict[str, List[str]] = {}
    for value in values:
        match = _INTEGER.match(value)
        if match is not None:
            sign, digits = match.groups()
            digits = digits.lstrip("0") or "0"
            number = digits if sign != "-" or digits == "0" else f"-{digits}"
            spellings.setdefault(number, []).append(value)
    clashes = sorted(sorted(v) for v in spellings.values() if len(v) > 1)
    if clashes:
        shown = [value for values in clashes[:5] for value in values]
        raise ConvertError(Errors.E298.format(group=group, values=shown))


def _case_clashes(group: str, labels: Sequence[str]) -> List[str]:
    """A warning per set of inferred labels that differ only in case ('pos' and 'Pos'):
    kept apart (they may be meant: 'US' and 'us'), but more often one label written two
    ways, which would train as two classes."""
    spellings: Dict[str, List[str]] = {}
    for label in labels:
        spellings.setdefault(label.casefold(), []).append(label)
    return [
        Errors.W205.format(
            group=group,
            values=format_labels(values),
            n=len(values),
            first=values[0],
            second=values[1],
            label=values[-1].casefold(),
        )
        for values in spellings.values()
        if len(values) > 1
    ]


def _label_order(values: Iterable[str]) -> List[str]:
    """Sorted, numerically when every label is a whole number (so '2' comes before '10')."""
    values = list(values)
    if values and all(v.isascii() and v.isdigit() for v in values):
        return sorted(values, key=lambda v: (int(v), v))
    return sorted(values)


def _convert_corpus(
    corpus: CorpusSummary,
    spec: ConvertSpec,
    nlp: Language,
    tmp: Path,
    *,
    fractions: Optional[Dict[str, float]],
    seed: int,
    rejects: Optional[Rejects],
    limit: Optional[int],
    shard_size: int,
    chunk_size: int,
    progress: bool,
) -> Dict[str, List[Path]]:
    """Convert one corpus into temporary files; return them per split, in order.

    Without a split this is one pass. With a split, the assignment needs every row's
    labels before the first doc is written, so a first pass parses the rows (cheap: no
    tokenizing) and reports the bad ones, and a second pass parses them again, tokenizes
    and writes each doc to its split. Memory stays flat: a few ints per row (its label
    ids, see SplitLabels), one chunk of rows, one shard per split.
    """
    parser = RowParser(spec)
    splits = list(fractions) if fractions is not None else [NO_SPLIT]
    counter = LabelCounter(spec, corpus, splits)
    writers = [ShardWriter(tmp / split, shard_size, spec.id is not None) for split in splits]

    def report(error: RowError, record: Record) -> None:
        if rejects is None:
            raise error
        if record.extra:
            corpus.joined_rows_rejected += 1
        else:
            corpus.rows_rejected += 1
        rejects.write(error, strip_eol(record.raw))
        if len(corpus.first_rejects) < 5:
            corpus.first_rejects.append(str(error))

    assignment: Optional[Iterator[int]] = None
    if fractions is not None:
        row_labels = SplitLabels([(g.name, g.labels) for g in spec.groups])
        for record, row in _parsed_rows(corpus, parser, nlp, limit, chunk_size, progress, "read"):
            corpus.rows_read += not record.extra
            if isinstance(row, RowError):
                report(row, record)
            else:
                row_labels.add(row[1])
        assignment = iter(assign_splits(row_labels, list(fractions.values()), seed))
    desc = "write" if fractions is not None else corpus.name
    for record, row in _parsed_rows(corpus, parser, nlp, limit, chunk_size, progress, desc):
        if assignment is None:
            corpus.rows_read += not record.extra
            if isinstance(row, RowError):
                report(row, record)
                continue
        elif isinstance(row, RowError):
            continue  # reported in the first pass
        text, cats, doc_id, _, dropped = row
        doc = nlp.make_doc(text)
        doc.cats = cats
        if doc_id is not None:
            doc.user_data["id"] = doc_id
        split = 0 if assignment is None else next(assignment, -1)
        if split < 0:
            raise ConvertError(Errors.E232.format(name=corpus.name))
        writers[split].add(doc)
        counter.add(splits[split], cats)
        for group_name in dropped:
            corpus.conflicts_dropped[group_name] += 1
    if assignment is not None and next(assignment, None) is not None:
        raise ConvertError(Errors.E232.format(name=corpus.name))
    return {split: writer.close() for split, writer in zip(splits, writers)}


def _parsed_rows(
    corpus: CorpusSummary,
    parser: RowParser,
    nlp: Language,
    limit: Optional[int],
    chunk_size: int,
    progress: bool,
    desc: str,
) -> Iterator[Tuple[Record, Union[Parsed, RowError]]]:
    """Every row of the corpus's inputs, parsed (or its error), read chunk by chunk.

    The first pass over the inputs (all but --split's "write" pass) also counts the rows
    of each input and the input rows that a joined file had no row for.
    """
    first_pass = desc != "write"
    if first_pass:
        for path in corpus.inputs:
            if isinstance(path, Path):
                corpus.input_rows[path] = 0
                for join in parser.spec.join:
                    corpus.join_unmatched[join.path_for(path)] = 0
    total = sum(input_size(p) for p in corpus.inputs)
    with tqdm(
        total=total, unit="B", unit_scale=True, desc=desc, disable=not progress, leave=False
    ) as bar:
        done_bytes = 0
        for path in corpus.inputs:
            with open_source(path, parser.spec, limit=limit) as (reader, records):
                while True:
                    chunk = list(itertools.islice(records, chunk_size))
                    if not chunk:
                        break
                    for record in chunk:
                        if first_pass and not record.extra and isinstance(path, Path):
                            corpus.input_rows[path] += 1
                            for joined in record.unjoined:
                                corpus.join_unmatched[joined] += 1
                        yield record, _parse_record(record, parser, nlp)
                    bar.update(done_bytes + reader.position - bar.n)
            done_bytes += input_size(path)
            bar.update(done_bytes - bar.n)


def _parse_record(record: Record, parser: RowParser, nlp: Language) -> Union[Parsed, RowError]:
    """The row's (text, cats, id, stratum), or the RowError that says what is wrong."""
    if record.cells is None:
        assert record.error is not None
        column, reason = record.error
        line = record.error_line or record.line
        return RowError(record.error_path or record.path, line, column, reason)
    try:
        parsed = parser.parse(record.cells)
    except CellError as err:
        path, line, reason = record.path, record.line, err.reason
        if record.labels_path is not None and err.column == parser.spec.labels_column:
            path = record.labels_path
        for joined_path, joined_line, columns in record.joined_from:
            if err.column in columns:  # a cell from a joined file: name its place
                path, line = joined_path, joined_line
                reason = f"{reason} (joined to {record.path}:{record.line})"
        return RowError(path, line, err.column, reason, index=record.index)
    if len(parsed[0]) > nlp.max_length:
        reason = Errors.E263.format(n=len(parsed[0]), limit=nlp.max_length)
        return RowError(record.path, record.line, parser.spec.text, reason, index=record.index)
    return parsed
