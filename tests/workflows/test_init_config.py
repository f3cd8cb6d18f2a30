"""`spacy-mtl init-config`: a config for a user's own groups, from specs or a corpus; the
shipped templates; the demo's configs generated from them; `spacy init config -p
mtl_textcat`, whose component has no groups and infers them at initialize."""

import importlib.util
import re
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List

import pytest
import spacy
import srsly
from conftest import TOK2VEC_MODEL, TRAIN_DATA, make_examples
from spacy.tokens import DocBin
from spacy.training import Corpus
from spacy.training.initialize import init_nlp
from spacy.util import load_config
from thinc.api import Config, ConfigValidationError
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.errors import MTLWarning, SchemaError
from spacy_mtl.schema import MULTICLASS, MULTILABEL
from spacy_mtl.workflows.init_config import (
    TEMPLATES,
    ConfigGroup,
    InitConfigError,
    _section_text,
    _split_sections,
    groups_from_corpus,
    groups_from_specs,
    make_config,
    render_config,
    template_text,
    write_config,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
GOEMOTIONS = ROOT / "assets" / "specs" / "goemotions.yml"
DAVIDSON = ROOT / "assets" / "specs" / "davidson.yml"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _corpus(path: Path, data: List[tuple] = TRAIN_DATA) -> Path:
    nlp = spacy.blank("en")
    doc_bin = DocBin()
    for text, cats in data:
        doc = nlp.make_doc(text)
        doc.cats = cats
        doc_bin.add(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(path)
    return path


def _groups(config: Config) -> Dict[str, Dict[str, Any]]:
    return config["components"]["mtl_textcat"]["groups"]


def _tiny(config: Config, tiny_bert: Path, corpus: Path) -> Config:
    """The config with the tiny BERT, on the CPU in fp32, trained on `corpus`."""
    model = config["components"]["transformer"]["model"]
    model["name"] = str(tiny_bert)
    model["mixed_precision"] = False
    model["grad_scaler_config"] = {}
    config["paths"]["train"] = config["paths"]["dev"] = str(corpus)
    config["system"]["gpu_allocator"] = None
    return config


# -- templates and the demo's configs ---------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_templates_ship_without_groups(template: str) -> None:
    text = template_text(template)
    head, sections = _split_sections(text)
    # The text editor gives every byte back.
    assert head + "".join(_section_text(t, b) for t, b in sections.items()) == text
    assert "components.mtl_textcat.groups" in sections
    assert not [t for t in sections if t.startswith("components.mtl_textcat.groups.")]
    config = Config().from_str(text)
    assert _groups(config) == {}
    assert (
        config["training"]["optimizer"]["learn_rate"]["total_steps"]
        == (config["training"]["max_steps"])
    )


def test_templates_are_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert "configs/*.cfg" in pyproject["tool"]["setuptools"]["package-data"]["spacy_mtl"]
    shipped = {p.stem for p in (ROOT / "spacy_mtl" / "configs").glob("*.cfg")}
    assert shipped == set(TEMPLATES)


def test_demo_configs_are_generated_from_the_templates() -> None:
    """configs/*.cfg are exactly what scripts/make_configs.py writes from the templates and
    the demo's specs: one source of truth (rerun the script after editing a template)."""
    rendered = _script("make_configs").render_demo_configs()
    assert set(rendered) == {p.stem for p in (ROOT / "configs").glob("*.cfg")}
    for name, text in rendered.items():
        assert (ROOT / "configs" / f"{name}.cfg").read_text(encoding="utf-8") == text, name


def test_demo_config_is_the_template_plus_groups() -> None:
    """Apart from the opening comment and the group blocks, configs/cpu.cfg is the template."""
    demo_head, demo = _split_sections((ROOT / "configs" / "cpu.cfg").read_text("utf-8"))
    _, template = _split_sections(template_text("cpu"))
    groups = [t for t in demo if t.startswith("components.mtl_textcat.groups.")]
    assert groups == [
        f"components.mtl_textcat.groups.{n}" for n in ("emotion", "sentiment", "offense")
    ]
    assert {t: b for t, b in demo.items() if t not in groups} == template
    assert demo_head.startswith("# spacy_mtl demo")


# -- groups from specs and corpora ------------------------------------------------------


def test_groups_from_specs_in_spec_order() -> None:
    groups = groups_from_specs([GOEMOTIONS, DAVIDSON])
    assert [(g.name, g.kind, len(g.labels)) for g in groups] == [
        ("emotion", MULTILABEL, 28),
        ("sentiment", MULTILABEL, 4),
        ("ekman", MULTILABEL, 7),
        ("offense", MULTICLASS, 3),
    ]
    assert groups[3].labels == ("hate", "offensive", "neither")
    assert not any(g.kind_inferred for g in groups)
    assert "derived from group 'emotion'" in groups[1].notes[0]
    picked = groups_from_specs([GOEMOTIONS, DAVIDSON], only=["offense", "emotion"])
    assert [g.name for g in picked] == ["emotion", "offense"]
    with pytest.raises(InitConfigError, match="'toxic'"):
        groups_from_specs([DAVIDSON], only=["toxic"])


def test_groups_from_specs_inferred_labels_and_conflicts(tmp_path: Path) -> None:
    spec = tmp_path / "topic.yml"
    srsly.write_yaml(
        spec, {"format": "csv", "groups": {"topic": {"kind": "multiclass", "column": "t"}}}
    )
    (group,) = groups_from_specs([spec])
    assert (group.kind, group.labels) == (MULTICLASS, ())
    config = make_config([group], template="student_tok2vec")
    assert _groups(config)["topic"]["labels"] == []
    # The same group in two specs: fine when they agree, an error naming both when not.
    assert len(groups_from_specs([spec, spec])) == 1
    other = tmp_path / "other.yml"
    srsly.write_yaml(
        other, {"format": "csv", "groups": {"topic": {"kind": "multilabel", "column": "t"}}}
    )
    with pytest.raises(InitConfigError, match=r"topic\.yml") as err:
        groups_from_specs([spec, other])
    assert "other.yml" in str(err.value)


def test_groups_from_corpus_infers_kinds(tmp_path: Path) -> None:
    """sentiment: every annotated doc has exactly one positive (multiclass); emotion: a doc
    with none (multilabel). Hidden folders (convert's temporary ones) are skipped."""
    _corpus(tmp_path / "corpus" / "train" / "a.spacy")
    _corpus(tmp_path / "corpus" / ".spacy-mtl-convert-1" / "b.spacy", [("x", {"junk/x": 1.0})])
    groups = groups_from_corpus(tmp_path / "corpus")
    assert [(g.name, g.kind, g.labels) for g in groups] == [
        ("emotion", MULTILABEL, ("anger", "joy", "sadness")),
        ("sentiment", MULTICLASS, ("negative", "neutral", "positive")),
    ]
    assert all(g.kind_inferred for g in groups)
    assert "1 of them have no or several labels" in groups[0].notes[0]
    assert "each has exactly one label" in groups[1].notes[0]
    text = render_config(groups)
    assert "kind 'multiclass' was inferred" in text


@pytest.mark.parametrize(
    "setup,message",
    [
        (lambda p: p, "no .spacy files"),
        (lambda p: p / "missing", "no such file"),
        (lambda p: _corpus(p / "c.spacy", [("x", {})]), "none of its 1 docs"),
        (lambda p: (p / "bad.spacy").write_bytes(b"not msgpack") and p / "bad.spacy", "bad.spacy"),
    ],
)
def test_groups_from_corpus_errors(tmp_path: Path, setup: Any, message: str) -> None:
    with pytest.raises(InitConfigError, match=re.escape(message)):
        groups_from_corpus(setup(tmp_path))


# -- rendering and writing --------------------------------------------------------------

GROUPS = [
    ConfigGroup("sentiment", MULTICLASS, ("negative", "neutral", "positive")),
    ConfigGroup("emotion", MULTILABEL, (), weight=2.0, notes=("Read at initialize.",)),
]


def test_render_model_steps_and_groups() -> None:
    cpu = make_config(GROUPS, model="my/model", steps=40)
    assert cpu["components"]["transformer"]["model"]["name"] == "my/model"
    assert cpu["training"]["max_steps"] == 40
    assert list(_groups(cpu)) == ["sentiment", "emotion"]
    assert _groups(cpu)["emotion"] == {"kind": MULTILABEL, "labels": [], "weight": 2.0}
    assert "# Read at initialize." in render_config(GROUPS)
    gpu = make_config(GROUPS, template="gpu", model="/models/local folder")
    assert gpu["components"]["transformer"]["model"]["name"] == "/models/local folder"
    assert make_config(GROUPS, template="gpu")["training"]["max_steps"] == 6000
    default = make_config(GROUPS)["components"]["transformer"]["model"]["name"]
    assert default == {"@misc": "spacy-mtl.minilm_path.v1"}


@pytest.mark.parametrize("label", ["a$b", "${paths.train}", "émotion", 'say "hi"', "x/y"])
def test_render_keeps_labels_as_written(label: str) -> None:
    config = Config().from_str(render_config([ConfigGroup("g", MULTILABEL, (label, "z"))]))
    assert _groups(config)["g"]["labels"] == [label, "z"]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"template": "student_tok2vec", "model": "x"}, "no transformer"),
        ({"template": "tpu"}, "Unknown config template"),
        ({"steps": 0}, "positive"),
        ({"groups": [ConfigGroup("a.b", MULTICLASS, ("x",))]}, "'a.b'"),
        ({"groups": [GROUPS[0], GROUPS[0]]}, "more than once"),
    ],
)
def test_render_errors(kwargs: Dict[str, Any], message: str) -> None:
    groups = kwargs.pop("groups", GROUPS)
    with pytest.raises(InitConfigError, match=re.escape(message)):
        render_config(groups, **kwargs)


def test_write_config_refuses_to_overwrite(tmp_path: Path) -> None:
    output = write_config("a", tmp_path / "new" / "deep" / "x.cfg")
    assert output.read_text() == "a"
    with pytest.raises(InitConfigError, match="--force"):
        write_config("b", output)
    assert output.read_text() == "a"
    write_config("b", output, force=True)
    assert output.read_text() == "b"
    with pytest.raises(InitConfigError, match="folder"):
        write_config("c", tmp_path)


# -- the written config trains ----------------------------------------------------------


@pytest.mark.parametrize("template", ["cpu", "gpu"])
def test_written_config_initializes_and_trains(
    template: str, tmp_path: Path, tiny_bert: Path
) -> None:
    """init-config from a spec with the tiny BERT as --model: load_config, init_nlp and two
    updates; the schema is the spec's (kinds and label order), labels = [] read at init."""
    spec = tmp_path / "spec.yml"
    srsly.write_yaml(
        spec,
        {
            "format": "csv",
            "groups": {
                "sentiment": {
                    "kind": "multiclass",
                    "column": "s",
                    "labels": ["positive", "neutral", "negative"],
                },
                "emotion": {"kind": "multilabel", "column": "e", "delimiter": ","},
            },
        },
    )
    corpus = _corpus(tmp_path / "train.spacy")
    text = render_config(
        groups_from_specs([spec]), template=template, model=str(tiny_bert), steps=10
    )
    path = write_config(text, tmp_path / "out" / "config.cfg")
    config = _tiny(load_config(path), tiny_bert, corpus)
    nlp = init_nlp(config)
    schema = nlp.get_pipe("mtl_textcat").schema
    assert [(g.name, g.kind) for g in schema] == [
        ("sentiment", MULTICLASS),
        ("emotion", MULTILABEL),
    ]
    assert schema["sentiment"].labels == ("positive", "neutral", "negative")
    assert schema["emotion"].labels == ("anger", "joy", "sadness")
    examples = list(Corpus(str(corpus))(nlp))
    # nlp.create_optimizer() resolves the optimizer block alone, where ${training.max_steps}
    # cannot be filled; interpolating nlp.config first is the documented way round.
    with pytest.raises(ConfigValidationError, match="total_steps"):
        nlp.create_optimizer()
    nlp.config = nlp.config.interpolate()
    optimizer = nlp.resume_training()
    optimizer.step_schedules()  # past step 0, whose warm-up rate is 0
    losses = [nlp.update(examples, sgd=optimizer, drop=0.0)["mtl_textcat"] for _ in range(2)]
    assert all(loss > 0.0 for loss in losses)


def test_template_as_is_infers_groups(tmp_path: Path, tiny_bert: Path) -> None:
    """A template copied without groups: initialize infers them, with one warning."""
    corpus = _corpus(tmp_path / "train.spacy")
    config = _tiny(Config().from_str(template_text("cpu"), interpolate=False), tiny_bert, corpus)
    with pytest.warns(MTLWarning, match="inferred 2") as record:
        nlp = init_nlp(config)
    assert len([w for w in record if issubclass(w.category, MTLWarning)]) == 1
    schema = nlp.get_pipe("mtl_textcat").schema
    assert [(g.name, g.kind) for g in schema] == [
        ("emotion", MULTILABEL),
        ("sentiment", MULTICLASS),
    ]


# -- the CLI ------------------------------------------------------------------------------


def test_cli_init_config(tmp_path: Path) -> None:
    runner = CliRunner()
    output = tmp_path / "configs" / "mine.cfg"
    result = runner.invoke(
        app,
        [
            "init-config",
            str(GOEMOTIONS),
            str(DAVIDSON),
            str(output),
            "--steps",
            "300",
            "--groups",
            "emotion,offense",
        ],
    )
    assert result.exit_code == 0, result.output
    config = load_config(output, interpolate=True)
    assert list(_groups(config)) == ["emotion", "offense"]
    assert config["training"]["max_steps"] == 300
    assert config["training"]["optimizer"]["learn_rate"]["total_steps"] == 300
    again = runner.invoke(app, ["init-config", str(DAVIDSON), str(output)])
    assert again.exit_code == 1 and "--force" in again.output
    forced = runner.invoke(app, ["init-config", str(DAVIDSON), str(output), "--force", "--gpu"])
    assert forced.exit_code == 0, forced.output
    gpu = load_config(output)
    assert list(_groups(gpu)) == ["offense"] and gpu["training"]["max_steps"] == 6000


def test_cli_init_config_from_corpus(tmp_path: Path) -> None:
    runner = CliRunner()
    corpus = _corpus(tmp_path / "corpus" / "train.spacy").parent
    output = tmp_path / "from_corpus.cfg"
    result = runner.invoke(
        app, ["init-config", "--from-corpus", str(corpus), str(output), "--model", "my/bert"]
    )
    assert result.exit_code == 0, result.output
    assert "Kinds inferred" in result.output and "sentiment: multiclass" in result.output
    config = load_config(output)
    assert config["components"]["transformer"]["model"]["name"] == "my/bert"
    assert _groups(config)["sentiment"]["kind"] == MULTICLASS
    both = runner.invoke(
        app, ["init-config", str(DAVIDSON), "--from-corpus", str(corpus), str(tmp_path / "x.cfg")]
    )
    assert both.exit_code == 1 and "not both" in both.output


# -- spacy init config -p mtl_textcat -------------------------------------------------------


def test_spacy_init_config_then_initialize_infers_groups(tmp_path: Path) -> None:
    """spaCy's own `init config -p mtl_textcat` gives a component without groups; with a
    tok2vec of its own it initializes, infers groups and kinds from the gold, and trains."""
    from spacy.cli.init_config import init_config

    config = init_config(lang="en", pipeline=["mtl_textcat"], optimize="efficiency")
    assert _groups(config) == {}
    corpus = _corpus(tmp_path / "train.spacy")
    config["paths"]["train"] = config["paths"]["dev"] = str(corpus)
    # Its default model listens to a transformer that spaCy's quickstart does not add.
    with pytest.raises(ValueError, match="no component before it"), warnings.catch_warnings():
        warnings.simplefilter("ignore", MTLWarning)
        init_nlp(config)
    config["components"]["mtl_textcat"]["model"] = TOK2VEC_MODEL
    with pytest.warns(MTLWarning, match="inferred 2") as record:
        nlp = init_nlp(config)
    message = str(record[0].message)
    assert "emotion (multilabel, 3 labels" in message and "sentiment (multiclass" in message
    assert "[components.mtl_textcat.groups.<group>]" in message
    component = nlp.get_pipe("mtl_textcat")
    assert [(g.name, g.kind) for g in component.schema] == [
        ("emotion", MULTILABEL),
        ("sentiment", MULTICLASS),
    ]
    examples = make_examples(nlp)
    optimizer = nlp.resume_training()
    first = nlp.update(examples, sgd=optimizer, drop=0.0)["mtl_textcat"]
    for _ in range(5):
        last = nlp.update(examples, sgd=optimizer, drop=0.0)["mtl_textcat"]
    assert 0.0 < last < first
    # The inferred groups travel with the component, though the config still has none.
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    assert reloaded.get_pipe("mtl_textcat").schema == component.schema
    doc = reloaded("i love this movie")
    assert set(doc._.mtl_scores) == {"emotion", "sentiment"}


def test_no_groups_and_no_keys_is_an_error(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("mtl_textcat", config={"model": TOK2VEC_MODEL})
    examples = make_examples(nlp, [("no cats here", {})])
    with pytest.raises(SchemaError, match="none of the training examples"):
        nlp.initialize(lambda: examples)
