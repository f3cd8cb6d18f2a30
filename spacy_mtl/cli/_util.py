"""What the commands share: the options that mean the same in every command that has
them, and the helpers that import --code, check an output, load a pipeline and print a
table."""

from pathlib import Path
from typing import Any, Optional

import typer

# Options that mean the same in every command that has them, spelled as spaCy's commands
# spell them (tests/integration/test_cli_conventions.py compares them with spaCy's).
CODE_HELP = (
    "Path to Python file with additional code (registered functions) to be imported "
    "before the pipeline loads"
)
CODE = typer.Option(None, "--code", "-c", help=f"{CODE_HELP}.")
GPU_ID = typer.Option(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU.")
BATCH_SIZE = typer.Option(64, "--batch-size", "-b", min=1, help="Docs per batch.")


def import_code(code: Optional[Path]) -> None:
    """Import the --code file as spaCy's commands do (its registered functions become
    available); a missing or failing file ends the command with one line."""
    if code is not None:
        from spacy.cli._util import import_code as spacy_import_code

        spacy_import_code(code)


def check_new_output(output: Path, force: bool, *, folder: bool) -> None:
    """Refuse an existing OUTPUT without --force (as `predict` and `spacy apply` do),
    before anything slow runs. A folder output may exist empty; a file where a folder
    goes (or the reverse) is refused even with --force."""
    from wasabi import msg

    if output.exists() and output.is_dir() != folder:
        kind = "a folder" if folder else "a file"
        msg.fail(f"{output} exists and is not {kind}; choose another OUTPUT.", exits=1)
    taken = any(output.iterdir()) if folder and output.exists() else output.exists()
    if taken and not force:
        msg.fail(f"{output} already exists; use -F/--force to replace it.", exits=1)


def load_pipeline(model: Path, gpu_id: int) -> Any:
    """Load a pipeline (folder or package), on GPU `gpu_id` when it is >= 0; a model that
    cannot be loaded ends the command with one line naming the folder and file."""
    from wasabi import msg

    from ..errors import ModelLoadError
    from ..workflows.loading import load_pipeline as load

    if gpu_id >= 0:
        msg.info(f"Using GPU {gpu_id}")
    try:
        return load(model, gpu_id)
    except ModelLoadError as err:
        fail_model(err)


def fail_model(err: Exception) -> Any:
    """End a command on a model that cannot be loaded (`ModelLoadError`): one unwrapped
    line (wasabi would wrap it) naming the folder, the file and the problem; exit 1."""
    typer.secho(f"✘ {err}", fg="red", err=True)
    raise typer.Exit(1) from None


def print_table(table: Any) -> None:
    """Print a `spacy_mtl.tables.Table` with wasabi."""
    from wasabi import msg

    if table.title is not None:
        msg.text(table.title, spaced=False)
    msg.table(
        list(table.rows),
        header=table.header,
        divider=table.header is not None,
        aligns=table.aligns,
        max_col=table.max_col,
    )
