"""The `spacy-mtl` command line: a thin typer layer over plain functions.

Each command parses its options, calls one function from the module that does the work,
and prints with wasabi. Heavy imports happen inside the commands, so `spacy-mtl --help`
stays fast. A module per command (or family: predict and predict-distributed) holds its
function; `_util` holds the options and helpers they share; this module registers them on
the app, in the order `spacy-mtl --help` lists them.
"""

import typer

from ._util import print_table as _print_table  # noqa: F401  (imported under this name)
from .convert import convert_command
from .distill import distill_labels_command
from .evaluate import evaluate_command
from .init_config import init_config_command
from .predict import predict_command, predict_distributed_command
from .quantize import quantize_command
from .serve import serve_command
from .tune import tune_command, tune_report_path

__all__ = [
    "app",
    "convert_command",
    "distill_labels_command",
    "evaluate_command",
    "init_config_command",
    "main",
    "predict_command",
    "predict_distributed_command",
    "quantize_command",
    "serve_command",
    "tune_command",
    "tune_report_path",
]

# rich_markup_mode=None as in spaCy's own app: plain click help, where the "[onnx]" of
# `pip install "spacy-mtl[onnx]"` is text, not a rich markup tag that vanishes.
app = typer.Typer(
    name="spacy-mtl",
    help="Train, convert and run multi-group text classifiers for spaCy.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spacy-mtl {_package_version()}")
        raise typer.Exit()


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spacy-mtl")
    except PackageNotFoundError:  # run from a source tree that was never installed
        from .. import __version__

        return __version__


@app.callback()
def _callback(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """spacy_mtl: one spaCy text classifier for several label groups."""
    # With a callback, a single command still needs its name: `spacy-mtl convert ...`.


for _name, _command in (
    ("convert", convert_command),
    ("init-config", init_config_command),
    ("tune", tune_command),
    ("evaluate", evaluate_command),
    ("predict", predict_command),
    ("predict-distributed", predict_distributed_command),
    ("distill-labels", distill_labels_command),
    ("quantize", quantize_command),
    ("serve", serve_command),
):
    app.command(_name)(_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
