"""Occlusion explanations: weights equal the score drops computed independently, and are
faithful (deleting the top tokens hurts the label more than deleting random ones) on a
model trained here so that keywords drive the labels."""

import random
import re
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy
import pytest
from conftest import make_nlp
from spacy.language import Language
from spacy.training import Example

import spacy_mtl
from spacy_mtl.workflows.explain import ExplainError, Explanation, TextTooLongError, explain

FILLERS = "the movie film food day people thing stuff was is it this that really just a and".split()
KEYWORD_GROUPS: Dict[str, Dict[str, Any]] = {
    "sentiment": {"kind": "multiclass", "labels": ["negative", "positive"]},
    "emotion": {"kind": "multilabel", "labels": ["joy", "anger"]},
}
# label -> the one word that decides it in the data (absent: the other class).
KEYWORDS = {("sentiment", "positive"): "love", ("emotion", "joy"): "happy"}


def keyword_data(n: int, seed: int) -> List[Tuple[str, Dict[str, float]]]:
    """Filler words, with "love" in the positive texts, "happy" in the joyful ones and
    "angry" in the angry ones (each independent of the others)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.choices(FILLERS, k=rng.randint(4, 9))
        positive, joy, anger = i % 2 == 0, rng.random() < 0.5, rng.random() < 0.5
        for flag, keyword in ((positive, "love"), (joy, "happy"), (anger, "angry")):
            if flag:
                words.insert(rng.randrange(len(words) + 1), keyword)
        cats = {
            "sentiment/positive": float(positive),
            "sentiment/negative": float(not positive),
            "emotion/joy": float(joy),
            "emotion/anger": float(anger),
        }
        out.append((" ".join(words), cats))
    return out


def train_keyword_nlp(epochs: int = 30) -> Language:
    """A Tok2Vec pipeline trained until the keywords drive the labels."""
    nlp = make_nlp(KEYWORD_GROUPS)
    examples = [
        Example.from_dict(nlp.make_doc(text), {"cats": cats})
        for text, cats in keyword_data(80, seed=0)
    ]
    optimizer = nlp.initialize(lambda: examples)
    for epoch in range(epochs):
        random.Random(epoch).shuffle(examples)
        for start in range(0, len(examples), 16):
            nlp.update(examples[start : start + 16], sgd=optimizer, drop=0.1)
    return nlp


@pytest.fixture(scope="module")
def keyword_nlp() -> Language:
    nlp = train_keyword_nlp()
    # The premise of the faithfulness tests: the model did learn the keyword.
    held_out = keyword_data(40, seed=1)
    right = sum(
        (nlp(text)._.mtl_labels["sentiment"] == "positive") == (cats["sentiment/positive"] == 1)
        for text, cats in held_out
    )
    assert right / len(held_out) >= 0.8
    return nlp


def score(nlp: Language, text: str, group: str, label: str) -> float:
    return nlp(text)._.mtl_scores[group][label]


def text_without(expl: Explanation, drop: Sequence[int]) -> str:
    """The explained text without the tokens `drop`, from the tokens by hand; a dropped
    token's space goes to the kept token before it if that has none ("it, x" -> "it x")."""
    pieces: List[List[str]] = []
    for i, (token, space) in enumerate(zip(expl.tokens, expl.whitespace)):
        if i not in drop:
            pieces.append([token, space])
        elif pieces and not pieces[-1][1]:
            pieces[-1][1] = space
    return "".join(token + space for token, space in pieces)


def labelled_texts(group: str, label: str, n: int) -> List[str]:
    key = f"{group}/{label}"
    return [text for text, cats in keyword_data(3 * n, seed=2) if cats[key] == 1.0][:n]


@pytest.mark.parametrize("group,label", [("sentiment", "positive"), ("emotion", "joy")])
def test_weight_is_the_score_drop_without_the_token(
    keyword_nlp: Language, group: str, label: str
) -> None:
    for text in [*labelled_texts(group, label, 3), "i love it, happy day!"]:
        expl = explain(keyword_nlp, text, group, label)
        full = score(keyword_nlp, text, group, label)
        assert expl.score == pytest.approx(full, abs=1e-5)
        assert "".join(t + w for t, w in zip(expl.tokens, expl.whitespace)) == text
        assert list(expl.tokens) == [t.text for t in keyword_nlp.make_doc(text)]
        for i in range(len(expl.tokens)):
            dropped = score(keyword_nlp, text_without(expl, [i]), group, label)
            assert expl.weights[i] == pytest.approx(full - dropped, abs=1e-5), (text, i)


@pytest.mark.parametrize("group,label", sorted(KEYWORDS))
def test_the_keyword_gets_the_largest_weight(keyword_nlp: Language, group: str, label: str) -> None:
    keyword = KEYWORDS[(group, label)]
    texts = labelled_texts(group, label, 10)
    top = [explain(keyword_nlp, text, group, label) for text in texts]
    hits = sum(expl.tokens[expl.top(1)[0]] == keyword for expl in top)
    assert hits >= 9, [(e.text, e.tokens[e.top(1)[0]]) for e in top]


@pytest.mark.parametrize("group,label", sorted(KEYWORDS))
def test_deleting_top_tokens_lowers_the_score_more_than_random_ones(
    keyword_nlp: Language, group: str, label: str
) -> None:
    """Averaged over docs, deleting the k tokens of largest weight lowers the label's score
    more than deleting k tokens at random (scores computed on the shortened texts)."""
    rng = random.Random(0)
    k = 2
    top_drops, random_drops = [], []
    for text in labelled_texts(group, label, 12):
        expl = explain(keyword_nlp, text, group, label)
        full = expl.score
        top_drops.append(full - score(keyword_nlp, text_without(expl, expl.top(k)), group, label))
        for _ in range(5):
            picked = rng.sample(range(len(expl.tokens)), k)
            shortened = text_without(expl, picked)
            random_drops.append(full - score(keyword_nlp, shortened, group, label))
    assert numpy.mean(top_drops) > numpy.mean(random_drops) + 0.1


def test_transformer_pipeline(tiny_bert: Path) -> None:
    """Occlusion needs only scores, so a transformer pipeline is explained the same way
    (an untrained tiny BERT: the weights need not mean anything, only be the drops)."""
    from conftest import GROUPS, make_examples

    nlp = make_nlp(GROUPS, bert=tiny_bert)
    nlp.initialize(lambda: make_examples(nlp))
    text = "what a great fun day"
    expl = explain(nlp, text, "emotion", "joy")
    full = score(nlp, text, "emotion", "joy")
    assert expl.score == pytest.approx(full, abs=1e-5)
    for i in range(len(expl.tokens)):
        dropped = score(nlp, text_without(expl, [i]), "emotion", "joy")
        assert expl.weights[i] == pytest.approx(full - dropped, abs=1e-5)
    assert any(abs(w) > 1e-6 for w in expl.weights)


def test_unknown_group_or_label_names_the_known_ones(keyword_nlp: Language) -> None:
    with pytest.raises(ExplainError, match="'sentiment', 'emotion'"):
        explain(keyword_nlp, "a text", "sentimnet", "positive")
    with pytest.raises(ExplainError, match="'negative', 'positive'"):
        explain(keyword_nlp, "a text", "sentiment", "joy")


def test_too_many_tokens(keyword_nlp: Language) -> None:
    with pytest.raises(TextTooLongError, match=r"5 tokens.*limited to 4"):
        explain(keyword_nlp, "one two three four five", "sentiment", "positive", max_tokens=4)
    assert len(explain(keyword_nlp, "one two three four", "sentiment", "positive").weights) == 4


def test_empty_and_one_token_texts(keyword_nlp: Language) -> None:
    empty = explain(keyword_nlp, "", "sentiment", "positive")
    assert empty.tokens == () and empty.weights == ()
    assert empty.score == pytest.approx(score(keyword_nlp, "", "sentiment", "positive"))
    one = explain(keyword_nlp, "love", "sentiment", "positive")
    # Without its only token the text is empty: the weight is the drop to the empty score.
    assert one.weights[0] == pytest.approx(one.score - empty.score, abs=1e-5)


def test_to_html_is_self_contained_and_escaped(keyword_nlp: Language) -> None:
    expl = explain(keyword_nlp, "i love this & that", "sentiment", "positive")
    page = expl.to_html()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert ">&amp;</span>" in page
    markup = Explanation("x", "g<", "l", 0.5, ("<b>this</b>",), ("",), (0.1,)).to_html()
    assert "<b>this" not in markup and "&lt;b&gt;this&lt;/b&gt;" in markup and "g&lt;" in markup
    assert "http://" not in page and "https://" not in page and "<script" not in page
    fragment = expl.to_html(page=False)
    assert fragment in page and "<html" not in fragment
    assert fragment.count('class="mtl-token"') == len(expl.tokens)
    # The strongest token is fully coloured, the others in proportion to their weights.
    strongest = max(range(len(expl.weights)), key=lambda i: abs(expl.weights[i]))
    alpha = [float(a) for a in re.findall(r"rgba\(\d+, \d+, \d+, ([\d.]+)\)", fragment)]
    assert alpha[strongest] == 1.0
    assert alpha == pytest.approx(
        [abs(w) / abs(expl.weights[strongest]) for w in expl.weights], abs=1e-3
    )
    assert f'title="{expl.weights[0]:+.4f}"' in fragment


def test_to_dict_and_top(keyword_nlp: Language) -> None:
    expl = explain(keyword_nlp, "the film i love", "sentiment", "positive")
    data = expl.to_dict()
    assert data["tokens"] == ["the", "film", "i", "love"]
    assert data["weights"] == list(expl.weights) and data["method"] == "occlusion"
    order = expl.top(4)
    assert sorted(order) == [0, 1, 2, 3]
    assert [expl.weights[i] for i in order] == sorted(expl.weights, reverse=True)


def test_exported_lazily_from_the_package() -> None:
    assert "explain" in spacy_mtl.__all__
    assert spacy_mtl.explain is explain
