"""`spacy-mtl quantize`: an int8 copy of a pipeline (workflows/quantize.py)."""

from pathlib import Path
from typing import Optional

import typer

from ._util import CODE, check_new_output, fail_model, import_code


def quantize_command(
    model: Path = typer.Argument(..., help="Trained pipeline: folder or package name."),
    output: Path = typer.Argument(..., help="Folder for the int8 pipeline (created)."),
    method: str = typer.Option(
        "onnx",
        "--method",
        "-m",
        help="onnx: ONNX Runtime int8 (the faster; needs spacy-mtl[onnx]). torch: torch "
        "dynamic int8 (no extra dependency).",
    ),
    code: Optional[Path] = CODE,
    force: bool = typer.Option(
        False, "--force", "-F", help="Replace OUTPUT if it exists and is not empty."
    ),
) -> None:
    """Write a copy of MODEL whose transformer runs in int8 on CPU (ONNX Runtime or torch
    dynamic quantization; the fp32 weights are kept). It loads with spacy.load, works with
    predict and spacy package. See docs/performance.md, "int8 on CPU".
    """
    from wasabi import msg

    from ..errors import ModelLoadError
    from ..workflows.quantize import METHODS, quantize_pipeline

    if method not in METHODS:
        msg.fail(f"Unknown --method {method!r}: use {' or '.join(METHODS)}.", exits=1)
    check_new_output(output, force, folder=True)
    import_code(code)
    # nlp.to_disk makes the folder, not its parents.
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = quantize_pipeline(
            model, output, method=method, overwrite=force, on_step=lambda line: msg.text(line)
        )
    except ModelLoadError as err:
        fail_model(err)
    except (ImportError, OSError) as err:
        msg.fail("Quantization stopped", str(err), exits=1)
    extra = f"; now mtl_transformer: {', '.join(done['converted'])}" if done["converted"] else ""
    components = ", ".join(done["components"])
    msg.good(f"Wrote {output}: {done['quantize']} transformer in {components}{extra}")
