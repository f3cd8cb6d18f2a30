"""Why did a text get a label: one weight per token by occlusion.

The weight of token i is the label's score on the whole text minus its score on the text
without token i: "how much the score drops when this token is removed". It needs n + 1
forward passes for n tokens, batched, and nothing from the model but its scores, so it is
exact in that meaning for any encoder (tok2vec or transformer). docs/serve.md says why this
method and not gradients.

    from spacy_mtl import explain
    expl = explain(nlp, "i love this film", "sentiment", "positive")
    expl.tokens, expl.weights, expl.to_html()
"""

import html
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.tokens import Doc

from ..schema import cat_key
from .loading import docs_before, find_component

METHOD = "occlusion"


class ExplainError(ValueError):
    """An explanation was asked for a group or label the component does not have, or for
    a text longer than allowed (`TextTooLongError`)."""


class TextTooLongError(ExplainError):
    """The text has more tokens than an explanation is allowed (`max_tokens`)."""


@dataclass(frozen=True)
class Explanation:
    """Per-token weights of one label's score for one text (`explain`).

    text (str): The text explained.
    group (str): The label group.
    label (str): The label within the group.
    score (float): The label's score on the whole text.
    tokens (Tuple[str, ...]): The spaCy tokens' texts.
    whitespace (Tuple[str, ...]): Each token's trailing whitespace (`token.whitespace_`), so
        that "".join(t + w) gives the text back.
    weights (Tuple[float, ...]): Per token, `score` minus the score without that token:
        positive where the token supports the label, negative where it speaks against it.
    method (str): How the weights were computed ("occlusion").
    """

    text: str
    group: str
    label: str
    score: float
    tokens: Tuple[str, ...]
    whitespace: Tuple[str, ...]
    weights: Tuple[float, ...]
    method: str = METHOD

    def top(self, k: int) -> List[int]:
        """Indices of the k tokens with the largest weights, largest first."""
        order = numpy.argsort(-numpy.asarray(self.weights, dtype="f8"), kind="stable")
        return [int(i) for i in order[:k]]

    def to_dict(self) -> Dict[str, Any]:
        """The explanation as JSON-ready data (what `POST /explain` returns)."""
        return {
            "text": self.text,
            "group": self.group,
            "label": self.label,
            "score": self.score,
            "method": self.method,
            "tokens": list(self.tokens),
            "whitespace": list(self.whitespace),
            "weights": list(self.weights),
        }

    def to_html(self, *, page: bool = True) -> str:
        """The text with each token shaded by its weight (green supports the label, red
        speaks against it; the strongest token of the text is fully coloured), each
        token's weight in its tooltip, as displaCy renders entities.

        page (bool): A whole self-contained HTML page (inline CSS, nothing loaded from
            elsewhere); False gives the markup alone, to put into a page of your own.
        RETURNS (str): The HTML.
        """
        scale = max((abs(w) for w in self.weights), default=0.0) or 1.0
        spans = []
        for token, space, weight in zip(self.tokens, self.whitespace, self.weights):
            colour = "22, 163, 74" if weight >= 0 else "220, 38, 38"
            alpha = round(abs(weight) / scale, 3)
            spans.append(
                f'<span class="mtl-token" style="background: rgba({colour}, {alpha})" '
                f'title="{weight:+.4f}">{html.escape(token)}</span>{html.escape(space)}'
            )
        header = (
            f'<div class="mtl-explain-head">{html.escape(self.group)} / '
            f"<b>{html.escape(self.label)}</b>: score {self.score:.3f} "
            f"({html.escape(self.method)}: the score drop when a token is removed)</div>"
        )
        body = (
            f'<div class="mtl-explain">{header}<div class="mtl-explain-text">'
            f"{''.join(spans)}</div></div>"
        )
        if not page:
            return body
        return html_page(f"{self.group}/{self.label}", body)


def html_page(title: str, body: str, css: str = "") -> str:
    """A whole self-contained HTML page (inline CSS, nothing loaded from elsewhere) around
    `body` (markup), with the explanations' style and `css` after it."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{PAGE_CSS}{css}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


PAGE_CSS = (
    "body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; "
    "margin: 2em; } "
    ".mtl-explain-head { color: #555; margin-bottom: 0.6em; } "
    ".mtl-explain-text { line-height: 2.4; font-size: 1.1em; white-space: pre-wrap; } "
    ".mtl-token { padding: 0.25em 0.35em; border-radius: 0.35em; }"
)


def explain(
    nlp: Language,
    text: str,
    group: str,
    label: str,
    *,
    component: Optional[str] = None,
    batch_size: int = 64,
    max_tokens: Optional[int] = None,
) -> Explanation:
    """Explain the score of `label` of `group` for `text` by occlusion: one weight per
    spaCy token, the score's drop when that token is removed from the text.

    nlp (Language): A pipeline with an mtl_textcat component.
    text (str): The text to explain.
    group (str): The label group.
    label (str): A label of the group.
    component (Optional[str]): The mtl_textcat component; by default the pipeline's only one.
    batch_size (int): Texts per forward pass (the text and its n variants, n + 1 in all).
    max_tokens (Optional[int]): Refuse texts of more tokens (the cost grows as n²); None
        for no limit.
    RETURNS (Explanation): Tokens, weights, the label's score and `to_html()`.
    RAISES ExplainError: Unknown group or label (the message lists the known ones), or
        more tokens than `max_tokens`.
    DOCS: docs/serve.md
    """
    comp = find_component(nlp, component)
    check_target(comp.schema, group, label)
    doc = nlp.make_doc(text)
    if max_tokens is not None and len(doc) > max_tokens:
        raise TextTooLongError(
            f"The text has {len(doc)} tokens; explanations are limited to {max_tokens} "
            "(one forward pass per token). Explain a shorter passage."
        )
    column = comp.schema.keys.index(cat_key(group, label))
    docs = [doc, *(_without(doc, i) for i in range(len(doc)))]
    scores = _scores(nlp, comp.name, docs, column, batch_size)
    full = scores[0]
    return Explanation(
        text=text,
        group=group,
        label=label,
        score=full,
        tokens=tuple(t.text for t in doc),
        whitespace=tuple(t.whitespace_ for t in doc),
        weights=tuple(full - s for s in scores[1:]),
    )


def check_target(schema: Any, group: str, label: str) -> None:
    """Raise `ExplainError` naming the known groups (or the group's labels) when `group`
    or `label` is not in `schema`."""
    if group not in schema:
        known = ", ".join(repr(name) for name in schema.names)
        raise ExplainError(f"Unknown group {group!r}; the groups are {known}.")
    labels = schema[group].labels
    if label not in labels:
        known = ", ".join(repr(name) for name in labels)
        raise ExplainError(f"Group {group!r} has no label {label!r}; its labels are {known}.")


def _without(doc: Doc, i: int) -> Doc:
    """`doc` without token i, the other tokens as they were: a new tokenization of the
    shortened text could split its neighbours differently, and then the weight would not
    be that of token i alone. The token's trailing space goes to the token before it if
    that has none ("it, happy" -> "it happy", not "ithappy"), so that the text a
    transformer reads keeps the words apart."""
    words = [t.text for t in doc]
    spaces = [bool(t.whitespace_) for t in doc]
    if i > 0:
        spaces[i - 1] = spaces[i - 1] or spaces[i]
    del words[i], spaces[i]
    return Doc(doc.vocab, words=words, spaces=spaces)


def _scores(
    nlp: Language, name: str, docs: Sequence[Doc], column: int, batch_size: int
) -> List[float]:
    """Score of output `column` of component `name` for each doc (the components before
    it run first, those after it do not)."""
    comp: Any = nlp.get_pipe(name)
    ready = list(docs_before(nlp, name, docs, batch_size=batch_size))
    out: List[float] = []
    for start in range(0, len(ready), batch_size):
        batch = ready[start : start + batch_size]
        probs = comp.model.ops.to_numpy(comp.scores_of(comp.predict(batch)))
        out.extend(float(v) for v in probs[:, column])
    return out
