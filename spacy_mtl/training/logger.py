"""A `spacy train` console logger whose table shows each group's loss.

spaCy's own console logger prints one loss column per trainable component. Ours adds one
column per group of every `mtl_textcat` component (the unweighted `L_g` the component reports
as `losses["{component}:{group}"]`), the learned loss weight of each group when the
component uses uncertainty weighting ("w {group}": exp(−s_g)·weight_g), keeps spaCy's score
columns, and ends each row with the docs trained on so far per data set.

    [training.logger]
    @loggers = "spacy-mtl.ConsoleLogger.v1"
    progress_bar = "eval"

Between rows, spaCy's progress bar (the same as `spacy.ConsoleLogger.v3`'s, on stderr, off
when stderr is not a terminal) counts the updates to the next evaluation ("eval") or to
`max_steps` ("train"): on CPU an evaluation can be minutes away.
"""

import sys
from typing import IO, Any, Callable, Dict, List, Optional, Tuple

import srsly
import tqdm
from spacy.language import Language
from spacy.util import registry
from wasabi import Printer

LogStep = Callable[[Optional[Dict[str, Any]]], None]
PROGRESS_BARS = (None, "train", "eval")


@registry.loggers("spacy-mtl.ConsoleLogger.v1")
def make_console_logger(
    output_file: Optional[str] = None,
    progress_bar: Optional[str] = "eval",
) -> Callable[[Language, IO, IO], Tuple[LogStep, Callable[[], None]]]:
    """Console table with a loss column per mtl_textcat group.

    output_file (Optional[str]): Also write each row as JSON lines to this file.
    progress_bar (Optional[str]): "eval" (default): a bar of the updates to the next
        evaluation; "train": of the updates to `training.max_steps`; None: no bar. As
        `spacy.ConsoleLogger.v3`'s `progress_bar`.
    """
    if progress_bar not in PROGRESS_BARS:
        raise ValueError(
            f"spacy-mtl.ConsoleLogger.v1: progress_bar must be 'eval', 'train' or null, "
            f"got {progress_bar!r}."
        )

    def setup_printer(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[LogStep, Callable[[], None]]:
        msg = Printer(no_print=True)
        loss_keys = _loss_keys(nlp)
        weight_keys = _weight_keys(nlp)
        score_weights = nlp.config["training"]["score_weights"]
        score_cols = [col for col, weight in score_weights.items() if weight is not None]
        weight_titles = [f"w {group}" for _, group in weight_keys]
        header = ["E", "#"] + [_short(k) for k in loss_keys] + weight_titles
        header += [*score_cols, "Score", "Docs per data set"]
        widths = [3, 6] + [max(8, len(_short(k))) for k in loss_keys]
        widths += [max(6, len(t)) for t in weight_titles]
        widths += [max(6, len(c)) for c in score_cols] + [6, 17]
        aligns = ["r"] * (len(header) - 1) + ["l"]
        # Closed in finalize(), which spaCy calls when training ends.
        stream = open(output_file, "w", encoding="utf8") if output_file else None  # noqa: SIM115

        def write(text: str) -> None:
            print(text, file=stdout, flush=True)

        write(msg.row(header, widths=widths, aligns=aligns, spacing=2))
        write(msg.row(["-" * w for w in widths], spacing=2))

        max_steps = nlp.config["training"]["max_steps"]
        eval_frequency = nlp.config["training"]["eval_frequency"]
        progress: Optional[tqdm.tqdm] = None

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            nonlocal progress
            if info is None:
                if progress is not None:
                    progress.update(1)
                return
            if progress is not None:
                progress.close()
                progress = None
            losses = [float(info["losses"].get(k, 0.0)) for k in loss_keys]
            scores = []
            for col in score_cols:
                value = info["other_scores"].get(col)
                value = 0.0 if not isinstance(value, (int, float)) else float(value)
                scores.append(value if col == "speed" else value * 100)
            weights = [
                float(getattr(nlp.get_pipe(name), "group_loss_weights")[group])  # noqa: B009
                for name, group in weight_keys
            ]
            seen = _docs_seen(nlp)
            row = [info["epoch"], info["step"]]
            row += [f"{x:.2f}" for x in losses] + [f"{x:.3g}" for x in weights]
            row += [f"{x:.2f}" for x in scores]
            row.append(f"{float(info['score']):.2f}")
            row.append(" ".join(f"{name} {count}" for name, count in sorted(seen.items())))
            write(msg.row(row, widths=widths, aligns=aligns, spacing=2))
            if progress_bar is not None:
                progress = _progress(progress_bar, info, max_steps, eval_frequency, stderr)
            if stream is not None:
                record = {
                    "epoch": info["epoch"],
                    "step": info["step"],
                    "losses": dict(zip(loss_keys, losses)),
                    "scores": dict(zip(score_cols, scores)),
                    "score": float(info["score"]),
                    "loss_weights": {f"{n}:{g}": w for (n, g), w in zip(weight_keys, weights)},
                    "docs_seen": seen,
                }
                stream.write(srsly.json_dumps(record) + "\n")
                stream.flush()

        def finalize() -> None:
            if progress is not None:
                progress.close()
            if stream is not None:
                stream.close()

        return log_step, finalize

    return setup_printer


def _progress(
    kind: str, info: Dict[str, Any], max_steps: int, eval_frequency: int, stderr: IO
) -> tqdm.tqdm:
    """The bar after a row, as spaCy's ConsoleLogger.v3 draws it (disable=None: not on a
    stream that is not a terminal)."""
    if kind == "train":
        total, initial, desc = max_steps, int(info["step"]), f"Last eval epoch {info['epoch']}"
    else:
        total, initial, desc = eval_frequency, 0, f"Epoch {info['epoch'] + 1}"
    bar = tqdm.tqdm(total=total or None, initial=initial, disable=None, leave=False, file=stderr)
    bar.set_description(desc)
    return bar


def _loss_keys(nlp: Language) -> List[str]:
    """Each trainable component's loss key, followed by its groups' keys (mtl_textcat)."""
    keys = []
    for name, pipe in nlp.pipeline:
        if not getattr(pipe, "is_trainable", False):
            continue
        keys.append(name)
        schema = getattr(pipe, "schema", None)
        if schema is not None:
            keys.extend(f"{name}:{group.name}" for group in schema)
    return keys


def _weight_keys(nlp: Language) -> List[Tuple[str, str]]:
    """(component, group) of every mtl_textcat component that learns its group weights."""
    return [
        (name, group.name)
        for name, pipe in nlp.pipeline
        if getattr(pipe, "weighting", None) == "uncertainty"
        for group in getattr(pipe, "schema")  # noqa: B009
    ]


def _docs_seen(nlp: Language) -> Dict[str, int]:
    """Docs trained on so far per data set, as the first mtl_textcat component counted them."""
    for _, pipe in nlp.pipeline:
        seen = getattr(pipe, "docs_seen", None)
        if seen:
            return dict(seen)
    return {}


def _short(key: str) -> str:
    """Column title: 'Loss transformer', 'L emotion' for a group."""
    return f"L {key.split(':', 1)[1]}" if ":" in key else f"Loss {key}"
