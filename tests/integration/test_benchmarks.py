"""The benchmark scripts: smoke runs on tiny inputs. The modules they measure are tested in
test_batching.py and test_span_getters.py."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy
import pytest
from conftest import shared_data_dir

from spacy_mtl.trf.onednn import onednn_available

ROOT = Path(__file__).resolve().parents[2]
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
            *("--rounds", "2", "--latency-texts", "6", "--no-rss"),
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
    assert short["ratios"]["ours/limit_sorted"] > 0
    assert short["cpu_ratios"]["ours/separate"] > 0
    assert short["paired_ratios"]["ours_stock/limit"] > 0
    # The default path against the sorted loop in whole passes, one ratio per round.
    rounds = short["rounds"]["ours/limit_sorted"]
    assert len(rounds["wall"]) == len(rounds["cpu"]) == 2
    # Each round over its own sample, of the size of the turns' sample.
    assert rounds["docs_per_round"] == [12, 12] and rounds["fresh_texts"] is True
    assert short["round_ratios"]["ours/limit_sorted"] > 0
    assert "ours/limit_sorted" in inference["long"]["round_ratios"]
    # The reference pair (the loop with the same oneDNN kernels) has its own rounds, over
    # samples neither pair has used.
    reference = short["rounds"]["ours/limit_sorted_onednn"]
    assert len(reference["wall"]) == 2 and reference["docs_per_round"] == [12, 12]
    assert short["round_ratios"]["ours/limit_sorted_onednn"] > 0
    assert "ours/limit_sorted_onednn" in inference["long"]["round_ratios"]
    # Plain nlp.pipe as shipped sorts: it pads less than the stock transformer's
    # input-order batches (not as little as the loop here: windows of 32 wordpieces cut
    # these texts, and the loop sorts windows, ours docs).
    contenders = short["contenders"]
    assert contenders["ours"]["padding"] < contenders["ours_stock"]["padding"]
    assert "ours/limit_sorted" in inference["long"]["ratios"]
    latency = inference["latency"]
    assert latency["n_docs"] == 6
    for side in ("ours", "raw_hf", "raw_hf_onednn"):
        assert 0 < latency[side]["p50_ms"] <= latency[side]["p95_ms"]
    assert latency["ratio_p95"] > 0 and latency["paired_median_ratio"] > 0
    assert latency["ratio_p50_onednn"] > 0 and latency["paired_median_ratio_onednn"] > 0
    points = inference["scaling"]["points"]
    assert [p["labels"] for p in points] == [4, 9]
    assert all(p["head_set_annotations_ms_per_doc"] > 0 for p in points)
    assert len(inference["load_start"]) == 3
    assert inference["args"]["n_texts"] == 12
    _check_page(
        tmp_path,
        [
            "## Targets",
            "### Short texts",
            "### Long texts",
            "### Single-doc latency",
            "### Cost in",
        ],
    )


@pytest.mark.skipif(not onednn_available(), reason="this torch has no oneDNN kernels (not x86)")
def test_linear_kernels_script_smoke(tiny_bert: Path, tmp_path: Path) -> None:
    """Every kernel timed per layer shape and row count, with its difference from torch's;
    whole forward passes of the model and its oneDNN copy."""
    result = _run(
        "linear_kernels.py",
        ["--model", str(tiny_bert), "--rows", "3,20", "--batches", "2x8", "--calls", "3"],
        tmp_path / "linear_kernels.json",
    )
    shapes = {(row["in"], row["out"]) for row in result["layers"]}
    assert shapes == {(32, 32), (32, 64), (64, 32)}  # the tiny BERT's linear layers
    assert len(result["layers"]) == 2 * len(shapes)
    for row in result["layers"]:
        assert set(row["ms"]) == {"torch", "onednn_packed", "mkldnn_tensor", "mkl_packed"}
        assert all(value > 0 for value in row["ms"].values())
        assert max(row["max_abs_diff"].values()) < 1e-4
    (forward,) = result["forward"]
    assert (forward["docs"], forward["wordpieces"]) == (2, 8)
    assert forward["speedup"] > 0 and forward["max_abs_diff"] < 1e-4


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
    # Trained as configs/cpu.cfg trains: head lr_scale, mixed batcher over both corpora.
    assert quality["budget"]["head_lr_scale"] == _shipped_lr_scale()
    assert quality["budget"]["setting"] == "goemotions_davidson"
    # ...and the shipped groups' loss settings (offense weight 3 in cpu.cfg).
    assert quality["budget"]["group_loss"]["offense"]["weight"] == 3.0
    seen = runs["ours_joint"]["docs_per_dataset"]
    # 8 of the 12 docs (6 per corpus) in the first two batches: both corpora are in them.
    assert set(seen) == {"davidson", "goemotions"} and sum(seen.values()) == 8
    assert set(runs["builtin_textcat_all_docs"]["docs_per_dataset"]) <= {"davidson", "goemotions"}
    _check_page(
        tmp_path,
        [
            "## Quality on partial labels: (a) GoEmotions + Davidson",
            "fails: [E895]",
            "Not run yet (benchmarks/results/quality_tweeteval.json)",
        ],
    )


@needs_data
def test_hierarchy_script_smoke(tiny_bert: Path, tmp_path: Path) -> None:
    result = _run(
        "hierarchy.py",
        [
            *("--model", str(tiny_bert), "--train", "40", "--test", "30", "--updates", "3"),
            *("--warmup", "1", "--batch-size", "4"),
            *("--runs", "joint_groups,single_negative,single_negative_equal"),
        ],
        tmp_path / "hierarchy.json",
    )
    runs = {row["run"]: row for row in result["rows"]}
    joint = runs["joint_groups"]
    assert set(joint["scores"]) == {"emotional", "polarity", "negative"}
    assert joint["scores"]["polarity"]["e2e_macro_f"] is not None
    assert joint["scores"]["emotional"]["e2e_macro_f"] is None  # not conditional
    assert runs["single_negative"]["updates"] == 3 and runs["single_negative_equal"]["updates"] == 1
    # A level's own model trains on the docs annotated for it only, and tests on them.
    data = result["data"]
    assert runs["single_negative"]["n_train"] == data["train"]["negative"]
    assert joint["scores"]["negative"]["n_test"] == data["test"]["negative"]
    assert (
        data["train"]["emotional"] == 40 >= data["train"]["polarity"] >= data["train"]["negative"]
    )
    # strata by groups: the batches were drawn from the three strata
    assert set(joint["docs_seen"]) <= {
        "emotional",
        "emotional+polarity",
        "emotional+negative+polarity",
    }
    _check_page(tmp_path, ["## Label hierarchies", "`joint_groups`", "Fewer than 3 seeds"])


@needs_data
def test_hierarchy_levels_follow_the_sentiment_mapping() -> None:
    hierarchy = _bench_module("hierarchy")
    items = hierarchy.read_hierarchy(shared_data_dir(), "dev")
    assert len(items) == 5426
    for item in items[:500]:
        if item.cats["emotional/yes"] == 0.0:
            assert not any(key.startswith(("polarity/", "negative/")) for key in item.cats)
        elif item.cats.get("polarity/negative") != 1.0:
            assert not any(key.startswith("negative/") for key in item.cats)
        else:
            assert any(item.cats[k] == 1.0 for k in item.cats if k.startswith("negative/"))


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


@needs_data
def test_quantize_script_smoke(tiny_bert: Path, tmp_path: Path) -> None:
    import spacy
    from conftest import GROUPS, make_examples
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    nlp.add_pipe("mtl_transformer", name="transformer", config={"model": {"name": str(tiny_bert)}})
    nlp.add_pipe("mtl_textcat", config={"groups": GROUPS})
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    nlp.update(make_examples(nlp), sgd=optimizer)
    nlp.to_disk(tmp_path / "model")
    DocBin(docs=[eg.reference for eg in make_examples(nlp)]).to_disk(tmp_path / "gold.spacy")
    variants = "fp32,torch,onnx" if importlib.util.find_spec("onnxruntime") else "fp32,torch"
    quantize = _run(
        "quantize.py",
        [
            *("--pipeline", str(tmp_path / "model"), "--model", str(tiny_bert)),
            *("--test", str(tmp_path / "gold.spacy"), "--dev", str(tmp_path / "gold.spacy")),
            *("--variants", variants, "--n-texts", "12", "--rounds", "2", "--batch-size", "4"),
        ],
        tmp_path / "quantize.json",
    )
    names = variants.split(",")
    assert list(quantize["f1"]["variants"]) == names
    assert quantize["f1"]["groups"] == list(GROUPS)
    for row in quantize["f1"]["variants"].values():
        assert set(row["tuned_thresholds"]["macro_f"]) == set(GROUPS)
        assert "retuned" in row and "delta" in row["tuned_thresholds"]
    contenders = quantize["speed"]["contenders"]
    assert list(contenders) == ["limit_sorted", *names]
    for row in contenders.values():
        assert row["docs_per_s"] > 0 and len(row["wall"]) == 2 and row["x_sorted_loop"] > 0
    _check_page(tmp_path, ["## int8 on CPU", "int8 (`spacy-mtl quantize`"])


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
    assert text.count("not measured") == 8  # one per target


def test_make_table_quality_comparison() -> None:
    """The joint-vs-single/built-in differences are computed from the summary's means."""
    make_table = _bench_module("make_table")

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


def test_make_table_verdict_basis() -> None:
    """A pair with rounds is judged by its rounds (wall and CPU, the lower); one without,
    by the lowest of its turns' readings."""
    make_table = _bench_module("make_table")

    section = {
        "ratios": {"ours/loop": 0.80, "a/b": 0.90},
        "paired_ratios": {"a/b": 0.85},
        "cpu_ratios": {"ours/loop": 0.82, "a/b": 0.95},
        "round_ratios": {"ours/loop": 0.97},
        "round_cpu_ratios": {"ours/loop": 0.96},
    }
    assert make_table.worst_ratio(section, "ours/loop") == 0.96
    assert make_table.worst_ratio(section, "a/b") == 0.85
    assert make_table.worst_ratio(section, "c/d") is None
    assert make_table.worst_ratio(None, "a/b") is None
    # The basis first; the turns after it, labelled.
    assert make_table.ratio_text(section, "ours/loop") == (
        "0.970 rounds wall, 0.960 rounds CPU, turns: 0.800 wall, 0.820 CPU"
    )
    assert make_table.ratio_text(section, "a/b") == "0.900 wall, 0.850 paired, 0.950 CPU"


def test_run_rounds_gives_each_pair_samples_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pairs share a contender: each pair runs on its own share of the samples, so no
    pass meets text that contender has seen; which side goes first alternates."""
    monkeypatch.setattr(sys, "argv", ["inference.py"])
    inference = _bench_module("inference")
    calls: List[tuple] = []

    def stream(name: str) -> Any:
        def run(texts: List[str]) -> Any:
            calls.append((name, tuple(texts)))
            return iter(texts)

        return run

    built = {name: {"stream": stream(name)} for name in ("ours", "loop", "ref")}
    samples = [[f"text {i}"] for i in range(4)]
    out = inference.run_rounds(built, samples, [("ours", "loop"), ("ours", "ref")])
    assert calls == [
        ("ours", ("text 0",)),
        ("loop", ("text 0",)),
        ("loop", ("text 1",)),
        ("ours", ("text 1",)),
        ("ours", ("text 2",)),
        ("ref", ("text 2",)),
        ("ref", ("text 3",)),
        ("ours", ("text 3",)),
    ]
    assert out["ours/loop"]["docs_per_round"] == out["ours/ref"]["docs_per_round"] == [1, 1]


def test_make_table_shows_the_same_kernels_reference() -> None:
    """The short/long targets' reading adds ours against the loop with the same oneDNN
    kernels where measured; the verdict stays on the plain loop."""
    make_table = _bench_module("make_table")

    section = {
        "ratios": {"ours/limit_sorted": 1.5, "ours/limit_sorted_onednn": 0.9},
        "round_ratios": {"ours/limit_sorted": 1.6, "ours/limit_sorted_onednn": 0.97},
        "round_cpu_ratios": {"ours/limit_sorted": 1.62, "ours/limit_sorted_onednn": 0.96},
    }
    text = make_table.with_same_kernels(section, "reading")
    assert text == (
        "reading; vs the loop with the same oneDNN kernels (reference): 0.970 rounds wall, "
        "0.960 rounds CPU, turns: 0.900 wall"
    )
    assert make_table.with_same_kernels({"ratios": {}}, "reading") == "reading"
    assert make_table.worst_ratio(section, "ours/limit_sorted") == 1.6


@needs_data
def test_fresh_short_texts_are_disjoint_and_unseen() -> None:
    harness = _bench_module("harness")
    root = shared_data_dir()
    turns = set(harness.short_texts(root, 400))
    samples = harness.fresh_short_texts(root, 400, 3)
    assert [len(sample) for sample in samples] == [400, 400, 400]
    seen = [set(sample) for sample in samples]
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2]) and not (seen[0] & seen[2])
    # Training rows only: (almost) none of the turns' test texts; a few short texts such
    # as "Thank you!" occur in both splits.
    assert len(turns & set().union(*seen)) < 5
    with pytest.raises(ValueError, match="not enough training texts"):
        harness.fresh_short_texts(root, 20000, 3)


def test_make_table_equal_compute_verdict() -> None:
    """Joint at equal compute vs one model per group: a difference counts outside the
    seeds' noise, one seed gives no verdict."""
    make_table = _bench_module("make_table")

    def m(mean: float, sd: Optional[float], n: int = 3) -> Dict[str, Any]:
        return {"mean": mean, "sd": sd, "n": n}

    summary = {
        "ours_joint_equal_compute": {
            "emotion": {"macro_f": m(0.50, 0.01)},
            "sentiment": {"macro_f": m(0.60, 0.03)},
            "offense": {"macro_f": m(0.70, 0.01)},
        },
        "ours_single_emotion": {"emotion": {"macro_f": m(0.45, 0.01)}},
        "ours_single_sentiment": {"sentiment": {"macro_f": m(0.62, 0.03)}},
        "ours_single_offense": {"offense": {"macro_f": m(0.75, None, 1)}},
    }
    lines = make_table.equal_compute_verdict(summary)
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert "joint ahead: met" in rows["emotion"]  # +.05 > sqrt(2)·.01
    assert "tie inside the noise (±0.042): met" in rows["sentiment"]  # −.02, noise .042
    assert "one seed: no verdict" in rows["offense"]
    summary["ours_single_offense"]["offense"]["macro_f"] = m(0.75, 0.01)
    lines = make_table.equal_compute_verdict(summary)
    assert any("offense" in line and "joint behind: NOT met" in line for line in lines)
    assert make_table.equal_compute_verdict({}) == []


# -- quality setting (b): TweetEval ------------------------------------------------------


def _bench_module(name: str) -> Any:
    """Import a module of benchmarks/ (they import each other as top-level modules)."""
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


def _write_task(root: Path, task: str, texts: List[str], labels: List[str]) -> None:
    folder = root / task
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mapping.txt").write_text("0\tcalm\n1\tangry\n2\tglad", encoding="utf8")
    (folder / "train_text.txt").write_text("".join(t + "\n" for t in texts), encoding="utf8")
    (folder / "train_labels.txt").write_text("".join(x + "\n" for x in labels), encoding="utf8")


def test_tweeteval_reader_aligns_lines_and_maps_labels(tmp_path: Path) -> None:
    tweeteval = _bench_module("tweeteval")
    # A tweet with a Unicode line separator inside: it must stay one line (one label).
    texts = ["so glad today ", "what\u2028a day", "@user meh"]
    _write_task(tmp_path, "mood", texts, ["2", "1 ", "0"])
    items = tweeteval.read_split(tmp_path, "mood", "train")
    assert [it.text for it in items] == texts
    assert [it.source for it in items] == ["mood"] * 3
    assert items[0].cats == {"mood/calm": 0.0, "mood/angry": 0.0, "mood/glad": 1.0}
    assert items[1].cats == {"mood/calm": 0.0, "mood/angry": 1.0, "mood/glad": 0.0}
    assert items[2].cats == {"mood/calm": 1.0, "mood/angry": 0.0, "mood/glad": 0.0}
    assert tweeteval.groups(tmp_path, ["mood"]) == {
        "mood": {"kind": "multiclass", "labels": ["calm", "angry", "glad"]}
    }


def test_tweeteval_reader_errors_name_the_files(tmp_path: Path) -> None:
    tweeteval = _bench_module("tweeteval")
    _write_task(tmp_path, "mood", ["one", "two", "three"], ["0", "1"])
    with pytest.raises(tweeteval.TweetEvalError) as err:
        tweeteval.read_split(tmp_path, "mood", "train")
    message = str(err.value)
    assert str(tmp_path / "mood" / "train_text.txt") in message
    assert str(tmp_path / "mood" / "train_labels.txt") in message
    assert "3 lines" in message and "has 2" in message
    _write_task(tmp_path, "bad", ["one", "two"], ["0", "3"])
    with pytest.raises(tweeteval.TweetEvalError, match=r"train_labels.txt, line 2: label '3'"):
        tweeteval.read_split(tmp_path, "bad", "train")
    with pytest.raises(tweeteval.TweetEvalError, match="not found"):
        tweeteval.read_split(tmp_path, "mood", "test")


@pytest.mark.skipif(
    not (shared_data_dir() / "tweeteval").exists(), reason="the shared TweetEval data is absent"
)
def test_tweeteval_reader_on_the_shared_data() -> None:
    tweeteval = _bench_module("tweeteval")
    root = shared_data_dir() / "tweeteval"
    groups = tweeteval.groups(root)
    assert groups["emotion"]["labels"] == ["anger", "joy", "optimism", "sadness"]
    assert groups["irony"]["labels"] == ["non_irony", "irony"]
    assert [len(groups[t]["labels"]) for t in tweeteval.TASKS] == [4, 2, 2, 2]
    # Test split sizes of the TweetEval release (as in its evaluation script's gold files).
    sizes = {"emotion": 1421, "hate": 2970, "irony": 784, "offensive": 860}
    for task, n in sizes.items():
        items = tweeteval.read_split(root, task, "test")
        assert len(items) == n
        assert all(sum(it.cats.values()) == 1.0 for it in items)
        labels = (root / task / "test_labels.txt").read_text(encoding="utf8").split()
        names = groups[task]["labels"]
        assert [names[int(x)] for x in labels[:20]] == [
            next(k.split("/")[1] for k, v in it.cats.items() if v) for it in items[:20]
        ]


@pytest.mark.parametrize("task", ["emotion", "hate", "irony", "offensive"])
def test_tweeteval_official_metric_matches_sklearn(task: str) -> None:
    from sklearn.metrics import classification_report, f1_score

    tweeteval = _bench_module("tweeteval")
    n_classes = 4 if task == "emotion" else 2
    rng = numpy.random.default_rng(len(task))
    gold = rng.integers(0, n_classes, 200).tolist()
    pred = [g if rng.random() < 0.6 else int(rng.integers(0, n_classes)) for g in gold]
    ours = tweeteval.official_score(task, gold, pred, n_classes)
    # As cardiffnlp/tweeteval's evaluation script reads it from sklearn's report.
    report = classification_report([str(g) for g in gold], [str(p) for p in pred], output_dict=True)
    expected = report["1"]["f1-score"] if task == "irony" else report["macro avg"]["f1-score"]
    assert ours == pytest.approx(expected, abs=1e-12)
    assert 0.0 < ours < 1.0
    # A class nobody predicts or holds counts as F1 0 in the macro average (all classes).
    gold2, pred2 = [0, 0, 1, 1, 0], [0, 1, 1, 1, 0]
    expected2 = (
        f1_score(gold2, pred2, pos_label=1, average="binary")
        if task == "irony"
        else f1_score(gold2, pred2, labels=list(range(n_classes)), average="macro", zero_division=0)
    )
    assert tweeteval.official_score(task, gold2, pred2, n_classes) == pytest.approx(expected2)
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        tweeteval.official_score(task, [0, 1], [0], n_classes)


def test_tweeteval_reference_constants() -> None:
    tweeteval = _bench_module("tweeteval")
    assert tweeteval.ROBERTA_BASE == {
        "emotion": 76.1,
        "hate": 46.6,
        "irony": 59.7,
        "offensive": 79.5,
    }
    assert "RoBERTa-Base" in tweeteval.REFERENCE_SOURCE
    assert set(tweeteval.OFFICIAL_METRIC) == set(tweeteval.TASKS)


def _shipped_lr_scale() -> float:
    from thinc.api import Config

    config = Config().from_disk(ROOT / "configs" / "cpu.cfg", interpolate=False)
    return float(config["components"]["mtl_textcat"]["lr_scale"])


needs_tweeteval = pytest.mark.skipif(
    not (shared_data_dir() / "tweeteval").exists(), reason="the shared TweetEval data is absent"
)


@needs_tweeteval
def test_quality_script_tweeteval_smoke(tiny_bert: Path, tmp_path: Path) -> None:
    tasks = ["emotion", "hate", "irony", "offensive"]
    quality = _run(
        "quality.py",
        [
            *("--setting", "tweeteval", "--model", str(tiny_bert)),
            *("--train-per-set", "4", "--test-per-set", "3"),
            *("--updates", "2", "--warmup", "1", "--batch-size", "4"),
        ],
        tmp_path / "quality_tweeteval.json",
    )
    runs = {row["run"]: row for row in quality["rows"]}
    expected_runs = {
        "ours_joint",
        "ours_joint_equal_compute",
        "builtin_joint",
        "builtin_joint_multilabel",
        *(f"ours_single_{t}" for t in tasks),
        *(f"builtin_textcat_{t}" for t in tasks),
    }
    assert set(runs) == expected_runs
    for name in ("ours_joint", "ours_joint_equal_compute", "builtin_joint"):
        assert set(runs[name]["scores"]) == set(tasks), name
    for task in tasks:
        assert set(runs[f"ours_single_{task}"]["scores"]) == {task}
        assert set(runs[f"builtin_textcat_{task}"]["scores"]) == {task}
        # One data set per single-group run: its own task's docs.
        assert runs[f"ours_single_{task}"]["docs_per_dataset"] == {task: 8}
        assert set(quality["summary"][f"ours_single_{task}"][task]) >= {"macro_f", "official"}
    for row in quality["rows"]:
        assert "error" not in row, row["run"]
        for task, scores in row["scores"].items():
            assert scores["n_test"] == 3
            assert 0.0 <= scores["official"] <= 1.0
            if task != "irony":  # macro F1 over the same classes: the official metric
                assert scores["official"] == pytest.approx(scores["macro_f"])
    # The mixed batcher with alpha 1: 4 x 2 updates of 4 docs = two epochs of the 16 docs,
    # every doc exactly once per epoch.
    equal = runs["ours_joint_equal_compute"]
    assert equal["updates"] == 8
    assert equal["docs_per_dataset"] == {task: 8 for task in tasks}
    assert sum(runs["ours_joint"]["docs_per_dataset"].values()) == 8
    assert runs["ours_joint"]["cpu_seconds_per_update"] > 0
    assert runs["ours_joint"]["seconds_per_update"] > 0
    budget = quality["budget"]
    assert budget["setting"] == "tweeteval"
    assert budget["head_lr_scale"] == _shipped_lr_scale() == 10.0
    assert budget["batcher"].startswith("spacy-mtl.mixed_batcher.v1")
    assert budget["weighting"] == "fixed"
    assert quality["data"]["test"] == {task: 3 for task in tasks}
    assert quality["setting"]["reference"]["scores"]["irony"] == 59.7
    assert quality["summary"]["builtin_joint"]["hate"]["official"]["n"] == 1
    _check_page(
        tmp_path,
        [
            "## Quality on partial labels: (b) TweetEval",
            "| RoBERTa-base (leaderboard, for context) | 76.1 | 46.6 | 59.7 | 79.5 |",
            "| ours, one model per task |",
            "joint − single (equal compute)",
            "Not run yet (benchmarks/results/quality.json)",
        ],
    )


@needs_tweeteval
def test_quality_script_weighting_option(tiny_bert: Path, tmp_path: Path) -> None:
    """--weighting uncertainty reaches mtl_textcat where it has the setting, and is refused
    with a clear message where it does not."""
    from spacy.language import Language

    import spacy_mtl.pipeline  # noqa: F401

    supported = "weighting" in Language.get_factory_meta("mtl_textcat").default_config
    args = [
        *("--setting", "tweeteval", "--model", str(tiny_bert), "--runs", "ours_joint"),
        *("--train-per-set", "4", "--test-per-set", "2", "--updates", "1", "--warmup", "0"),
        *("--batch-size", "4", "--weighting", "uncertainty"),
    ]
    out = tmp_path / "quality_tweeteval.json"
    if supported:
        quality = _run("quality.py", args, out)
        row = quality["rows"][0]
        assert quality["budget"]["weighting"] == "uncertainty"
        assert set(row["group_loss_weights"]) == {"emotion", "hate", "irony", "offensive"}
        return
    done = subprocess.run(
        [sys.executable, str(BENCH / "quality.py"), *args, "--threads", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "SPACY_MTL_DATA": str(shared_data_dir())},
        cwd=str(ROOT),
    )
    assert done.returncode != 0
    assert "has no `weighting` setting" in done.stderr
    assert not out.exists()


def test_make_table_official_table() -> None:
    make_table = _bench_module("make_table")

    def m(value: float, sd: Any = None) -> Dict[str, Any]:
        return {"mean": value, "sd": sd, "n": 1 if sd is None else 3}

    quality = {
        "setting": {
            "official_metric": {"hate": "macro F1", "irony": "F1 of the irony class"},
            "reference": {"name": "RoBERTa-base", "scores": {"hate": 46.6, "irony": 59.7}},
        },
        "summary": {
            "ours_joint": {"hate": {"official": m(0.5123, 0.0101)}, "irony": {"official": m(0.6)}},
            "ours_single_hate": {"hate": {"official": m(0.45, 0.02)}},
            "builtin_joint": {"error": "E895"},
        },
    }
    quality["setting"]["reference"]["source"] = "the leaderboard"
    lines = make_table.official_table(quality)
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert rows["ours, joint (one model)"] == "| ours, joint (one model) | 51.2 ± 1.0 | 60.0 |"
    assert rows["ours, one model per task"] == "| ours, one model per task | 45.0 ± 2.0 | – |"
    assert rows["RoBERTa-base (leaderboard, for context)"] == (
        "| RoBERTa-base (leaderboard, for context) | 46.6 | 59.7 |"
    )
    # No row for runs without an official score (built-in error, equal compute absent).
    assert "ours, joint, equal compute" not in rows
    assert "spaCy textcat per task, one shared transformer" not in rows
