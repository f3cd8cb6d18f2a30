"""The benchmark scripts (smoke runs on tiny inputs) and the speed modules they measure:
spacy_mtl.batching (length-sorted prediction, input order restored) and
spacy_mtl.span_getters (windows of at most N wordpieces)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import numpy
import pytest
import spacy
from conftest import GROUPS, make_examples, make_nlp, shared_data_dir
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import registry

from spacy_mtl.batching import (
    char_lengths,
    iter_by_length,
    pipe_by_length,
    resolve_key,
    sorted_batches,
    wordpiece_lengths,
)
from spacy_mtl.span_getters import WordpieceSpans, attach_tokenizers, window_cuts

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

TEXTS = [
    "i love this movie",
    "",
    "the food was ok but the day was very very long and boring, really boring",
    "meh",
    "   ",
    "what a great fun day!!! &#128514;&#128514; love it",
    "i hate this awful film",
    "",
    "ok",
]


def _cats(docs: List[Doc]) -> numpy.ndarray:
    return numpy.asarray([[doc.cats[k] for k in sorted(doc.cats)] for doc in docs])


@pytest.fixture(scope="module")
def trf_nlp(tiny_bert: Path) -> Language:
    nlp = make_nlp(GROUPS, bert=tiny_bert)
    nlp.initialize(lambda: make_examples(nlp))
    return nlp


@pytest.fixture(scope="module")
def tok2vec_nlp() -> Language:
    nlp = make_nlp(GROUPS)
    nlp.initialize(lambda: make_examples(nlp))
    return nlp


# -- batching -----------------------------------------------------------------------------


@pytest.mark.parametrize("buffer_size", [None, 1, 3, 100])
@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_pipe_by_length_restores_order(
    tok2vec_nlp: Language, buffer_size: Any, batch_size: int
) -> None:
    docs = list(pipe_by_length(tok2vec_nlp, TEXTS, batch_size=batch_size, buffer_size=buffer_size))
    assert [doc.text for doc in docs] == TEXTS
    expected = list(tok2vec_nlp.pipe(TEXTS))
    # Tok2Vec scores do not depend on the batch: sorted and unsorted agree exactly.
    assert numpy.array_equal(_cats(docs), _cats(expected))
    for doc in docs:
        assert set(doc._.mtl_scores) == {"sentiment", "emotion"}


def test_pipe_by_length_transformer_matches_pipe(trf_nlp: Language) -> None:
    sorted_docs = list(pipe_by_length(trf_nlp, TEXTS, batch_size=3))
    plain = list(trf_nlp.pipe(TEXTS, batch_size=3))
    assert [doc.text for doc in sorted_docs] == TEXTS
    # Different batches pad differently; attention masks keep the scores (nearly) equal.
    numpy.testing.assert_allclose(_cats(sorted_docs), _cats(plain), atol=1e-4)
    empty = [doc for doc in sorted_docs if not len(doc)]
    assert len(empty) == 2
    assert _cats(empty)[0].tolist() == _cats(empty)[1].tolist()


def test_iter_by_length_sorts_and_yields_every_index(trf_nlp: Language) -> None:
    pairs = list(iter_by_length(trf_nlp, TEXTS, batch_size=2, key="chars"))
    indices = [i for i, _ in pairs]
    assert sorted(indices) == list(range(len(TEXTS)))
    lengths = [len(TEXTS[i]) for i in indices]
    assert lengths == sorted(lengths)
    # Stable: equal lengths keep input order (the two empty texts).
    assert indices[:2] == [1, 7]
    for i, doc in pairs:
        assert doc.text == TEXTS[i]


def test_iter_by_length_buffers_sort_within_each_buffer(tok2vec_nlp: Language) -> None:
    pairs = list(iter_by_length(tok2vec_nlp, TEXTS, buffer_size=4, key="chars"))
    indices = [i for i, _ in pairs]
    for start in range(0, len(TEXTS), 4):
        chunk = indices[start : start + 4]
        assert sorted(chunk) == list(range(start, min(start + 4, len(TEXTS))))
        assert [len(TEXTS[i]) for i in chunk] == sorted(len(TEXTS[i]) for i in chunk)


def test_pipe_by_length_takes_docs(tok2vec_nlp: Language) -> None:
    docs = [tok2vec_nlp.make_doc(text) for text in TEXTS]
    out = list(pipe_by_length(tok2vec_nlp, docs, batch_size=2))
    assert [doc.text for doc in out] == TEXTS
    assert all(a is b for a, b in zip(out, docs))


def test_sort_keys(trf_nlp: Language, tok2vec_nlp: Language) -> None:
    tokenizer = trf_nlp.get_pipe("transformer").model.tokenizer
    expected = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in TEXTS]
    assert list(resolve_key(trf_nlp, "auto")(TEXTS)) == expected
    assert list(wordpiece_lengths(tokenizer)(TEXTS)) == expected
    assert wordpiece_lengths(tokenizer)([]) == []
    assert resolve_key(tok2vec_nlp, "auto") is char_lengths
    assert char_lengths(TEXTS) == [len(t) for t in TEXTS]
    with pytest.raises(ValueError, match="wordpieces"):
        resolve_key(tok2vec_nlp, "wordpieces")
    with pytest.raises(ValueError, match="Unknown sort key"):
        resolve_key(tok2vec_nlp, "tokens")


def test_custom_key_and_bad_arguments(tok2vec_nlp: Language) -> None:
    def reverse(texts: List[str]) -> List[int]:
        return [-len(t) for t in texts]

    pairs = list(iter_by_length(tok2vec_nlp, TEXTS, key=reverse))
    assert len(TEXTS[pairs[0][0]]) == max(len(t) for t in TEXTS)
    with pytest.raises(ValueError, match="batch_size"):
        list(pipe_by_length(tok2vec_nlp, TEXTS, batch_size=0))
    with pytest.raises(ValueError, match="buffer_size"):
        list(pipe_by_length(tok2vec_nlp, TEXTS, buffer_size=0))
    with pytest.raises(ValueError, match="lengths"):
        list(pipe_by_length(tok2vec_nlp, TEXTS, key=lambda texts: [1]))
    assert list(pipe_by_length(tok2vec_nlp, [])) == []


def test_sorted_batches() -> None:
    lengths = [5, 1, 3, 1, 9, 2, 2]
    batches = sorted_batches(lengths, 3)
    assert batches == [[1, 3, 5], [6, 2, 0], [4]]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


# -- span getter --------------------------------------------------------------------------


def _check_cover(doc: Doc, spans: List[Any]) -> None:
    covered = [i for span in spans for i in range(span.start, span.end)]
    assert covered == list(range(len(doc))), "every token exactly once, in order"


def _long_text(n: int) -> str:
    words = "the movie was great fun but i hate the awful food , really ! ok".split()
    return " ".join(words[i % len(words)] for i in range(n))


def test_window_cuts_counts_and_clean_cuts() -> None:
    # Three tokens: "ab" (2 pieces: ab, ##c -> a continuation inside one word), ...
    # Tokens start at chars 0, 3, 6, 9; pieces: [0,1) [1,2) word 0; [3,5) word 1;
    # [6,7) [7,8) word 2; [9,10) word 3.
    token_starts = [0, 3, 6, 9]
    offsets = [(0, 1), (1, 2), (3, 5), (6, 7), (7, 8), (9, 10)]
    word_ids = [0, 0, 1, 2, 2, 3]
    assert window_cuts(token_starts, offsets, word_ids, budget=3) == [0, 2, 4]
    assert window_cuts(token_starts, offsets, word_ids, budget=100) == [0, 4]
    # A token longer than the budget gets a window of its own.
    assert window_cuts(token_starts, offsets, word_ids, budget=1) == [0, 1, 2, 3, 4]
    assert window_cuts([], [], [], budget=4) == [0]


def test_window_cuts_never_split_a_word() -> None:
    # spaCy splits "cannot" into "can" + "not"; the tokenizer keeps one word in 2 pieces
    # ("can", "##not"). A cut between them would change the wordpieces.
    token_starts = [0, 3, 7]  # "can" "not" "ok" in "cannot ok"
    offsets = [(0, 3), (3, 6), (7, 9)]
    word_ids = [0, 0, 1]
    cuts = window_cuts(token_starts, offsets, word_ids, budget=2)
    assert 1 not in cuts
    assert cuts == [0, 2, 3]


@pytest.mark.parametrize("window", [8, 16, 40])
def test_wordpiece_spans_cover_each_token_once_within_window(tiny_bert: Path, window: int) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert), use_fast=True)
    nlp = spacy.blank("en")
    texts = [_long_text(n) for n in (0, 1, 5, 30, 77)] + TEXTS
    docs = [nlp.make_doc(t) for t in texts]
    get_spans = WordpieceSpans(str(tiny_bert), window=window)
    all_spans = get_spans(docs)
    assert len(all_spans) == len(docs)
    for doc, spans in zip(docs, all_spans):
        if not len(doc):
            assert spans == []
            continue
        _check_cover(doc, spans)
        for span in spans:
            n = len(tokenizer(span.text)["input_ids"])
            assert n <= window or len(span) == 1, (span.text, n)
        # Together the windows hold exactly the doc's wordpieces (no word was split).
        pieces = sum(len(tokenizer(s.text, add_special_tokens=False)["input_ids"]) for s in spans)
        assert pieces == len(tokenizer(doc.text, add_special_tokens=False)["input_ids"])
    long_doc_spans = all_spans[4]
    assert len(long_doc_spans) > 1


def test_wordpiece_spans_in_a_pipeline(tiny_bert: Path) -> None:
    import spacy_mtl.span_getters  # noqa: F401

    assert registry.span_getters.get("spacy-mtl.wordpiece_spans.v1") is not None
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": str(tiny_bert),
                "tokenizer_config": {"use_fast": True},
                "get_spans": {
                    "@span_getters": "spacy-mtl.wordpiece_spans.v1",
                    "name": str(tiny_bert),
                    "window": 24,
                },
            }
        },
    )
    nlp.add_pipe("mtl_textcat", config={"groups": GROUPS})
    nlp.initialize(lambda: make_examples(nlp))
    getter = nlp.get_pipe("transformer").model.attrs["get_spans"]
    assert isinstance(getter, WordpieceSpans)
    assert attach_tokenizers(nlp) == {"transformer": True}
    # The getter now counts with the pipeline's own tokenizer object.
    assert getter.tokenizer is nlp.get_pipe("transformer").model.tokenizer
    texts = [_long_text(60), "ok", ""]
    docs = list(nlp.pipe(texts))
    assert [set(doc._.mtl_scores) for doc in docs] == [{"sentiment", "emotion"}] * 3
    spans = docs[0]._.trf_data.wordpieces.input_ids.shape
    assert spans[0] > 1 and spans[1] <= 24


def test_wordpiece_spans_needs_a_tokenizer(tiny_bert: Path) -> None:
    from transformers import BertTokenizer

    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="no tokenizer"):
        WordpieceSpans("", window=16)([nlp.make_doc("hello")])
    slow = BertTokenizer.from_pretrained(str(tiny_bert))
    with pytest.raises(ValueError, match="fast tokenizer"):
        WordpieceSpans("", window=16).set_tokenizer(slow)
    with pytest.raises(ValueError, match="no room"):
        WordpieceSpans(str(tiny_bert), window=2)([nlp.make_doc("hello")])
    assert WordpieceSpans("", window=16)([nlp.make_doc("")]) == [[]]


# -- the benchmark scripts ----------------------------------------------------------------


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
    assert short["round_ratios"]["ours/limit_sorted"] > 0
    assert "ours/limit_sorted" in inference["long"]["round_ratios"]
    # Plain nlp.pipe as shipped sorts: it pads less than the stock transformer's
    # input-order batches (not as little as the loop here: windows of 32 wordpieces cut
    # these texts, and the loop sorts windows, ours docs).
    contenders = short["contenders"]
    assert contenders["ours"]["padding"] < contenders["ours_stock"]["padding"]
    assert "ours/limit_sorted" in inference["long"]["ratios"]
    latency = inference["latency"]
    assert latency["n_docs"] == 6
    for side in ("ours", "raw_hf"):
        assert 0 < latency[side]["p50_ms"] <= latency[side]["p95_ms"]
    assert latency["ratio_p95"] > 0 and latency["paired_median_ratio"] > 0
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
    assert text.count("not measured") == 6  # one per target


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
