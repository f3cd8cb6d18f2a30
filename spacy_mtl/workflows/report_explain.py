"""The evaluation report's explanations: for each group, a few of the test docs the model
got right most confidently and a few it got most confidently wrong, each with the
occlusion weights of the label it was judged on (`explain`).

Picked per group from the report's arrays (the docs annotated for the group, at the model's
own thresholds and temperatures):
- multiclass: *confident* = the predicted label is the gold one, highest score first;
  *wrong* = it is not, highest score of the predicted label first. The predicted label is
  explained.
- multilabel: *confident* = a label chosen and gold (highest score first); *wrong* = a
  label chosen but not gold (by its score) or gold but not chosen (by 1 - its score),
  the largest first. That label is explained.

Each doc appears once per group, and only docs of at most `max_tokens` tokens are picked
(occlusion costs one forward pass per token; short docs read best in a report).

DOCS: docs/evaluate.md, "Explanations".
"""

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Set, Tuple

import numpy
from spacy.language import Language
from spacy.training import Example

from .explain import Explanation, explain, html_page

if TYPE_CHECKING:
    from .report import GroupReport

CONFIDENT = "confident"
WRONG = "wrong"
EXPLANATIONS_FILE = "explanations.html"


@dataclass(frozen=True)
class ExplainedCase:
    """One explained test doc of a group's report.

    kind (str): "confident" (right, with a high score) or "wrong" (wrong, confidently).
    row (int): The doc's position in the evaluated examples.
    gold (Tuple[str, ...]): The doc's gold labels of the group.
    predicted (Tuple[str, ...]): The labels the model chose.
    explanation (Explanation): The weights of the label the doc was judged on.
    """

    kind: str
    row: int
    gold: Tuple[str, ...]
    predicted: Tuple[str, ...]
    explanation: Explanation


def decisions(report: "GroupReport") -> numpy.ndarray:
    """The model's decisions on every evaluated doc of one group, (n_docs, n_labels)."""
    p = report.probs
    return report.group.decide_matrix(p) if len(p) else numpy.zeros(p.shape, dtype=bool)


def pick_cases(
    report: "GroupReport",
    lengths: Sequence[int],
    k: int,
    max_tokens: int,
    *,
    chosen: Optional[numpy.ndarray] = None,
) -> List[Tuple[str, int, int]]:
    """The docs to explain for one group: (kind, row, label index), up to k of each kind,
    the confident ones first. `lengths` is each doc's token count; `chosen` the group's
    `decisions`, computed here when not given."""
    group = report.group
    p, y, m = report.probs, report.truths, report.masks
    short = numpy.asarray([0 < n <= max_tokens for n in lengths], dtype=bool)
    if chosen is None:
        chosen = decisions(report)
    gold = y > 0.5
    annotated = m > 0
    confident: List[Tuple[float, int, int]] = []
    wrong: List[Tuple[float, int, int]] = []
    if group.is_multiclass:
        rows = (
            numpy.flatnonzero(annotated[:, 0] & short) if p.shape[1] else numpy.zeros(0, dtype=int)
        )
        for i in rows:
            pred = int(chosen[i].argmax())
            target = confident if gold[i, pred] else wrong
            target.append((float(p[i, pred]), int(i), pred))
    else:
        for i, j in zip(*numpy.nonzero(annotated & short[:, None])):
            if chosen[i, j] and gold[i, j]:
                confident.append((float(p[i, j]), int(i), int(j)))
            elif chosen[i, j]:
                wrong.append((float(p[i, j]), int(i), int(j)))
            elif gold[i, j]:
                wrong.append((1.0 - float(p[i, j]), int(i), int(j)))
    out: List[Tuple[str, int, int]] = []
    for kind, pool in ((CONFIDENT, confident), (WRONG, wrong)):
        seen: Set[int] = set()
        # Highest first; ties by row, so the pick does not depend on the sort's stability.
        for _, i, j in sorted(pool, key=lambda t: (-t[0], t[1], t[2])):
            if len(seen) == k:
                break
            if i not in seen:
                seen.add(i)
                out.append((kind, i, j))
    return out


def explain_reports(
    nlp: Language,
    reports: Sequence["GroupReport"],
    examples: Sequence[Example],
    *,
    k: int = 3,
    max_tokens: int = 48,
    batch_size: int = 64,
) -> int:
    """Fill each report's `explanations` with up to k confident and k wrong docs.

    RETURNS (int): How many docs were explained in all.
    """
    lengths = [len(eg.predicted) for eg in examples]
    n = 0
    for report in reports:
        group = report.group
        labels = group.labels
        # One decision pass over the whole matrix: picking and each case's labels share it.
        chosen = decisions(report)
        cases = []
        for kind, row, j in pick_cases(report, lengths, k, max_tokens, chosen=chosen):
            gold_row = report.truths[row] > 0.5
            cases.append(
                ExplainedCase(
                    kind=kind,
                    row=row,
                    gold=tuple(label for label, on in zip(labels, gold_row) if on),
                    predicted=tuple(label for label, on in zip(labels, chosen[row]) if on),
                    explanation=explain(
                        nlp,
                        examples[row].reference.text,
                        group.name,
                        labels[j],
                        component=report.component,
                        batch_size=batch_size,
                    ),
                )
            )
        report.explanations = cases
        n += len(cases)
    return n


def _marked(expl: Explanation, top: int = 3) -> str:
    """The text as Markdown with its `top` most supporting tokens in bold."""
    strong = {i for i in expl.top(top) if expl.weights[i] > 0}
    parts = []
    for i, (token, space) in enumerate(zip(expl.tokens, expl.whitespace)):
        text = md_cell(token)
        parts.append((f"**{text}**" if i in strong else text) + space)
    return "".join(parts).strip().replace("\n", " ")


def md_cell(text: str) -> str:
    """Text safe in a Markdown table cell: Markdown's markup characters backslash-escaped
    and line breaks made spaces. Shared with report_render (which imports this module)."""
    for char in "\\|*_`[]<>":
        text = text.replace(char, "\\" + char)
    return text.replace("\r", " ").replace("\n", " ")


def explanation_lines(report: "GroupReport", html_name: str = EXPLANATIONS_FILE) -> List[str]:
    """The report.md section of one group's explanations (nothing when there are none)."""
    if not report.explanations:
        return []
    lines = [
        "### Explanations",
        "",
        "Test docs the model got right most confidently and most confidently wrong, with "
        "the label each was judged on and its score; in bold the (up to) three tokens "
        "whose removal lowers that score most (occlusion). Shaded by weight in "
        f"[{html_name}]({html_name}).",
        "",
        "| case | gold | predicted | explained (score) | text | top tokens |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for case in report.explanations:
        expl = case.explanation
        top = ", ".join(
            f"{md_cell(expl.tokens[i])} {expl.weights[i]:+.3f}"
            for i in expl.top(3)
            if expl.weights[i] > 0
        )
        lines.append(
            f"| {case.kind} | {md_cell(', '.join(case.gold)) or '–'} | "
            f"{md_cell(', '.join(case.predicted)) or '–'} | "
            f"{md_cell(expl.label)} ({expl.score:.3f}) | "
            f"{_marked(expl)} | {top or '–'} |"
        )
    lines.append("")
    return lines


def write_explanations_html(reports: Sequence["GroupReport"], path: Path, title: str) -> Path:
    """One self-contained HTML page with every group's explanations, shaded by weight."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for report in reports:
        if not report.explanations:
            continue
        body.append(f"<h2>{html.escape(report.component)}: {html.escape(report.name)}</h2>")
        for case in report.explanations:
            gold = html.escape(", ".join(case.gold) or "–")
            pred = html.escape(", ".join(case.predicted) or "–")
            body.append(
                f'<p class="mtl-case"><b>{case.kind}</b> (doc {case.row}): gold {gold}; '
                f"predicted {pred}</p>"
            )
            body.append(case.explanation.to_html(page=False))
    page = html_page(title, "\n".join(body), " .mtl-case { margin: 1.6em 0 0.3em; }")
    path.write_text(page, encoding="utf8")
    return path
