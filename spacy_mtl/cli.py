"""The `spacy-mtl` command line: a thin typer layer over plain functions.

Each command parses its options, calls one function from the module that does the work,
and prints with wasabi. Heavy imports happen inside the commands, so `spacy-mtl --help`
stays fast.
"""

import typer

app = typer.Typer(
    name="spacy-mtl",
    help="Train, convert and run multi-group text classifiers for spaCy.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _callback() -> None:
    """spacy_mtl: one spaCy text classifier for several label groups."""
    # With a callback, a single command still needs its name: `spacy-mtl convert ...`.


def main() -> None:
    app()


if __name__ == "__main__":
    main()
