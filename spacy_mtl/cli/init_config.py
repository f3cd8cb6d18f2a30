"""`spacy-mtl init-config`: a training config for your groups (workflows/init_config.py)."""

from pathlib import Path
from typing import List, Optional

import typer


def init_config_command(
    specs: Optional[List[Path]] = typer.Argument(
        None,
        help="Convert spec(s) (YAML or JSON) whose groups the config gets, in order; none "
        "with --from-corpus.",
        show_default=False,
    ),
    output: Path = typer.Argument(..., help="The config file to write (folders are created)."),
    model: Optional[str] = typer.Option(
        None,
        "--model",
        help="Transformer: a Hugging Face hub name or a local folder (default: MiniLM on the "
        "CPU, roberta-base with --gpu).",
    ),
    gpu: bool = typer.Option(
        False, "--gpu", help="The GPU defaults (configs/gpu.cfg): roberta-base, fp16, 6,000 steps."
    ),
    steps: Optional[int] = typer.Option(
        None,
        "--steps",
        min=1,
        help="training.max_steps: the warm-up, decay and eval interval follow it.",
    ),
    from_corpus: Optional[Path] = typer.Option(
        None,
        "--from-corpus",
        help="Read the groups from a converted corpus (.spacy files) instead of specs; kinds "
        "are inferred from the gold.",
    ),
    groups: Optional[str] = typer.Option(
        None, "--groups", help="Only these groups, comma-separated (e.g. emotion,offense)."
    ),
    force: bool = typer.Option(False, "--force", "-F", help="Overwrite OUTPUT."),
) -> None:
    """Write a training config for your label groups (spacy_mtl/configs/ templates).
    See docs/configs.md.
    """
    from wasabi import msg

    from ..data.convert import ConvertError
    from ..workflows.init_config import (
        InitConfigError,
        groups_from_corpus,
        groups_from_specs,
        render_config,
        write_config,
    )

    specs = specs or []
    only = [name.strip() for name in groups.split(",") if name.strip()] if groups else None
    try:
        if from_corpus is not None:
            if specs:
                raise InitConfigError("Give convert specs or --from-corpus, not both.")
            found = groups_from_corpus(from_corpus, only=only)
        else:
            found = groups_from_specs(specs, only=only)
        text = render_config(found, template="gpu" if gpu else "cpu", model=model, steps=steps)
        write_config(text, output, force=force)
    except (InitConfigError, ConvertError) as err:
        msg.fail("No config written", str(err), exits=1)
    rows = [(g.name, g.kind, len(g.labels) or "[] (at initialize)", g.weight) for g in found]
    msg.table(rows, header=("group", "kind", "labels", "weight"), divider=True)
    inferred = [f"{g.name}: {g.kind}" for g in found if g.kind_inferred]
    if inferred:
        msg.warn(
            f"Kinds inferred from {from_corpus} (multiclass: every annotated doc has exactly "
            "one label): " + ", ".join(inferred),
            f"Check them in {output} ([components.mtl_textcat.groups.<group>] kind).",
        )
    msg.good(f"Wrote {output}")
    msg.text(
        f"Train: python -m spacy train {output} --output training --paths.train "
        "corpus/train --paths.dev corpus/dev"
    )
