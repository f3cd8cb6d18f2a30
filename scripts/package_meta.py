"""The package's meta.json: configs/meta.json with the test scores of `evaluate` as its
`performance`, so `spacy package` (and a Hugging Face Hub card) shows them.

    python scripts/package_meta.py configs/meta.json metrics/metrics.json metrics/meta.json

The project does this instead of `spacy-mtl evaluate --write-meta`, which writes into the
pipeline folder: that folder is the evaluate step's own dependency, and a step that changes
its dependency would run again on every `spacy project run`.
"""

from pathlib import Path

import srsly
import typer

from spacy_mtl.workflows.report import performance_of


def main(
    meta_path: Path = typer.Argument(..., help="The package meta (configs/meta.json)."),
    metrics_path: Path = typer.Argument(..., help="evaluate's metrics.json."),
    output: Path = typer.Argument(..., help="The meta.json to write."),
    data: str = typer.Option("corpus/test", "--data", help="The corpus the scores are from."),
) -> None:
    meta = srsly.read_json(meta_path)
    meta.update(performance_of(srsly.read_json(metrics_path), data_name=data))
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output, meta)


if __name__ == "__main__":
    typer.run(main)
