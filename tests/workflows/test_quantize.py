"""spacy_mtl.workflows.quantize and `spacy-mtl quantize`: an int8 copy of a trained pipeline (ONNX
Runtime or torch) that loads with spacy.load and keeps the doc.cats / mtl_scores / mtl_labels
contract; spacy_mtl.trf.onnx_encoder and spacy_mtl.trf.torch_int8 against fp32 references."""

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any, List

import numpy
import pytest
import spacy
import srsly
from conftest import GROUPS, make_examples, make_nlp
from spacy.language import Language
from spacy.util import fix_random_seed
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.errors import ModelLoadError
from spacy_mtl.trf.transformer import ONNX_FILE, SortedTransformer
from spacy_mtl.workflows.quantize import quantize_pipeline

TEXTS = ["i love this movie", "what a bad bad day " * 6, "", "ok", "the food was fine"]
# int8 against fp32 on the tiny random BERT: every score within this (measured: < .01).
TOLERANCE = 0.05
needs_ort = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnxruntime / onnx not installed (spacy-mtl[onnx])",
)
METHODS = [pytest.param("onnx", marks=needs_ort), "torch"]


def _train(nlp: Language, steps: int = 3) -> Language:
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    for _ in range(steps):
        nlp.update(make_examples(nlp), sgd=optimizer)
    return nlp


def _scores(docs: List[Any]) -> numpy.ndarray:
    return numpy.asarray([[doc.cats[k] for k in sorted(doc.cats)] for doc in docs])


def _encoder(nlp: Language) -> Any:
    return nlp.get_pipe("transformer").model.layers[0].shims[0]._model


def _int8_linears(module: Any) -> int:
    from torch.ao.nn.quantized.dynamic import Linear

    return sum(isinstance(m, Linear) for m in module.modules())


@pytest.fixture(scope="module")
def trained(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("mtl_transformer", name="transformer", config={"model": {"name": str(tiny_bert)}})
    nlp.add_pipe("mtl_textcat", config={"groups": GROUPS})
    path = tmp_path_factory.mktemp("fp32") / "model"
    _train(nlp).to_disk(path)
    return path


@pytest.fixture(scope="module")
def onnx_int8(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime not installed (spacy-mtl[onnx])")
    out = tmp_path_factory.mktemp("onnx") / "int8"
    quantize_pipeline(trained, out, method="onnx")
    return out


@pytest.mark.parametrize("method", METHODS)
def test_quantized_pipeline_loads_in_int8_with_the_same_contract(
    trained: Path, tmp_path: Path, method: str
) -> None:
    from spacy_mtl.trf.onnx_encoder import OnnxEncoder

    setting = {"onnx": "onnx-int8", "torch": "int8"}[method]
    fp32 = spacy.load(trained)
    out = tmp_path / "int8"
    steps: list = []
    done = quantize_pipeline(trained, out, method=method, on_step=steps.append)
    assert done == {"components": ["transformer"], "converted": [], "quantize": setting}
    # Each stage is announced before it runs (the CLI prints these lines).
    assert steps[-1].startswith("Checking")
    assert any("'transformer'" in s for s in steps) == (method == "onnx")
    assert (out / "transformer" / ONNX_FILE).exists() == (method == "onnx")
    int8 = spacy.load(out)
    component = int8.get_pipe("transformer")
    assert isinstance(component, SortedTransformer) and component.quantized
    assert component.quantize == setting and "quantize" not in component.cfg
    if method == "onnx":
        assert isinstance(_encoder(int8), OnnxEncoder)
    else:
        assert _int8_linears(_encoder(int8)) > 0
    assert _int8_linears(_encoder(fp32)) == 0
    docs_fp32, docs_int8 = list(fp32.pipe(TEXTS)), list(int8.pipe(TEXTS))
    for a, b in zip(docs_fp32, docs_int8):
        assert list(b.cats) == list(a.cats)
        assert list(b._.mtl_scores) == list(a._.mtl_scores)
        assert set(b._.mtl_labels) == set(a._.mtl_labels)
        assert abs(sum(b._.mtl_scores["sentiment"].values()) - 1.0) < 1e-5
    # int8 arithmetic: close to the fp32 scores, not equal.
    diff = numpy.abs(_scores(docs_fp32) - _scores(docs_int8))
    assert 0 < diff.max() < TOLERANCE
    # One doc at a time: nearly the scores of nlp.pipe (activations are quantized with the
    # range of the whole batch, so a doc's neighbours move its scores a little: up to
    # 1.7e-3 measured on an AMD EPYC without VNNI, under 1e-3 on a VNNI Xeon).
    one_by_one = _scores([int8(t) for t in TEXTS])
    numpy.testing.assert_allclose(one_by_one, _scores(docs_int8), atol=5e-3)
    # Saving the int8 pipeline keeps the fp32 weights (and the ONNX model): a second copy
    # gives the same scores.
    int8.to_disk(tmp_path / "again")
    again = spacy.load(tmp_path / "again")
    assert again.get_pipe("transformer").quantized
    numpy.testing.assert_allclose(_scores(list(again.pipe(TEXTS))), _scores(docs_int8))
    if method == "onnx":
        saved = (tmp_path / "again" / "transformer" / ONNX_FILE).read_bytes()
        assert saved == (out / "transformer" / ONNX_FILE).read_bytes()
    # A config override loads the fp32 transformer again: the fp32 pipeline's scores.
    back = spacy.load(out, config={"components": {"transformer": {"quantize": None}}})
    assert not back.get_pipe("transformer").quantized
    numpy.testing.assert_allclose(_scores(list(back.pipe(TEXTS))), _scores(docs_fp32), atol=1e-6)
    back.to_disk(tmp_path / "fp32-again")
    assert not (tmp_path / "fp32-again" / "transformer" / ONNX_FILE).exists()
    # The bytes round trip too.
    from_bytes = spacy.load(out)
    from_bytes.from_bytes(int8.to_bytes())
    assert from_bytes.get_pipe("transformer").quantized
    numpy.testing.assert_allclose(_scores(list(from_bytes.pipe(TEXTS))), _scores(docs_int8))


@pytest.mark.parametrize("method", METHODS)
def test_int8_pipeline_refuses_training(trained: Path, tmp_path: Path, method: str) -> None:
    quantize_pipeline(trained, tmp_path / "int8", method=method)
    nlp = spacy.load(tmp_path / "int8")
    with pytest.raises(ValueError, match="int8"):
        nlp.update(make_examples(nlp))


@needs_ort
def test_stock_transformer_pipeline_is_converted(tiny_bert: Path, tmp_path: Path) -> None:
    nlp = _train(make_nlp(GROUPS, bert=tiny_bert))
    nlp.to_disk(tmp_path / "stock")
    done = quantize_pipeline(tmp_path / "stock", tmp_path / "int8")
    assert done["converted"] == ["transformer"] and done["quantize"] == "onnx-int8"
    loaded = spacy.load(tmp_path / "int8")
    assert loaded.get_pipe("transformer").quantized
    assert loaded.config["components"]["transformer"]["factory"] == "mtl_transformer"
    doc = loaded("i love this")
    assert set(doc._.mtl_scores) == set(GROUPS)


def test_quantize_refuses_what_it_cannot_do(trained: Path, tmp_path: Path) -> None:
    tok2vec = make_nlp(GROUPS)
    tok2vec.initialize(lambda: make_examples(tok2vec))
    tok2vec.to_disk(tmp_path / "tok2vec")
    with pytest.raises(ModelLoadError, match="no transformer"):
        quantize_pipeline(tmp_path / "tok2vec", tmp_path / "out", method="torch")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ModelLoadError, match="exists"):
        quantize_pipeline(trained, tmp_path / "full", method="torch")
    with pytest.raises(ValueError, match="'onnx' or 'torch'"):
        quantize_pipeline(trained, tmp_path / "out", method="fp16")
    result = CliRunner().invoke(app, ["quantize", str(trained), str(tmp_path / "o"), "-m", "x"])
    assert result.exit_code == 1 and "Unknown --method" in result.output


def test_without_onnxruntime_the_messages_say_what_to_install(
    trained: Path, onnx_int8: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails: not installed
    with pytest.raises(ImportError, match=r"spacy-mtl\[onnx\]"):
        quantize_pipeline(trained, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    result = CliRunner().invoke(app, ["quantize", str(trained), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "spacy-mtl[onnx]" in result.output and "--method torch" in result.output
    with pytest.raises(ImportError, match=r"spacy-mtl\[onnx\]"):
        spacy.load(onnx_int8)
    # Without the extra, the fp32 transformer of the same folder still loads.
    fp32 = spacy.load(onnx_int8, config={"components": {"transformer": {"quantize": None}}})
    assert not fp32.get_pipe("transformer").quantized
    # torch's int8 needs no extra.
    quantize_pipeline(trained, tmp_path / "torch", method="torch")


@needs_ort
def test_missing_onnx_model_is_made_again_on_load(onnx_int8: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(onnx_int8, copy)
    (copy / "transformer" / ONNX_FILE).unlink()
    nlp = spacy.load(copy)
    assert nlp.get_pipe("transformer").quantized
    expected = _scores(list(spacy.load(onnx_int8).pipe(TEXTS)))
    numpy.testing.assert_allclose(_scores(list(nlp.pipe(TEXTS))), expected, atol=1e-6)


@needs_ort
def test_tune_on_the_int8_pipeline_keeps_it_int8(onnx_int8: Path, tmp_path: Path) -> None:
    from spacy_mtl.workflows.tune import tune_pipeline

    nlp = spacy.load(onnx_int8)
    tune_pipeline(nlp, make_examples(nlp))
    nlp.to_disk(tmp_path / "tuned")
    tuned = spacy.load(tmp_path / "tuned")
    assert tuned.get_pipe("transformer").quantized
    assert tuned.get_pipe("mtl_textcat").schema == nlp.get_pipe("mtl_textcat").schema
    assert (tmp_path / "tuned" / "transformer" / ONNX_FILE).exists()


@pytest.mark.parametrize("method", METHODS)
def test_cli_quantize_then_predict(trained: Path, tmp_path: Path, method: str) -> None:
    from spacy_mtl.workflows.predict import predict_file

    runner = CliRunner()
    command = ["quantize", str(trained), str(tmp_path / "int8"), "--method", method]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    setting = {"onnx": "onnx-int8", "torch": "int8"}[method]
    assert f"{setting} transformer in transformer" in " ".join(result.output.split())
    again = runner.invoke(app, command)
    assert again.exit_code == 1 and "exists" in again.output
    src = tmp_path / "in.csv"
    src.write_text("text\ni love this\nwhat a bad day\n", encoding="utf8")
    summary = predict_file(tmp_path / "int8", src, tmp_path / "out.jsonl")
    assert summary.rows == 2
    assert (tmp_path / "out.jsonl").read_text(encoding="utf8").count("sentiment") == 2


@pytest.mark.parametrize("method", METHODS)
def test_distributed_worker_takes_the_int8_pipeline(
    trained: Path, tmp_path: Path, method: str
) -> None:
    pa = pytest.importorskip("pyarrow")
    from spacy_mtl.workflows.distributed import MTLPredictor

    quantize_pipeline(trained, tmp_path / "int8", method=method)
    worker = MTLPredictor(str(tmp_path / "int8"), text_column="text", layout="jsonl")
    assert worker.nlp.get_pipe("transformer").quantized
    rows = worker(pa.table({"text": ["i love it", None]})).to_pylist()
    assert rows[0]["sentiment"] in GROUPS["sentiment"]["labels"]
    assert rows[1]["sentiment"] is None


@needs_ort
def test_spacy_package_carries_the_onnx_model(onnx_int8: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "spacy", "package", str(onnx_int8), str(tmp_path)]
    command += ["--name", "int8_test", "--version", "0.0.1", "--build", "none", "--force"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    package = tmp_path / "en_int8_test-0.0.1"
    # The package's install requirements (setup.py reads meta.json) name ONNX Runtime.
    requirements = srsly.read_json(package / "meta.json")["requirements"]
    assert any(req.startswith("onnxruntime>=") for req in requirements), requirements
    data = package / "en_int8_test" / "en_int8_test-0.0.1"
    assert (data / "transformer" / ONNX_FILE).read_bytes() == (
        onnx_int8 / "transformer" / ONNX_FILE
    ).read_bytes()
    nlp = spacy.load(data)
    assert nlp.get_pipe("transformer").quantized
    expected = _scores(list(spacy.load(onnx_int8).pipe(TEXTS)))
    numpy.testing.assert_allclose(_scores(list(nlp.pipe(TEXTS))), expected, atol=1e-6)


@needs_ort
def test_onnx_encoder_matches_the_hf_model(tiny_bert: Path) -> None:
    """The exported int8 encoder's hidden states are close to the Hugging Face model's; a
    padded row gives the states of the same row unpadded (the mask is honoured)."""
    import torch
    from transformers import AutoModel, DistilBertConfig, DistilBertModel

    from spacy_mtl.trf.onnx_encoder import encoder_inputs, export_int8, make_encoder

    torch.manual_seed(0)
    hf = AutoModel.from_pretrained(str(tiny_bert)).eval()
    encoder = make_encoder(export_int8(hf), hf.config, threads=1)
    ids = torch.tensor([[2, 10, 11, 12, 13, 3], [2, 14, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = hf(input_ids=ids, attention_mask=mask).last_hidden_state
    got = encoder(input_ids=ids, attention_mask=mask.float()).last_hidden_state
    assert got.shape == expected.shape and got.dtype == torch.float32
    real = mask.bool()
    assert (got[real] - expected[real]).abs().max() < 0.1 * expected[real].abs().max()
    alone = encoder(input_ids=ids[1:, :3], attention_mask=mask[1:, :3]).last_hidden_state
    # Up to the batch's activation range (a per-batch quantization scale).
    numpy.testing.assert_allclose(alone[0].numpy(), got[1, :3].numpy(), atol=5e-3)
    # A model without token_type_ids (DistilBERT) exports with the inputs it takes.
    distil = DistilBertModel(
        DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    ).eval()
    assert encoder_inputs(distil) == ["input_ids", "attention_mask"]
    small = make_encoder(export_int8(distil), distil.config, threads=1)
    out = small(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids))
    assert out.last_hidden_state.shape == (2, 6, 16)


def test_torch_int8_is_per_channel_and_full_range_where_safe() -> None:
    import torch

    from spacy_mtl.trf.torch_int8 import FullRangeLinear, full_range_is_safe, quantize_dynamic_int8

    torch.manual_seed(0)
    fp32 = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.GELU(), torch.nn.Linear(8, 4))
    x = torch.randn(5, 16)
    for reduce_range in (None, True, False):
        int8 = quantize_dynamic_int8(fp32, reduce_range=reduce_range)
        assert int8[0].weight().qscheme() == torch.per_channel_affine
        full = reduce_range is False or (reduce_range is None and full_range_is_safe())
        assert isinstance(int8[0], FullRangeLinear) == full
        if full and not full_range_is_safe():
            # Forced full range on a CPU without VNNI: the 16-bit sums can saturate, which
            # is why the default (None) keeps torch's 7-bit range there.
            continue
        numpy.testing.assert_allclose(int8(x).detach(), fp32(x).detach(), atol=0.05)
    per_tensor = quantize_dynamic_int8(fp32, per_channel=False)
    assert per_tensor[0].weight().qscheme() == torch.per_tensor_affine
    kept = quantize_dynamic_int8(fp32, keep=["2"])
    assert type(kept[2]) is torch.nn.Linear and _int8_linears(kept) == 1
    assert _int8_linears(fp32) == 0
