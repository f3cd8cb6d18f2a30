"""spacy_mtl.quantize and `spacy-mtl quantize`: an int8 copy of a trained pipeline that
loads with spacy.load and keeps the doc.cats / mtl_scores / mtl_labels contract."""

from pathlib import Path
from typing import Any, List

import numpy
import pytest
import spacy
from conftest import GROUPS, make_examples, make_nlp
from spacy.language import Language
from spacy.util import fix_random_seed
from typer.testing import CliRunner

from spacy_mtl.cli import app
from spacy_mtl.errors import ModelLoadError
from spacy_mtl.quantize import quantize_pipeline
from spacy_mtl.transformer import SortedTransformer

TEXTS = ["i love this movie", "what a bad bad day " * 6, "", "ok", "the food was fine"]


def _train(nlp: Language, steps: int = 3) -> Language:
    optimizer = nlp.initialize(lambda: make_examples(nlp))
    for _ in range(steps):
        nlp.update(make_examples(nlp), sgd=optimizer)
    return nlp


def _scores(docs: List[Any]) -> numpy.ndarray:
    return numpy.asarray([[doc.cats[k] for k in sorted(doc.cats)] for doc in docs])


def _int8_linears(component: Any) -> int:
    from torch.ao.nn.quantized.dynamic import Linear

    shim = component.model.layers[0].shims[0]
    return sum(isinstance(m, Linear) for m in shim._model.modules())


@pytest.fixture(scope="module")
def trained(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("mtl_transformer", name="transformer", config={"model": {"name": str(tiny_bert)}})
    nlp.add_pipe("mtl_textcat", config={"groups": GROUPS})
    path = tmp_path_factory.mktemp("fp32") / "model"
    _train(nlp).to_disk(path)
    return path


def test_quantized_pipeline_loads_in_int8_with_the_same_contract(
    trained: Path, tmp_path: Path
) -> None:
    fp32 = spacy.load(trained)
    out = tmp_path / "int8"
    done = quantize_pipeline(trained, out)
    assert done == {"components": ["transformer"], "converted": []}
    int8 = spacy.load(out)
    component = int8.get_pipe("transformer")
    assert isinstance(component, SortedTransformer) and component.quantized
    assert component.quantize == "int8" and "quantize" not in component.cfg
    assert _int8_linears(component) > 0 and _int8_linears(fp32.get_pipe("transformer")) == 0
    docs_fp32, docs_int8 = list(fp32.pipe(TEXTS)), list(int8.pipe(TEXTS))
    for a, b in zip(docs_fp32, docs_int8):
        assert list(b.cats) == list(a.cats)
        assert list(b._.mtl_scores) == list(a._.mtl_scores)
        assert set(b._.mtl_labels) == set(a._.mtl_labels)
        assert abs(sum(b._.mtl_scores["sentiment"].values()) - 1.0) < 1e-5
    # int8 arithmetic: close to the fp32 scores, not equal.
    diff = numpy.abs(_scores(docs_fp32) - _scores(docs_int8))
    assert 0 < diff.max() < 0.05
    # Saving the int8 pipeline keeps the fp32 weights: a second copy gives the same scores.
    int8.to_disk(tmp_path / "again")
    again = spacy.load(tmp_path / "again")
    assert again.get_pipe("transformer").quantized
    numpy.testing.assert_allclose(_scores(list(again.pipe(TEXTS))), _scores(docs_int8))
    # A config override loads the fp32 transformer again: the fp32 pipeline's scores.
    back = spacy.load(out, config={"components": {"transformer": {"quantize": None}}})
    assert not back.get_pipe("transformer").quantized
    numpy.testing.assert_allclose(_scores(list(back.pipe(TEXTS))), _scores(docs_fp32), atol=1e-6)
    # The bytes round trip too.
    from_bytes = spacy.load(out)
    from_bytes.from_bytes(int8.to_bytes())
    assert from_bytes.get_pipe("transformer").quantized
    numpy.testing.assert_allclose(_scores(list(from_bytes.pipe(TEXTS))), _scores(docs_int8))


def test_int8_pipeline_refuses_training(trained: Path, tmp_path: Path) -> None:
    quantize_pipeline(trained, tmp_path / "int8")
    nlp = spacy.load(tmp_path / "int8")
    with pytest.raises(ValueError, match="int8"):
        nlp.update(make_examples(nlp))


def test_stock_transformer_pipeline_is_converted(tiny_bert: Path, tmp_path: Path) -> None:
    nlp = _train(make_nlp(GROUPS, bert=tiny_bert))
    nlp.to_disk(tmp_path / "stock")
    done = quantize_pipeline(tmp_path / "stock", tmp_path / "int8")
    assert done["converted"] == ["transformer"]
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
        quantize_pipeline(tmp_path / "tok2vec", tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ModelLoadError, match="exists"):
        quantize_pipeline(trained, tmp_path / "full")


def test_cli_quantize_then_predict(trained: Path, tmp_path: Path) -> None:
    from spacy_mtl.workflows.predict import predict_file

    runner = CliRunner()
    result = runner.invoke(app, ["quantize", str(trained), str(tmp_path / "int8")])
    assert result.exit_code == 0, result.output
    assert "int8 transformer in transformer" in " ".join(result.output.split())
    again = runner.invoke(app, ["quantize", str(trained), str(tmp_path / "int8")])
    assert again.exit_code == 1 and "exists" in again.output
    src = tmp_path / "in.csv"
    src.write_text("text\ni love this\nwhat a bad day\n", encoding="utf8")
    summary = predict_file(tmp_path / "int8", src, tmp_path / "out.jsonl")
    assert summary.rows == 2
    assert (tmp_path / "out.jsonl").read_text(encoding="utf8").count("sentiment") == 2


def test_distributed_worker_takes_the_int8_pipeline(trained: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    from spacy_mtl.workflows.distributed import MTLPredictor

    quantize_pipeline(trained, tmp_path / "int8")
    worker = MTLPredictor(str(tmp_path / "int8"), text_column="text", layout="jsonl")
    assert worker.nlp.get_pipe("transformer").quantized
    rows = worker(pa.table({"text": ["i love it", None]})).to_pylist()
    assert rows[0]["sentiment"] in GROUPS["sentiment"]["labels"]
    assert rows[1]["sentiment"] is None
