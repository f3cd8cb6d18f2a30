"""Loading pipelines: damaged folders give one error naming folder + file; the schema
fingerprint refuses a cfg that no longer matches the weights; the one component finder."""

import shutil
from pathlib import Path
from typing import Any

import pytest
import spacy
import srsly
from conftest import GROUPS, make_nlp
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.errors import ComponentError, ModelLoadError
from spacy_mtl.workflows.loading import (
    docs_before,
    find_component,
    load_pipeline,
    mtl_component_names,
)


@pytest.fixture(scope="module")
def saved(saved_pipeline) -> Path:
    """The folder of conftest's saved pipeline (model/ and dev.spacy); tests copy before
    damaging anything."""
    return saved_pipeline[2]


def _copy(saved: Path, tmp_path: Path) -> Path:
    model = tmp_path / "model"
    shutil.copytree(saved / "model", model)
    return model


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _extra_bytes(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\x00\x01junk")


def _bad_json(path: Path) -> None:
    path.write_text('{"groups": ', encoding="utf8")


def _remove(path: Path) -> None:
    path.unlink()


DAMAGE = [
    ("truncated weights", "mtl_textcat/model", _truncate),
    ("extra bytes", "mtl_textcat/model", _extra_bytes),
    ("bad cfg", "mtl_textcat/cfg", _bad_json),
    ("bad config", "config.cfg", lambda p: p.write_text("[nlp\nlang = ", encoding="utf8")),
    ("missing config", "config.cfg", _remove),
    ("bad meta", "meta.json", _bad_json),
    ("truncated tokenizer", "tokenizer", _truncate),
]


@pytest.mark.parametrize("what,file,damage", DAMAGE, ids=[d[0] for d in DAMAGE])
def test_damaged_folder_names_folder_and_file(saved, tmp_path, what, file, damage) -> None:
    model = _copy(saved, tmp_path)
    damage(model / file)
    with pytest.raises(ModelLoadError) as info:
        load_pipeline(model)
    err = info.value
    assert err.folder == str(model)
    assert err.file == file
    assert str(model) in str(err) and file in str(err)
    assert "\n" not in str(err)


def test_missing_folder_and_file_instead_of_folder(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_pipeline(tmp_path / "nope")
    (tmp_path / "file").write_text("x", encoding="utf8")
    with pytest.raises(ModelLoadError, match="not a folder"):
        load_pipeline(tmp_path / "file")


def _edit_cfg(model: Path, edit) -> None:
    path = model / "mtl_textcat" / "cfg"
    cfg = srsly.read_json(path)
    edit(cfg)
    srsly.write_json(path, cfg)


def test_swapped_groups_in_cfg_are_refused(saved, tmp_path) -> None:
    model = _copy(saved, tmp_path)
    _edit_cfg(model, lambda cfg: cfg.update(groups=dict(reversed(list(cfg["groups"].items())))))
    with pytest.raises(ModelLoadError) as info:
        load_pipeline(model)
    assert info.value.file == "mtl_textcat/cfg"
    assert "edited or swapped" in str(info.value)


def test_swapped_labels_in_cfg_are_refused(saved, tmp_path) -> None:
    """Same groups, same width, two labels swapped: would mislabel silently."""
    model = _copy(saved, tmp_path)

    def swap(cfg):
        labels = cfg["groups"]["sentiment"]["labels"]
        labels[0], labels[2] = labels[2], labels[0]

    _edit_cfg(model, swap)
    with pytest.raises(ModelLoadError, match="edited or swapped"):
        load_pipeline(model)


def test_removed_label_in_cfg_is_refused(saved, tmp_path) -> None:
    model = _copy(saved, tmp_path)
    _edit_cfg(model, lambda cfg: cfg["groups"]["emotion"]["labels"].pop())
    with pytest.raises(ModelLoadError, match="5 outputs"):
        load_pipeline(model)


def test_threshold_edits_in_cfg_are_accepted(saved, tmp_path) -> None:
    """The fingerprint covers what the columns mean, not the decision settings."""
    model = _copy(saved, tmp_path)
    _edit_cfg(model, lambda cfg: cfg.update(threshold=0.3))
    assert find_component(load_pipeline(model)).schema.threshold == pytest.approx(0.3)


def test_fingerprint_round_trips_through_bytes(saved) -> None:
    nlp = spacy.load(saved / "model")
    comp = find_component(nlp)
    other = make_nlp(GROUPS)
    other.get_pipe("mtl_textcat").from_bytes(comp.to_bytes())
    assert other.get_pipe("mtl_textcat").schema.keys == comp.schema.keys


# Every command that takes a model, with arguments that are otherwise valid.
def _commands(model: Path, root: Path, tmp_path: Path):
    dev = str(root / "dev.spacy")
    raw = tmp_path / "raw.txt"
    raw.write_text("i love it\n", encoding="utf8")
    table = tmp_path / "in.csv"
    table.write_text("text\ni love it\n", encoding="utf8")
    return {
        "tune": ["tune", str(model), dev, str(tmp_path / "tuned")],
        "evaluate": ["evaluate", str(model), dev, "--output", str(tmp_path / "eval")],
        "distill-labels": [
            "distill-labels",
            str(model),
            str(raw),
            str(tmp_path / "d.spacy"),
        ],
        "predict": ["predict", str(model), str(table), str(tmp_path / "out.csv")],
        "quantize": ["quantize", str(model), str(tmp_path / "int8")],
        # The model is loaded before a Ray cluster would start: no Ray needed here.
        "predict-distributed": [
            "predict-distributed",
            str(model),
            str(table),
            str(tmp_path / "dist.csv"),
        ],
    }


COMMANDS = ["tune", "evaluate", "distill-labels", "predict", "quantize", "predict-distributed"]
CLI_DAMAGE = [
    ("truncated weights", "mtl_textcat/model", _truncate),
    ("extra bytes", "mtl_textcat/model", _extra_bytes),
    ("missing weights", "mtl_textcat/model", _remove),
    ("bad cfg", "mtl_textcat/cfg", _bad_json),
    ("missing cfg", "mtl_textcat/cfg", _remove),
    (
        "swapped groups",
        "mtl_textcat/cfg",
        lambda p: _edit_cfg(
            p.parent.parent,
            lambda cfg: cfg.update(groups=dict(reversed(list(cfg["groups"].items())))),
        ),
    ),
    ("missing meta", "meta.json", _remove),
    ("missing strings", "vocab/strings.json", _remove),
    ("bad strings", "vocab/strings.json", _bad_json),
    ("truncated lookups", "vocab/lookups.bin", _truncate),
]


# The loader and the one-line ending are shared: every damage through predict, and three
# kinds (a file spaCy reads, the fingerprint, a file spaCy would skip) through each command.
CLI_CASES = [(command, *damage) for damage in CLI_DAMAGE for command in ["predict"]] + [
    (command, *damage)
    for damage in CLI_DAMAGE
    if damage[0] in ("truncated weights", "swapped groups", "missing strings")
    for command in COMMANDS
    if command != "predict"
]


@pytest.mark.parametrize(
    "command,what,file,damage", CLI_CASES, ids=[f"{c[1]}-{c[0]}" for c in CLI_CASES]
)
def test_cli_damaged_model_prints_one_line(saved, tmp_path, command, what, file, damage) -> None:
    model = _copy(saved, tmp_path)
    damage(model / file)
    result = CliRunner().invoke(app, _commands(model, saved, tmp_path)[command])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert f"Cannot load the model {model}: {file}:" in lines[0]
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "int8").exists()


def test_model_saved_before_fingerprints_still_loads(saved, tmp_path) -> None:
    """Weights without the fingerprint attr (saved by an earlier version) load unchecked,
    but an output width that does not fit the cfg is still refused."""
    from spacy_mtl.pipeline import FINGERPRINT_ATTR

    nlp = spacy.load(saved / "model")
    del find_component(nlp).model.attrs[FINGERPRINT_ATTR]
    old = tmp_path / "old"
    nlp.to_disk(old)
    assert FINGERPRINT_ATTR not in find_component(spacy.load(old)).model.attrs
    loaded = load_pipeline(old)
    doc = loaded("i love this movie")
    assert doc.cats == pytest.approx(nlp("i love this movie").cats)
    _edit_cfg(old, lambda cfg: cfg["groups"]["emotion"]["labels"].pop())
    with pytest.raises(ModelLoadError, match="6 outputs in the weights, 5 labels in cfg"):
        load_pipeline(old)


def test_find_component_and_names(saved) -> None:
    nlp = spacy.load(saved / "model")
    assert find_component(nlp) is nlp.get_pipe("mtl_textcat")
    assert mtl_component_names(nlp) == ["mtl_textcat"]
    nlp.add_pipe("sentencizer")
    with pytest.raises(ComponentError, match="not an mtl_textcat"):
        find_component(nlp, "sentencizer")
    with pytest.raises(ComponentError, match="no component 'nope'"):
        find_component(nlp, "nope")
    blank = spacy.blank("en")
    with pytest.raises(ComponentError, match="no mtl_textcat component"):
        find_component(blank)


def test_docs_before_runs_only_earlier_components(saved) -> None:
    nlp = spacy.load(saved / "model")
    nlp.add_pipe("sentencizer", first=True)
    docs = list(docs_before(nlp, "mtl_textcat", ["a b. c d", "e"], batch_size=1))
    assert [d.text for d in docs] == ["a b. c d", "e"]
    assert docs[0].has_annotation("SENT_START")  # the sentencizer ran
    assert docs[0].cats == {}  # the component did not


# -- torch weights load without running code ----------------------------------------------


class _Marker:
    """Unpickled, it writes its marker file: what a crafted weights file would do."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> Any:
        return (exec, (f"open({self.path!r}, 'w').write('ran')",))


def _crafted_weights(marker: Path) -> bytes:
    import io

    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"weight": _Marker(marker)}, buffer)
    return buffer.getvalue()


def test_weights_only_loads_refuse_code_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import pickle

    torch = pytest.importorskip("torch")
    from spacy_mtl.trf.safe_load import weights_only_loads

    marker = tmp_path / "ran"
    data = _crafted_weights(marker)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    original = torch.load
    with weights_only_loads(), pytest.raises(pickle.UnpicklingError):
        torch.load(io.BytesIO(data), map_location="cpu")
    assert not marker.exists()
    assert torch.load is original  # put back
    # Plain weights load as before inside the block.
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)
    buffer.seek(0)
    with weights_only_loads():
        assert torch.equal(torch.load(buffer)["w"], torch.ones(2))


def test_a_crafted_transformer_pipeline_does_not_run_its_code(
    tmp_path: Path, tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hole: spacy-transformers reads a transformer's weights with torch.load and
    torch's default weights_only, which TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns off."""
    from conftest import make_examples

    nlp = make_nlp(GROUPS, bert=tiny_bert)
    nlp.initialize(lambda: make_examples(nlp))
    model = tmp_path / "evil"
    nlp.to_disk(model)
    marker = tmp_path / "ran"
    weights = srsly.msgpack_loads((model / "transformer" / "model").read_bytes())
    shim = srsly.msgpack_loads(weights["shims"][1][0])  # the HFShim's bytes
    shim["state"] = _crafted_weights(marker)
    weights["shims"][1][0] = srsly.msgpack_dumps(shim)
    (model / "transformer" / "model").write_bytes(srsly.msgpack_dumps(weights))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(ModelLoadError) as info:
        load_pipeline(model)
    assert not marker.exists()
    message = str(info.value)
    assert "transformer/model" in message and "weights_only=True" in message
    assert "exec" in message and "\n" not in message
