"""`spacy-mtl` speaks spaCy's command line: each flag our commands share with spaCy's is
spelled as spaCy spells it, and behaves as there (--code, --force, --output, --version).
"""

import shutil
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest
import spacy
import srsly
import typer
from typer.testing import CliRunner

from spacy_mtl.cli import app

runner = CliRunner()

# A concept -> the parameter names spaCy's commands give it, and the name ours give it.
SPACY_NAMES: Dict[str, Set[str]] = {
    "code": {"code_path", "code_paths"},
    "gpu_id": {"use_gpu"},
    "force": {"force", "force_overwrite"},
    "n_process": {"n_process"},
    "output": {"output", "output_path", "output_file"},
    "batch_size": {"batch_size"},
}
# The commands that load a pipeline; each takes --code.
LOADING = [
    "tune",
    "evaluate",
    "predict",
    "predict-distributed",
    "distill-labels",
    "quantize",
    "serve",
]


# Duck-typed: typer ships its own copy of click, whose classes are not click's.
def _commands(group: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    """(name, command) of every command of a click group, "init config" for a subgroup's."""
    for name, sub in group.commands.items():
        if hasattr(sub, "commands"):
            yield from _commands(sub, f"{prefix}{name} ")
        else:
            yield prefix + name, sub


def _options(command: Any) -> Iterator[Any]:
    return (p for p in command.params if p.param_type_name == "option")


def _split(option: Any) -> Tuple[Set[str], Set[str]]:
    names = set(option.opts)
    return {n for n in names if n.startswith("--")}, {n for n in names if not n.startswith("--")}


def _spacy_commands() -> Dict[str, Any]:
    import spacy.cli  # noqa: F401  (registers the commands on the app)
    from spacy.cli._util import app as spacy_app

    return dict(_commands(typer.main.get_command(spacy_app)))


def _our_commands() -> Dict[str, Any]:
    return dict(_commands(typer.main.get_command(app)))


def _spacy_spelling() -> Dict[str, Tuple[Set[str], Set[str]]]:
    """Each concept's long and short names common to all of spaCy's commands with it."""
    spelled: Dict[str, Tuple[Set[str], Set[str]]] = {}
    for concept, names in SPACY_NAMES.items():
        found = [
            _split(option)
            for command in _spacy_commands().values()
            for option in _options(command)
            if option.name in names
        ]
        assert found, f"no spaCy command has an option for {concept}"
        longs = set.intersection(*(longs for longs, _ in found))
        shorts = set.intersection(*(shorts for _, shorts in found))
        spelled[concept] = (longs, shorts)
    return spelled


def test_spacy_spells_each_concept_one_way() -> None:
    """What the comparison below rests on (spaCy 3.8): one long and one short name."""
    assert _spacy_spelling() == {
        "code": ({"--code"}, {"-c"}),
        "gpu_id": ({"--gpu-id"}, {"-g"}),
        "force": ({"--force"}, {"-F"}),
        "n_process": ({"--n-process"}, {"-n"}),
        "output": ({"--output"}, {"-o"}),
        "batch_size": ({"--batch-size"}, {"-b"}),
    }


def test_shared_flags_are_spelled_as_in_spacy() -> None:
    spelled = _spacy_spelling()
    seen: Set[str] = set()
    for name, command in _our_commands().items():
        for option in _options(command):
            if option.name in spelled:
                seen.add(option.name)
                longs, shorts = _split(option)
                assert (longs, shorts) == spelled[option.name], (name, option.opts)
    assert seen == set(spelled)  # every concept is checked somewhere


def test_spacy_short_flags_mean_here_what_they_mean_in_spacy() -> None:
    """`-c` is never `--component`, `-F` never `--output-format` and so on: a short name
    spaCy gives a shared concept means that concept here, or means what it means in some
    spaCy command (`-n` is `--name` in `spacy package` too)."""
    spelled = _spacy_spelling()
    reserved = {short: longs for longs, shorts in spelled.values() for short in shorts}
    in_spacy = {
        (short, long)
        for command in _spacy_commands().values()
        for option in _options(command)
        for long in _split(option)[0]
        for short in _split(option)[1]
    }
    for name, command in _our_commands().items():
        for option in _options(command):
            longs, shorts = _split(option)
            for short in shorts & set(reserved):
                assert longs == reserved[short] or all(
                    (short, long) in in_spacy for long in longs
                ), (name, option.opts)


def test_component_has_no_short_flag() -> None:
    for name, command in _our_commands().items():
        for option in _options(command):
            if "--component" in option.opts:
                assert option.opts == ["--component"], name


@pytest.mark.parametrize("name", LOADING)
def test_every_command_that_loads_a_pipeline_takes_code(name: str) -> None:
    options = {o for option in _options(_our_commands()[name]) for o in option.opts}
    assert {"--code", "-c"} <= options


def test_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"spacy-mtl {version('spacy-mtl')}"


@pytest.mark.parametrize(
    "name,extra",
    [("predict-distributed", "spacy-mtl[distributed]"), ("quantize", "spacy-mtl[onnx]")],
)
def test_help_keeps_square_brackets(name: str, extra: str) -> None:
    result = runner.invoke(app, [name, "--help"], terminal_width=100)
    assert result.exit_code == 0
    # click wraps the help, at hyphens too: compare without the line breaks.
    assert extra in "".join(result.output.split())


# -- --code: the file is imported before the pipeline loads ------------------------------


@pytest.fixture
def custom(saved_pipeline, tmp_path: Path) -> Tuple[Path, Path, Path, Path]:
    """A copy of the trained pipeline with one more component, whose factory only the
    --code file registers; (model, code file, marker the file writes, gold corpus)."""
    _, _, root = saved_pipeline
    model = tmp_path / "custom-model"
    shutil.copytree(root / "model", model)
    factory = f"cli_code_{uuid.uuid4().hex}"  # new per test: registries are global
    config = spacy.util.load_config(model / "config.cfg", interpolate=False)
    config["nlp"]["pipeline"] = [*config["nlp"]["pipeline"], "marker"]
    config["components"]["marker"] = {"factory": factory}
    config.to_disk(model / "config.cfg")
    marker = tmp_path / "imported.txt"
    code = tmp_path / "functions.py"
    code.write_text(
        "from pathlib import Path\n"
        "from spacy.language import Language\n\n\n"
        f"@Language.component({factory!r})\n"
        "def marker(doc):\n"
        "    return doc\n\n\n"
        f"with open({str(marker)!r}, 'a') as file:\n"
        "    file.write('imported\\n')\n",
        encoding="utf8",
    )
    return model, code, marker, root / "dev.spacy"


def _invocations(model: Path, dev: Path, tmp_path: Path) -> Dict[str, List[str]]:
    table = tmp_path / "in.csv"
    table.write_text("text\ni love it\nwhat a sad day\n", encoding="utf8")
    return {
        "tune": ["tune", str(model), str(dev), str(tmp_path / "tuned")],
        "evaluate": ["evaluate", str(model), str(dev)],
        "predict": ["predict", str(model), str(table), str(tmp_path / "out.csv")],
        "distill-labels": ["distill-labels", str(model), str(dev), str(tmp_path / "d.spacy")],
    }


@pytest.mark.parametrize("name", ["tune", "evaluate", "predict", "distill-labels"])
def test_code_file_is_imported_before_loading(custom, tmp_path: Path, name: str) -> None:
    model, code, marker, dev = custom
    args = _invocations(model, dev, tmp_path)[name]
    without = runner.invoke(app, args)
    assert without.exit_code == 1
    assert "cli_code_" in " ".join(without.output.split())  # the unknown factory's name
    assert not marker.exists()
    result = runner.invoke(app, [*args, "--code", str(code)])
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "imported\n"


def test_quantize_imports_code_before_loading(custom, tmp_path: Path) -> None:
    """The Tok2Vec pipeline has no transformer to quantize: with --code it loads and is
    refused for that, without it it does not load at all."""
    model, code, marker, _ = custom
    args = ["quantize", str(model), str(tmp_path / "int8"), "--method", "torch"]
    without = runner.invoke(app, args)
    assert without.exit_code == 1 and "cli_code_" in " ".join(without.output.split())
    result = runner.invoke(app, [*args, "-c", str(code)])
    assert result.exit_code == 1 and marker.exists()
    assert "no transformer component to quantize" in " ".join(result.output.split())


def test_distributed_workers_import_code(custom) -> None:
    """Each Ray worker imports --code itself (a worker is its own process): the worker
    class loads the custom pipeline given the file, without Ray."""
    from spacy_mtl.workflows.distributed.worker import MTLPredictor

    model, code, marker, _ = custom
    worker = MTLPredictor(str(model), text_column="text", layout="raw", code=str(code))
    assert "marker" in worker.nlp.pipe_names and marker.exists()
    scores, empty, _ = worker.predict(["i love it", ""])
    assert scores[0] is not None and scores[1] is None and empty == 1


def test_missing_code_file_fails_clearly(saved_pipeline, tmp_path: Path) -> None:
    _, _, root = saved_pipeline
    missing = tmp_path / "nope.py"
    args = ["evaluate", str(root / "model"), str(root / "dev.spacy"), "-c", str(missing)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "Path to Python code not found" in text and "nope.py" in text


# -- outputs: refused without --force, parents created ------------------------------------


def test_tune_refuses_an_existing_output_without_force(saved_pipeline, tmp_path: Path) -> None:
    _, _, root = saved_pipeline
    out = tmp_path / "a" / "b" / "tuned"  # parents that do not exist yet
    args = ["tune", str(root / "model"), str(root / "dev.spacy"), str(out)]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = out.with_name("tuned-tune.json")
    assert (out / "config.cfg").exists() and report.exists()
    report.write_text("{}", encoding="utf8")
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "already exists; use -F/--force" in " ".join(again.output.split())
    assert srsly.read_json(report) == {}  # untouched
    forced = runner.invoke(app, [*args, "-F"])
    assert forced.exit_code == 0, forced.output
    assert "groups" in srsly.read_json(report)


def test_tune_output_may_be_an_empty_folder_not_a_file(saved_pipeline, tmp_path: Path) -> None:
    _, _, root = saved_pipeline
    args = ["tune", str(root / "model"), str(root / "dev.spacy")]
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, [*args, str(tmp_path / "empty")])
    assert result.exit_code == 0, result.output
    (tmp_path / "file").write_text("x", encoding="utf8")
    result = runner.invoke(app, [*args, str(tmp_path / "file"), "--force"])
    assert result.exit_code == 1 and "is not a folder" in " ".join(result.output.split())


def test_distill_labels_refuses_an_existing_output_without_force(
    saved_pipeline, tmp_path: Path
) -> None:
    _, _, root = saved_pipeline
    out = tmp_path / "new" / "d.spacy"
    args = ["distill-labels", str(root / "model"), str(root / "dev.spacy"), str(out)]
    assert runner.invoke(app, args).exit_code == 0
    size = out.stat().st_size
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "--force" in again.output
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert out.stat().st_size == size


def test_quantize_refuses_an_existing_output_before_loading(tmp_path: Path) -> None:
    """Refused at once: the model named does not even exist."""
    (tmp_path / "int8").mkdir()
    (tmp_path / "int8" / "x").write_text("x", encoding="utf8")
    args = ["quantize", str(tmp_path / "no-model"), str(tmp_path / "int8"), "-m", "torch"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "-F/--force" in " ".join(result.output.split())


def test_evaluate_without_output_prints_scores_only(
    saved_pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, root = saved_pipeline
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["evaluate", str(root / "model"), str(root / "dev.spacy")])
    assert result.exit_code == 0, result.output
    assert "mtl_score" in result.output and "emotion" in result.output
    assert "Saved" not in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a default folder


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own, from DataContext
def test_predict_distributed_imports_code_in_the_driver_and_each_worker(
    custom, tmp_path: Path
) -> None:
    """On a local Ray cluster: the marker is written once by this process and once by the
    worker's process, and the custom pipeline predicts."""
    pytest.importorskip("ray.data")
    model, code, marker, _ = custom
    table = tmp_path / "in.csv"
    table.write_text("text\ni love it\nwhat a sad day\n", encoding="utf8")
    out = tmp_path / "out.csv"
    args = ["predict-distributed", str(model), str(table), str(out), "--workers", "1"]
    result = runner.invoke(app, [*args, "--local-cpus", "2", "--code", str(code)])
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "imported\n" * 2
    assert out.read_text(encoding="utf8").count("\n") == 3
