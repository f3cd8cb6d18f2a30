"""The benchmark scripts: smoke runs on tiny inputs. The modules they measure are tested in
test_batching.py and test_span_getters.py."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from conftest import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _run(script: str, args: List[str], out: Path) -> Dict[str, Any]:
    env = {**os.environ, "SPACY_MTL_DATA": str(shared_data_dir())}
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--threads", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf8"))


needs_data = pytest.mark.skipif(
    not (shared_data_dir() / "goemotions").exists()
    or not (shared_data_dir() / "davidson_hate_offensive").exists(),
    reason="the shared GoEmotions / Davidson data is not available",
)


@needs_data
def test_inference_script_smoke(tiny_bert: Path, tmp_path: Path) -> None:
    inference = _run(
        "inference.py",
        [
            *("--model", str(tiny_bert), "--n-texts", "12", "--n-long", "3"),
            *("--long-words", "25", "--long-batch-size", "2", "--batch-size", "4"),
            *("--step", "4", "--window", "32", "--scaling", "1x4,3x9", "--scale-texts", "8"),
            "--no-rss",
        ],
        tmp_path / "inference.json",
    )
    for section, names in (("short", {"ours", "limit_sorted", "separate"}), ("long", {"ours"})):
        contenders = inference[section]["contenders"]
        assert names <= set(contenders)
        for row in contenders.values():
            assert row["docs_per_s"] > 0 and row["padding"] >= 1.0
            assert row["cpu_seconds"] > 0
    short = inference["short"]
    assert short["ratios"]["ours_sorted/limit_sorted"] > 0
    assert short["cpu_ratios"]["ours/separate"] > 0
    assert short["paired_ratios"]["ours/limit"] > 0
    # Sorting across batches pads less than nlp.pipe's own batches.
    contenders = short["contenders"]
    assert contenders["ours_sorted"]["padding"] <= contenders["ours"]["padding"]
    assert "ours_wordpiece_sorted/limit_sorted" in inference["long"]["ratios"]
    points = inference["scaling"]["points"]
    assert [p["labels"] for p in points] == [4, 9]
    assert all(p["head_set_annotations_ms_per_doc"] > 0 for p in points)
    assert len(inference["load_start"]) == 3
    assert inference["args"]["n_texts"] == 12
    _check_page(tmp_path, ["## Targets", "### Short texts", "### Long texts", "### Cost in"])


@needs_data
def test_training_script_smoke(tiny_bert: Path, tmp_path: Path) -> None:
    training = _run(
        "training.py",
        [
            *("--model", str(tiny_bert), "--batch-size", "4", "--updates", "2"),
            *("--warmup", "0", "--no-rss", "--batching-docs", "40", "--batching-updates", "2"),
        ],
        tmp_path / "training.json",
    )
    batching = training["batching"]
    assert batching["docs"] == 40
    # Length buckets pad less than spaCy's batches of shuffled docs.
    assert (
        1.0
        <= batching["mixed_batcher_sorted"]["padded_over_real"]
        < batching["spacy_batch_by_sequence"]["padded_over_real"]
    )
    assert batching["mixed_batcher_sorted"]["median_s_per_update"] > 0
    assert set(training["sides"]) == {"ours", "torch", "torch_fused"}
    assert training["ratio_ours_torch"] > 0 and training["ratio_ours_torch_fused"] > 0
    assert training["batch_size"] == 4
    for side in training["sides"].values():
        assert side["median_s_per_update"] > 0
    _check_page(tmp_path, ["## Training", "training update"])


@needs_data
def test_quality_script_smoke(tiny_bert: Path, tmp_path: Path) -> None:
    quality = _run(
        "quality.py",
        [
            *("--model", str(tiny_bert), "--train-per-set", "6", "--test-per-set", "5"),
            *("--updates", "2", "--warmup", "1", "--batch-size", "4"),
            *("--runs", "ours_joint,builtin_joint,builtin_textcat_all_docs"),
        ],
        tmp_path / "quality.json",
    )
    runs = {row["run"]: row for row in quality["rows"]}
    assert set(runs["ours_joint"]["scores"]) == {"emotion", "sentiment", "offense"}
    assert runs["ours_joint"]["seed"] == 0
    assert runs["ours_joint"]["scores"]["offense"]["n_test"] == 5
    assert "E895" in runs["builtin_joint"]["error"]
    assert 0.0 <= runs["builtin_textcat_all_docs"]["scores"]["offense"]["macro_f"] <= 1.0
    assert quality["summary"]["ours_joint"]["offense"]["macro_f"]["n"] == 1
    assert quality["budget"]["updates"] == 2
    # The learning-rate schedule advances (a schedule left at step 0 trains nothing).
    assert runs["ours_joint"]["mean_learn_rate"] > 0
    _check_page(tmp_path, ["## Quality on partial labels", "fails: [E895]"])


def _check_page(results: Path, expected: List[str]) -> None:
    """make_table.py renders the results folder into a page with `expected` in it."""
    page = results / "benchmarks.md"
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "make_table.py"),
            *("--results", str(results), "--out", str(page)),
        ],
        check=True,
        capture_output=True,
    )
    text = page.read_text(encoding="utf8")
    assert "GENERATED by benchmarks/make_table.py" in text
    for heading in expected:
        assert heading in text, heading


@needs_data
def test_memory_worker_reports_peak_rss(tiny_bert: Path) -> None:
    env = {**os.environ, "SPACY_MTL_DATA": str(shared_data_dir())}
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "inference.py"),
            *("--worker", "ours", "--model", str(tiny_bert), "--rss-texts", "4"),
            *("--threads", "1", "--batch-size", "2"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["n_docs"] == 4
    assert row["peak_rss_mb"] >= row["rss_after_import_mb"] > 0


def test_make_table_without_results(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    subprocess.run(
        [
            sys.executable,
            str(BENCH / "make_table.py"),
            "--results",
            str(tmp_path),
            "--out",
            str(page),
        ],
        check=True,
        capture_output=True,
    )
    text = page.read_text(encoding="utf8")
    assert "No results yet" in text
    assert text.count("not measured") == 5


def test_make_table_quality_comparison() -> None:
    """The joint-vs-single/built-in differences are computed from the summary's means."""
    sys.path.insert(0, str(BENCH))
    try:
        import make_table
    finally:
        sys.path.remove(str(BENCH))

    def m(value: float) -> Dict[str, Any]:
        return {"mean": value, "sd": None, "n": 1}

    summary = {
        "ours_joint": {"offense": {"macro_f": m(0.70), "acc": m(0.90)}},
        "ours_joint_equal_compute": {"offense": {"macro_f": m(0.75), "acc": m(0.92)}},
        "ours_single_offense": {"offense": {"macro_f": m(0.72), "acc": m(0.91)}},
        "builtin_textcat_davidson": {"offense": {"macro_f": m(0.60), "acc": m(0.89)}},
    }
    lines = make_table.quality_comparison(summary)
    row = next(line for line in lines if line.startswith("| offense"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == [
        "offense",
        "F1 -0.020, acc -0.010",
        "F1 +0.030, acc +0.010",
        "F1 +0.100, acc +0.010",
    ]
    emotion = next(line for line in lines if line.startswith("| emotion"))
    assert emotion.count("–") == 3  # no runs for that group: nothing made up
    assert make_table.quality_comparison({}) == []
