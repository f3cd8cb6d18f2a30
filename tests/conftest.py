"""Shared fixtures: a tiny random BERT written to a temp folder, and pipeline builders."""

import csv
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import fix_random_seed

# Words the tiny WordPiece vocabulary knows whole; anything else falls back to characters.
_WORDS = """the a an and or but not no very so is was are be it this that i you he she we they
good great love happy joy fun nice best like bad awful hate sad angry worst terrible boring
movie film food day people thing stuff really just what why how when ok fine meh""".split()
_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")


def write(path: Path, content: str, encoding: str = "utf-8") -> Path:
    """Write `content` to `path` (folders created) in `encoding`, byte for byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode(encoding))
    return path


def read_docs(nlp: Language, paths: Sequence[Path]) -> List[Doc]:
    """The docs of .spacy files, in order (their user_data too)."""
    docs: List[Doc] = []
    for path in paths:
        docs.extend(DocBin(store_user_data=True).from_disk(path).get_docs(nlp.vocab))
    return docs


def rejects_rows(path: Path) -> List[Dict[str, str]]:
    """The rows of a convert rejects file (CSV with a header)."""
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_tiny_bert(path: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a randomly initialised BERT (hidden 32, 2 layers) and its WordPiece vocab."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    pieces = [*_WORDS, *_CHARS, *("##" + c for c in _CHARS)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(pieces)]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def write_tiny_roberta(path: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a randomly initialised RoBERTa with a byte-level BPE vocabulary (the tokenizer
    family of roberta-base, which configs/gpu.cfg uses), trained here on a few sentences."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    corpus = [" ".join(_WORDS), "héllo wörld, what a day!!! ok?", "i love this movie " * 3]
    bpe.train_from_iterator(
        corpus,
        vocab_size=400,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.save_model(str(path))
    tokenizer = RobertaTokenizerFast(
        vocab_file=str(path / "vocab.json"), merges_file=str(path / "merges.txt")
    )
    tokenizer.save_pretrained(str(path))
    config = RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=514,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    RobertaModel(config).save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_roberta(tmp_path_factory.mktemp("tiny_roberta"))


def transformer_config(name: str, window: int = 64, stride: int = 48) -> Dict[str, Any]:
    return {
        "model": {
            "@architectures": "spacy-transformers.TransformerModel.v3",
            "name": name,
            "tokenizer_config": {"use_fast": True},
            "get_spans": {
                "@span_getters": "spacy-transformers.strided_spans.v1",
                "window": window,
                "stride": stride,
            },
        }
    }


TOK2VEC_MODEL: Dict[str, Any] = {
    "@architectures": "spacy-mtl.MultiGroupClassifier.v1",
    "tok2vec": {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": {
            "@architectures": "spacy.MultiHashEmbed.v2",
            "width": 32,
            "attrs": ["NORM", "PREFIX", "SUFFIX"],
            "rows": [1000, 500, 500],
            "include_static_vectors": False,
        },
        "encode": {
            "@architectures": "spacy.MaxoutWindowEncoder.v2",
            "width": 32,
            "window_size": 1,
            "maxout_pieces": 2,
            "depth": 1,
        },
    },
}


def make_nlp(
    groups: Dict[str, Dict[str, Any]],
    *,
    bert: Optional[Path] = None,
    **component: Any,
) -> Language:
    """A blank English pipeline: [transformer] + mtl_textcat (a Tok2Vec if no bert)."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    config: Dict[str, Any] = {"groups": groups, **component}
    if bert is not None:
        nlp.add_pipe("transformer", config=transformer_config(str(bert)))
    else:
        config.setdefault("model", TOK2VEC_MODEL)
    nlp.add_pipe("mtl_textcat", config=config)
    return nlp


GROUPS: Dict[str, Dict[str, Any]] = {
    "sentiment": {"kind": "multiclass", "labels": ["negative", "neutral", "positive"]},
    "emotion": {"kind": "multilabel", "labels": [], "weight": 2.0},
}

# Partial labels: some docs lack whole groups, one lacks one label of the multilabel group.
TRAIN_DATA: List[tuple] = [
    (
        "i love this movie",
        {
            "sentiment/negative": 0.0,
            "sentiment/neutral": 0.0,
            "sentiment/positive": 1.0,
            "emotion/joy": 1.0,
            "emotion/anger": 0.0,
            "emotion/sadness": 0.0,
        },
    ),
    (
        "i hate this awful film",
        {
            "sentiment/negative": 1.0,
            "sentiment/neutral": 0.0,
            "sentiment/positive": 0.0,
            "emotion/joy": 0.0,
            "emotion/anger": 1.0,
            "emotion/sadness": 0.0,
        },
    ),
    ("the food was ok", {"sentiment/neutral": 1.0}),
    ("a sad sad day", {"emotion/joy": 0.0, "emotion/anger": 0.0, "emotion/sadness": 1.0}),
    ("what a great fun day", {"sentiment/positive": 1.0, "emotion/joy": 1.0, "emotion/anger": 0.0}),
    (
        "this is boring and bad",
        {
            "sentiment/negative": 1.0,
            "emotion/joy": 0.0,
            "emotion/anger": 0.0,
            "emotion/sadness": 0.0,
        },
    ),
]


def make_examples(nlp: Language, data: List[tuple] = TRAIN_DATA) -> List[Example]:
    return [Example.from_dict(nlp.make_doc(text), {"cats": cats}) for text, cats in data]


def shared_data_dir() -> Path:
    """../shared/data next to the repo, or $SPACY_MTL_DATA."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("SPACY_MTL_DATA", default))


@pytest.fixture(scope="module")
def saved_pipeline(
    tmp_path_factory: pytest.TempPathFactory,
) -> Tuple[Language, List[Example], Path]:
    """A tiny Tok2Vec pipeline trained a few steps, saved, with a gold DocBin beside it."""
    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(5):
        nlp.update(examples, sgd=optimizer)
    root = tmp_path_factory.mktemp("trained")
    nlp.to_disk(root / "model")
    db = DocBin()
    for text, cats in TRAIN_DATA:
        doc = nlp.make_doc(text)
        doc.cats = cats
        db.add(doc)
    db.to_disk(root / "dev.spacy")
    return nlp, examples, root


# Texts of very different lengths, empty and blank ones among them (batching, windows).
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
