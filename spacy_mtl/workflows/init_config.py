"""Write a training config for your own label groups: `spacy-mtl init-config`.

The config is one of the templates shipped in `spacy_mtl/configs/` (cpu: MiniLM; gpu:
roberta-base in mixed precision; student_tok2vec: a small Tok2Vec), with one
`[components.mtl_textcat.groups.<name>]` block per group. The groups come from convert
specs (name, kind and labels in the spec's order; `labels = []` where the spec leaves them
to the data, which the component then reads at initialize) or from a converted corpus
(groups, labels and kinds read from the docs' gold `doc.cats`; convert writes no schema file
next to the corpus, so the kinds are inferred and the config says so).

The template text is edited, not re-serialized, so its comments stay; the result is parsed
again and its groups compared with what was asked, so a label the config format cannot
hold is an error here rather than at `spacy train`.

DOCS: docs/configs.md
"""

import json
import textwrap
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from thinc.api import Config

from ..errors import SchemaError
from ..schema import KINDS, GroupSchema, group_evidence, split_key

PathLike = Union[str, Path]
TEMPLATES = ("cpu", "gpu", "student_tok2vec")
GROUPS_SECTION = "components.mtl_textcat.groups"
# The block of the transformer's weights; `model` replaces its `name` (or the `name` block
# that the CPU template resolves through spacy-mtl.minilm_path.v1).
MODEL_SECTION = "components.transformer.model"
_NOTE_WIDTH = 92


class InitConfigError(ValueError):
    """A config cannot be written: names the spec, corpus, group or file at fault."""


@dataclass(frozen=True)
class ConfigGroup:
    """One `[components.mtl_textcat.groups.<name>]` block as it is written.

    name (str): The group name.
    kind (str): 'multiclass' or 'multilabel'.
    labels (Tuple[str, ...]): The labels in order; empty: read from the data at initialize.
    weight (float): The group's loss weight.
    notes (Tuple[str, ...]): Comment paragraphs written above the settings (where the group
        came from, why a weight was chosen).
    kind_inferred (bool): The kind was inferred from a corpus, not given by a spec.
    parent (Optional[str]): The condition '{group}/{label}' of a conditional group (the
        spec's `parent`), written as the block's `parent`.
    """

    name: str
    kind: str
    labels: Tuple[str, ...] = ()
    weight: float = 1.0
    notes: Tuple[str, ...] = ()
    kind_inferred: bool = False
    parent: Optional[str] = None

    def lines(self) -> List[str]:
        """The block's body lines, without its header."""
        out = [f"# {line}" for note in self.notes for line in textwrap.wrap(note, _NOTE_WIDTH)]
        out.append(f"kind = {json.dumps(self.kind)}")
        # '$' starts a variable in a config value; '$$' is a literal one.
        labels = json.dumps(list(self.labels), ensure_ascii=False).replace("$", "$$")
        out.append(f"labels = {labels}")
        out.append(f"weight = {float(self.weight)!r}")
        if self.parent is not None:
            out.append(f"parent = {json.dumps(self.parent, ensure_ascii=False).replace('$', '$$')}")
        return out


def template_text(template: str = "cpu") -> str:
    """The text of a config template shipped with the package.

    template (str): 'cpu', 'gpu' or 'student_tok2vec'.
    RETURNS (str): The template, a complete config with no groups.
    """
    if template not in TEMPLATES:
        raise InitConfigError(f"Unknown config template {template!r}; use one of {TEMPLATES}.")
    return resources.files("spacy_mtl").joinpath("configs", f"{template}.cfg").read_text("utf-8")


def groups_from_specs(
    specs: Sequence[PathLike], *, only: Optional[Sequence[str]] = None
) -> List[ConfigGroup]:
    """The groups of one or more convert specs, in the specs' order.

    specs (Sequence[Union[str, Path]]): Convert spec files (YAML or JSON).
    only (Optional[Sequence[str]]): Keep only these groups (still in the specs' order).
    RETURNS (List[ConfigGroup]): One per group. A group in several specs must have the same
        kind and labels in each.
    """
    from ..data.convert import load_spec

    if not specs:
        raise InitConfigError("Give at least one convert spec (or --from-corpus).")
    groups: Dict[str, ConfigGroup] = {}
    origin: Dict[str, str] = {}
    for path in specs:
        spec = load_spec(path)
        for group in spec.groups:
            note = f"From {spec.source}"
            if group.source is not None:
                note += f", derived from group {group.source!r} by the spec's mapping"
            if group.parent is not None:
                note += f", conditional: applies only where {group.parent!r}"
            note += (
                "; labels in the spec's order."
                if group.labels
                else "; labels = []: read from the training data at initialize (sorted)."
            )
            block = ConfigGroup(
                group.name, group.kind, tuple(group.labels), notes=(note,), parent=group.parent
            )
            if group.name in groups:
                seen = groups[group.name]
                if (seen.kind, seen.labels) != (block.kind, block.labels):
                    raise InitConfigError(
                        f"Group {group.name!r} is in {origin[group.name]} ({seen.kind}, labels "
                        f"{list(seen.labels)}) and in {spec.source} ({block.kind}, labels "
                        f"{list(block.labels)}): one config group needs one kind and one "
                        "label set. Rename the group in one spec, or make them agree."
                    )
                if seen.parent != block.parent:
                    raise InitConfigError(
                        f"Group {group.name!r} has parent {seen.parent!r} in "
                        f"{origin[group.name]} and {block.parent!r} in {spec.source}: one "
                        "config group has one condition. Rename the group in one spec, or "
                        "make them agree."
                    )
                continue
            groups[group.name] = block
            origin[group.name] = spec.source
    return _select(list(groups.values()), only, ", ".join(str(p) for p in specs))


def groups_from_corpus(
    path: PathLike, *, only: Optional[Sequence[str]] = None
) -> List[ConfigGroup]:
    """The groups of a converted corpus: every '{group}/{label}' key of the docs' gold
    doc.cats. A group is multiclass when every doc annotated for it has exactly one label at
    1.0, else multilabel (`kind_inferred` is set and a note says why).

    path (Union[str, Path]): A .spacy file or a folder searched for them (hidden folders,
        such as convert's temporary ones, are skipped).
    only (Optional[Sequence[str]]): Keep only these groups (in name order).
    RETURNS (List[ConfigGroup]): One per group, sorted by name, labels sorted.
    """
    from spacy.tokens import DocBin

    path = Path(path)
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*.spacy")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    elif path.is_file():
        files = [path]
    else:
        raise InitConfigError(f"Corpus {path}: no such file or folder.")
    if not files:
        raise InitConfigError(f"Corpus {path}: no .spacy files in it (write them with convert).")
    cats: List[Dict[str, float]] = []
    for file in files:
        try:
            cats.extend(DocBin().from_disk(file).cats)
        except Exception as err:  # msgpack and zlib raise many types
            raise InitConfigError(f"Corpus file {file}: not a readable DocBin ({err}).") from err
    evidence = group_evidence(cats)
    if not evidence:
        raise InitConfigError(
            f"Corpus {path}: none of its {len(cats):,} docs has a '{{group}}/{{label}}' key in "
            "doc.cats, so there are no groups to write."
        )
    groups = []
    for e in evidence:
        if e.n_not_one:
            why = f"{e.n_not_one:,} of them have no or several labels at 1.0"
        else:
            why = "each has exactly one label at 1.0"
        note = (
            f"From {path}: {e.n_docs:,} docs annotated and {why}, so kind {e.kind!r} was "
            "inferred; check it."
        )
        groups.append(ConfigGroup(e.name, e.kind, e.labels, notes=(note,), kind_inferred=True))
    return _select(groups, only, str(path))


def render_config(
    groups: Sequence[ConfigGroup],
    *,
    template: str = "cpu",
    model: Optional[str] = None,
    steps: Optional[int] = None,
    header: Optional[str] = None,
) -> str:
    """The text of a complete, commented training config.

    groups (Sequence[ConfigGroup]): The label groups, in output order. None: the config
        leaves them to initialize, which infers them from the training data.
    template (str): 'cpu' (MiniLM), 'gpu' (roberta-base, mixed precision) or
        'student_tok2vec'.
    model (Optional[str]): The transformer's weights: a Hugging Face hub name or a local
        folder (written as given). Default: the template's.
    steps (Optional[int]): `[training] max_steps`; the warm-up, the decay, the gold-weight
        schedule and the evaluation interval follow it. Default: the template's.
    header (Optional[str]): Comment lines that replace the template's opening comment.
    RETURNS (str): The config text; `render_config(...)` parses with
        `thinc.api.Config().from_str`.
    """
    head, sections = _split_sections(template_text(template))
    if header is not None:
        head = header if header.endswith("\n\n") else header.rstrip("\n") + "\n\n"
    if model is not None:
        if MODEL_SECTION not in sections:
            raise InitConfigError(
                f"The {template!r} template has no transformer, so it takes no model name."
            )
        sections.pop(f"{MODEL_SECTION}.name", None)
        name = json.dumps(str(model), ensure_ascii=False).replace("$", "$$")
        _set_key(sections[MODEL_SECTION], "name", name)
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InitConfigError(f"steps must be a positive number of updates, got {steps!r}.")
        _set_key(sections["training"], "max_steps", str(steps))
    names = [g.name for g in groups]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InitConfigError(f"Group(s) {dupes} given more than once.")
    for group in groups:
        if group.kind not in KINDS:
            raise InitConfigError(f"Group {group.name!r}: kind must be one of {KINDS}.")
        if (
            not group.name
            or any(c in group.name for c in ".[]$")
            or group.name != group.name.strip()
        ):
            raise InitConfigError(
                f"Group {group.name!r}: a config section cannot be named so (no '.', '[', "
                "']', '$' or surrounding spaces); rename the group in the spec or the data."
            )
    text = head
    for title, body in sections.items():
        text += _section_text(title, body)
        if title == GROUPS_SECTION:
            for g in groups:
                text += _section_text(f"{GROUPS_SECTION}.{g.name}", [*g.lines(), ""])
    _check_groups(text, groups)
    return text


def make_config(groups: Sequence[ConfigGroup], **settings: object) -> Config:
    """`render_config` parsed (not interpolated): a thinc `Config` without the comments."""
    return Config().from_str(render_config(groups, **settings), interpolate=False)  # type: ignore[arg-type]


def write_config(text: str, output: PathLike, *, force: bool = False) -> Path:
    """Write a config file, creating its folder; an existing file needs `force`.

    text (str): The config text (`render_config`).
    output (Union[str, Path]): The file to write.
    force (bool): Overwrite an existing file.
    RETURNS (Path): The file written.
    """
    output = Path(output)
    if output.is_dir():
        raise InitConfigError(f"{output} is a folder; give the config file to write.")
    if output.exists() and not force:
        raise InitConfigError(f"{output} exists; pass --force to overwrite it.")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    return output


def _select(
    groups: List[ConfigGroup], only: Optional[Sequence[str]], source: str
) -> List[ConfigGroup]:
    if only is None:
        return groups
    known = [g.name for g in groups]
    unknown = [name for name in only if name not in known]
    if unknown:
        raise InitConfigError(f"Group(s) {unknown} are not in {source} (groups: {known}).")
    kept = [g for g in groups if g.name in only]
    names = {g.name for g in kept}
    for group in kept:
        parent = split_key(group.parent) if group.parent is not None else None
        if parent is not None and parent[0] not in names:
            raise InitConfigError(
                f"Group {group.name!r} is conditional on {group.parent!r}, but group "
                f"{parent[0]!r} is not among the groups kept ({sorted(names)}); keep it too."
            )
    return kept


def _split_sections(text: str) -> Tuple[str, Dict[str, List[str]]]:
    """(opening comment, {section title: body lines}) of a config text, in file order.

    A body keeps its comments and its trailing blank line, so joining them again gives the
    text back byte for byte.
    """
    lines = text.split("\n")
    head: List[str] = []
    sections: Dict[str, List[str]] = {}
    body = head
    for line in lines:
        if line.startswith("[") and line.rstrip().endswith("]"):
            body = sections.setdefault(line.strip()[1:-1], [])
        else:
            body.append(line)
    # `text` ends with a newline, so the last body ends with an empty string: drop it.
    body.pop()
    return "".join(f"{line}\n" for line in head), sections


def _section_text(title: str, body: List[str]) -> str:
    return f"[{title}]\n" + "".join(f"{line}\n" for line in body)


def _set_key(body: List[str], key: str, value: str) -> None:
    """Set `key = value` in a section body: in place, or as its first setting (after the
    block's `@registry` line)."""
    for i, line in enumerate(body):
        if "=" in line and line.split("=", 1)[0].strip() == key:
            body[i] = f"{key} = {value}"
            return
    at = next(i for i, line in enumerate(body) if not line.startswith("#"))
    if body[at].startswith("@"):
        at += 1
    body.insert(at, f"{key} = {value}")


def _check_groups(text: str, groups: Sequence[ConfigGroup]) -> None:
    """Parse the written config and compare its groups with the ones asked for."""
    try:
        # Interpolated, as spaCy reads it: a '${' in a label would be read as a variable.
        config = Config().from_str(text)
    except Exception as err:  # thinc and configparser raise many types
        raise InitConfigError(f"The written config does not parse: {err}") from err
    written = config["components"]["mtl_textcat"].get("groups", {})
    for group in groups:
        block = written.get(group.name, {})
        got = (
            block.get("kind"),
            tuple(block.get("labels", ())),
            block.get("weight"),
            block.get("parent"),
        )
        if got != (group.kind, group.labels, float(group.weight), group.parent):
            raise InitConfigError(
                f"Group {group.name!r}: the config would read back {got}, not "
                f"{(group.kind, group.labels, float(group.weight), group.parent)}; a label "
                "(or the parent) may hold text the config format changes (e.g. '${'). "
                "Rename it in the data."
            )
    if list(written) != [g.name for g in groups]:
        raise InitConfigError(
            f"The config's groups read back as {list(written)}, not {[g.name for g in groups]}."
        )
    try:
        # The component's own rules: a parent is an earlier group and names one of its labels.
        GroupSchema.from_config(written, allow_empty=True)
    except SchemaError as err:
        raise InitConfigError(f"The written config's groups are not valid: {err}") from err


__all__ = [
    "TEMPLATES",
    "ConfigGroup",
    "InitConfigError",
    "groups_from_corpus",
    "groups_from_specs",
    "make_config",
    "render_config",
    "template_text",
    "write_config",
]
