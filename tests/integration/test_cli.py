"""The `spacy-mtl` command line: flags mean the same everywhere; tune and evaluate end to end.

The convert, predict and distill-labels commands are tested with their workflows
(test_convert.py, test_predict.py, test_distill.py).
"""

import re
from pathlib import Path
from typing import Dict, Set, Tuple

import pytest
import spacy
import srsly
import typer
from typer.testing import CliRunner

from spacy_mtl.cli import _print_table, app
from spacy_mtl.tables import Table


def _linked_files(report: Path):
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text(encoding="utf8"))


def test_each_short_flag_has_one_meaning() -> None:
    """`-c` is `--code` in every command that has it, and so on for each short flag."""
    command = typer.main.get_command(app)
    commands = command.commands  # type: ignore[attr-defined]
    assert {"convert", "tune", "evaluate", "predict", "distill-labels"} <= set(commands)
    meanings: Dict[str, Set[Tuple[str, ...]]] = {}
    for sub in commands.values():
        for param in sub.params:
            if param.param_type_name != "option":
                continue
            longs = tuple(sorted(o for o in param.opts if o.startswith("--")))
            for short in (o for o in param.opts if not o.startswith("--")):
                meanings.setdefault(short, set()).add(longs)
    clashes = {short: longs for short, longs in meanings.items() if len(longs) > 1}
    assert not clashes
    assert meanings["-c"] == {("--code",)}
    assert meanings["-g"] == {("--gpu-id",)}
    assert meanings["-F"] == {("--force",)}
    assert meanings["-n"] == {("--n-process",)}


def test_every_output_is_positional_but_evaluates() -> None:
    """OUTPUT is the last argument of every command, except `evaluate`, whose output is
    optional and the option `-o/--output`, as in `spacy evaluate`; `serve` writes nothing."""
    command = typer.main.get_command(app)
    commands = command.commands  # type: ignore[attr-defined]
    for name, sub in commands.items():
        if name == "serve":
            continue
        options = {
            o for param in sub.params if param.param_type_name == "option" for o in param.opts
        }
        arguments = [param.name for param in sub.params if param.param_type_name == "argument"]
        if name == "evaluate":
            assert {"--output", "-o"} <= options
            assert arguments == ["model_dir", "data_path"]
            continue
        assert "--output" not in options and "-o" not in options, name
        assert arguments[-1] in {"output", "output_dir"}, (name, arguments)


def test_print_table_shows_title_header_and_rows(capsys: pytest.CaptureFixture) -> None:
    _print_table(Table([("a", "1"), ("b", "22")], header=("name", "n"), title="counts"))
    out = capsys.readouterr().out
    assert out.index("counts") < out.index("name") < out.index("22")


runner = CliRunner()


def test_cli_evaluate(saved_pipeline, tmp_path) -> None:
    _, _, root = saved_pipeline
    out = tmp_path / "metrics"
    result = runner.invoke(
        app, ["evaluate", str(root / "model"), str(root / "dev.spacy"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "mtl_score" in srsly.read_json(out / "metrics.json")
    assert all((out / link).stat().st_size > 0 for link in _linked_files(out / "report.md"))
    assert "emotion" in result.output


def test_cli_tune(saved_pipeline, tmp_path) -> None:
    _, _, root = saved_pipeline
    out = tmp_path / "tuned"
    result = runner.invoke(
        app,
        [
            "tune",
            str(root / "model"),
            str(root),  # a folder of .spacy files works too
            str(out),
            "--min-threshold",
            "0.2",
            "--max-threshold",
            "0.8",
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    # The report lies beside the tuned folder, so a package built from it does not carry it.
    assert not (out / "tune.json").exists()
    report = srsly.read_json(tmp_path / "tuned-tune.json")
    assert set(report["groups"]) == {"sentiment", "emotion"}
    emotion = report["groups"]["emotion"]
    assert {"ece_before", "ece_after", "macro_f_before", "macro_f_after"} <= set(emotion)
    tuned = spacy.load(out).get_pipe("mtl_textcat").schema
    assert tuned["sentiment"].temperature == pytest.approx(
        report["groups"]["sentiment"]["temperature"]
    )
    assert all(0.2 <= t <= 0.8 for t in tuned["emotion"].thresholds.values())
    assert "ECE" in result.output


@pytest.mark.parametrize("command", ["tune", "evaluate"])
def test_cli_bad_paths_fail_clearly(saved_pipeline, tmp_path, command) -> None:
    _, _, root = saved_pipeline
    args = [command, str(root / "model"), str(tmp_path / "missing.spacy")]
    args += [str(tmp_path / "out")] if command == "tune" else ["-o", str(tmp_path / "m")]
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert "not found" in result.output
    assert "missing.spacy" in result.output
    args[1] = str(tmp_path / "no_model")
    args[2] = str(root / "dev.spacy")
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert result.exit_code == 1
    assert "no such folder or installed pipeline package" in result.output
    assert "no_model" in result.output


def test_cli_tune_unknown_component(saved_pipeline, tmp_path) -> None:
    _, _, root = saved_pipeline
    args = ["tune", str(root / "model"), str(root / "dev.spacy"), str(tmp_path)]
    result = runner.invoke(app, [*args, "--component", "nope"])
    assert result.exit_code != 0
    assert "no component 'nope'" in result.output


def test_cli_evaluate_write_meta_and_progress_lines(saved_pipeline, tmp_path) -> None:
    import shutil

    _, _, root = saved_pipeline
    model = tmp_path / "model"
    shutil.copytree(root / "model", model)
    before = srsly.read_json(model / "meta.json").get("performance", {})
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(model),
            str(root / "dev.spacy"),
            "-o",
            str(tmp_path / "m"),
            "--write-meta",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = srsly.read_json(tmp_path / "m" / "metrics.json")
    performance = srsly.read_json(model / "meta.json")["performance"]
    assert performance != before
    assert performance["mtl_score"] == pytest.approx(metrics["mtl_score"])
    # A package name (no folder) is refused before anything runs.
    refused = runner.invoke(
        app, ["evaluate", "en_no_such_package", str(root / "dev.spacy"), "--write-meta"]
    )
    assert refused.exit_code == 1 and "--write-meta needs a pipeline folder" in " ".join(
        refused.output.split()
    )
