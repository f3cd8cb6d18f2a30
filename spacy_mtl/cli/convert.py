"""`spacy-mtl convert`: tabular files → .spacy corpora (spacy_mtl/data/convert/)."""

from pathlib import Path
from typing import Optional

import typer

from ._util import print_table


def convert_command(
    inputs: list[Path] = typer.Argument(
        ..., help="Input files: CSV, TSV, JSONL or one text per line (also .gz/.bz2/.xz)."
    ),
    output_dir: Path = typer.Argument(..., help="Folder for the .spacy files (created)."),
    spec: Path = typer.Option(
        ..., "--spec", "-s", help="Spec file (YAML or JSON): text column and label groups."
    ),
    name: Optional[str] = typer.Option(
        None,
        "--name",
        help="Read all inputs into one corpus of this name (default: one per input, "
        "named after the file).",
    ),
    lang: str = typer.Option("en", "--lang", "-l", help="Tokenizer language (spacy.blank)."),
    split: Optional[str] = typer.Option(
        None,
        "--split",
        help="Split each corpus, e.g. train=0.8,dev=0.1,test=0.1 (stratified by the first "
        "multiclass group) into OUTPUT_DIR/<split>/.",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of --split."),
    on_error: str = typer.Option(
        "fail",
        "--on-error",
        help="fail: stop at the first bad row and write nothing. skip: write the good rows "
        "and list every bad one in the rejects file.",
    ),
    rejects: Optional[Path] = typer.Option(
        None,
        "--rejects",
        help="Rejects CSV for --on-error skip (default OUTPUT_DIR/<name>.rejects.csv).",
    ),
    limit: Optional[int] = typer.Option(
        None, "--limit", min=1, help="Read at most N rows of each input."
    ),
    # 50,000 is data.convert.DEFAULT_SHARD_SIZE, written out to keep `--help` free of spaCy.
    shard_size: int = typer.Option(
        50_000,
        "--shard-size",
        min=1,
        help="Most docs per .spacy file; more are written as <name>-000.spacy, ...",
    ),
) -> None:
    """Convert tabular files to .spacy corpora with label groups in doc.cats.
    See docs/convert.md for the spec format.
    """
    from wasabi import msg

    from ..data.convert import ConvertError, convert_files, load_spec

    try:
        summary = convert_files(
            inputs,
            output_dir,
            load_spec(spec),
            split=split,
            seed=seed,
            on_error=on_error,
            rejects=rejects,
            limit=limit,
            lang=lang,
            name=name,
            shard_size=shard_size,
            progress=True,
        )
    except ConvertError as err:
        msg.fail("Conversion stopped; nothing was written", str(err), exits=1)
    except OSError as err:  # one that convert does not word itself: still one line
        where = err.filename if err.filename is not None else output_dir
        msg.fail("Conversion stopped", f"{where}: {err.strerror or err}", exits=1)
    for corpus in summary.corpora:
        msg.divider(corpus.name)
        msg.text(
            f"rows read {corpus.rows_read:,} = docs written {corpus.docs_written:,} "
            f"+ rows rejected {corpus.rows_rejected:,}"
        )
        if corpus.joined_rows_rejected:
            msg.text(
                f"joined-file rows rejected {corpus.joined_rows_rejected:,} (rows of `join` "
                "files that belong to no input row; not among the rows read)"
            )
        for joined_file, n_unmatched in corpus.join_unmatched.items():
            msg.text(
                f"join {joined_file}: {n_unmatched:,} input rows matched no row of it (their "
                "groups from it are missing)"
            )
        for group_name, n_dropped in corpus.conflicts_dropped.items():
            msg.text(
                f"group {group_name!r}: {n_dropped:,} rows kept without its labels "
                "(`on_conflict: drop`: annotated where its parent condition does not hold)"
            )
        print_table(corpus.files_table())
        for group in summary.schema.groups if summary.schema is not None else ():
            print_table(corpus.label_table(group))
        for line in corpus.first_rejects:
            msg.text(f"  rejected: {line}", spaced=False)
    for warning in summary.warnings:
        msg.warn(warning)
    if summary.rejects is not None:
        if summary.rows_rejected or summary.joined_rows_rejected:
            joined = summary.joined_rows_rejected
            extra = f" and {joined:,} joined-file rows" if joined else ""
            msg.warn(
                f"{summary.rows_rejected:,} rows{extra} rejected, listed in", str(summary.rejects)
            )
        else:
            msg.good("No rows rejected; empty rejects file", str(summary.rejects))
    msg.good(
        f"Wrote {summary.docs_written:,} docs of {summary.rows_read:,} rows read "
        f"({summary.rows_rejected:,} rejected) to {output_dir}"
    )
