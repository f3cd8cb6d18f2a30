"""The training logger: spaCy's progress bar between rows, our columns in the rows."""

import io

import pytest
from conftest import GROUPS, make_examples, make_nlp

from spacy_mtl.training.logger import make_console_logger


class TerminalStream(io.StringIO):
    """A stream that says it is a terminal, so tqdm draws (it is off elsewhere)."""

    def isatty(self) -> bool:
        return True


def _trained_nlp():
    nlp = make_nlp(GROUPS)
    nlp.config["training"]["score_weights"] = {"mtl_score": 1.0}
    nlp.config["training"]["eval_frequency"] = 7
    nlp.config["training"]["max_steps"] = 21
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda egs=examples: egs)
    losses: dict = {}
    nlp.update(examples, sgd=optimizer, losses=losses)
    return nlp, losses


def _row(losses, step):
    return {"epoch": 0, "step": step, "losses": losses, "other_scores": {}, "score": 0.5}


@pytest.mark.parametrize("kind,expected", [("eval", "3/7"), ("train", "3/21")])
def test_progress_bar_counts_updates_between_rows(kind: str, expected: str, monkeypatch) -> None:
    import tqdm

    class Unthrottled(tqdm.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, mininterval=0, **kwargs)

    monkeypatch.setattr("spacy_mtl.training.logger.tqdm.tqdm", Unthrottled)
    nlp, losses = _trained_nlp()
    out, err = io.StringIO(), TerminalStream()
    log_step, finalize = make_console_logger(progress_bar=kind)(nlp, out, err)
    log_step(_row(losses, 0))
    for _ in range(3):
        log_step(None)
    assert expected in err.getvalue()
    log_step(_row(losses, 3))
    finalize()
    # The rows stay on stdout, the bar on stderr only.
    assert "/7" not in out.getvalue() and "/21" not in out.getvalue()
    assert len([line for line in out.getvalue().splitlines() if line.strip()]) == 4


def test_no_progress_bar_off_a_terminal_or_when_asked() -> None:
    nlp, losses = _trained_nlp()
    for err, kind in ((io.StringIO(), "eval"), (TerminalStream(), None)):
        log_step, finalize = make_console_logger(progress_bar=kind)(nlp, io.StringIO(), err)
        log_step(_row(losses, 0))
        log_step(None)
        finalize()
        assert err.getvalue() == ""


def test_unknown_progress_bar_is_refused() -> None:
    with pytest.raises(ValueError, match="progress_bar"):
        make_console_logger(progress_bar="steps")
