"""`spacy-mtl distill-labels`: teacher logits stored with a corpus (workflows/distill.py)."""

from pathlib import Path
from typing import Optional

import typer

from ._util import BATCH_SIZE, CODE, GPU_ID, check_new_output, import_code, load_pipeline


def distill_labels_command(
    teachers: list[Path] = typer.Argument(
        ..., help="Trained teacher pipeline(s): folders or package names; later ones win."
    ),
    corpus: Path = typer.Argument(..., help=".spacy file or folder, or unlabelled .txt / .jsonl"),
    output: Path = typer.Argument(..., help="The .spacy file to write (folders created)."),
    component: str = typer.Option(
        "mtl_textcat", "--component", help="The teachers' mtl_textcat component."
    ),
    batch_size: int = BATCH_SIZE,
    limit: int = typer.Option(0, "--limit", min=0, help="Read at most N docs (0: all)."),
    code: Optional[Path] = CODE,
    gpu_id: int = GPU_ID,
    force: bool = typer.Option(False, "--force", "-F", help="Replace OUTPUT if it exists."),
) -> None:
    """Store each teacher's logits with every doc (doc._.mtl_teacher) for a student to learn
    from; gold doc.cats are kept. The arguments are in the order of `predict`: the
    pipeline(s), the data, the output. See docs/training.md, "Distillation".
    """
    from wasabi import msg

    from ..workflows.distill import check_corpus, check_output, distill_corpus

    try:
        check_corpus(corpus)
        check_output(corpus, output)
    except (FileNotFoundError, ValueError) as err:
        msg.fail(str(err), exits=1)
    check_new_output(output, force, folder=False)
    import_code(code)
    loaded = [load_pipeline(teacher, gpu_id) for teacher in teachers]
    try:
        n = distill_corpus(
            loaded,
            corpus,
            output,
            component=component,
            batch_size=batch_size,
            limit=limit,
            warn=msg.warn,
        )
    except (ValueError, OSError) as err:
        msg.fail("Distillation stopped; nothing was written", str(err), exits=1)
    msg.good(f"Wrote {n} docs with teacher logits to {output}")
