"""The page of `spacy-mtl serve` in a real browser: headless Chromium driven by selenium
types texts, predicts, reads the bars, clicks a label and reads its explanation.

Needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver) and
selenium; skipped without them. SPACY_MTL_SCREENSHOT=docs/serve.png also saves the
screenshot there (how docs/serve.png is made).
"""

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Tuple

import pytest

pytest.importorskip("fastapi", reason="spacy-mtl[serve] (fastapi) is not installed")
pytest.importorskip("uvicorn", reason="spacy-mtl[serve] (uvicorn) is not installed")
pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")

from conftest import GROUPS, make_examples, make_nlp
from spacy.language import Language

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

TEXTS = ["i love this movie", "what a sad sad day"]


@pytest.fixture(scope="module")
def trained() -> Language:
    """The conftest pipeline, trained until it fits its six docs (labels worth showing)."""
    nlp = make_nlp(GROUPS)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    return nlp


@pytest.fixture(scope="module")
def server(
    trained: Language, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tuple[str, Any]]:
    """A copy of `trained` (the server's thread owns it) on a free loopback port, served by
    uvicorn in a thread; (url, app)."""
    import spacy
    import uvicorn

    from spacy_mtl.workflows.serve import make_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = tmp_path_factory.mktemp("served") / "model"
    trained.to_disk(folder)
    app = make_app(spacy.load(folder))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # type: ignore[assignment]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver named explicitly: selenium would otherwise try to download one.
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_page_predicts_and_explains(
    server: Tuple[str, Any], browser: Any, trained: Language, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = server
    wait = WebDriverWait(browser, 30)
    browser.get(url)
    # /info filled the header: model name and groups.
    wait.until(lambda d: "sentiment (multiclass)" in d.find_element(By.ID, "model").text)

    browser.find_element(By.ID, "texts").send_keys("\n".join(TEXTS))
    browser.find_element(By.ID, "predict").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".doc")) == len(TEXTS))

    cards = browser.find_elements(By.CSS_SELECTOR, ".doc")
    component = trained.get_pipe("mtl_textcat")
    for card, text in zip(cards, TEXTS):
        doc = trained(text)
        assert card.find_element(By.CSS_SELECTOR, ".doc-text").text == text
        groups = card.find_elements(By.CSS_SELECTOR, ".group")
        assert [g.get_attribute("data-group") for g in groups] == component.schema.names
        for group in groups:
            name = group.get_attribute("data-group")
            assert group.find_element(By.CSS_SELECTOR, ".group-name").text.startswith(name)
            labels = group.find_elements(By.CSS_SELECTOR, ".label")
            bars = group.find_elements(By.CSS_SELECTOR, ".bar")
            assert len(labels) == len(bars) == len(component.schema[name].labels)
            for label, bar in zip(labels, bars):
                score = doc._.mtl_scores[name][label.text]
                width = float(bar.get_attribute("style").split("width:")[1].split("%")[0])
                assert width == pytest.approx(100 * score, abs=0.06)
            chosen = [b.text for b in group.find_elements(By.CSS_SELECTOR, ".label.chosen")]
            decided = doc._.mtl_labels[name]
            assert chosen == (
                [decided]
                if isinstance(decided, str)
                else sorted(decided, key=lambda x: -doc._.mtl_scores[name][x])
            )

    # Click the first text's sentiment label: its explanation shows the text's tokens.
    first = cards[0]
    label = first.find_element(
        By.CSS_SELECTOR, '.label[data-group="sentiment"][data-label="positive"]'
    )
    label.click()
    wait.until(lambda d: first.find_elements(By.CSS_SELECTOR, ".explanation .tok"))
    tokens = first.find_elements(By.CSS_SELECTOR, ".explanation .tok")
    assert [t.text for t in tokens] == ["i", "love", "this", "movie"]
    weights = [float(t.get_attribute("data-weight")) for t in tokens]
    from spacy_mtl.workflows.explain import explain

    assert weights == pytest.approx(
        list(explain(trained, TEXTS[0], "sentiment", "positive").weights), abs=1e-5
    )
    head = first.find_element(By.CSS_SELECTOR, ".explanation-head").text
    assert head.startswith("sentiment / positive: score")

    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    shot = tmp_path / "serve.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    target = os.environ.get("SPACY_MTL_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)


def test_page_shows_the_servers_error(server: Tuple[str, Any], browser: Any) -> None:
    """An empty box asks for a text; the page does not send it."""
    from selenium.webdriver.common.by import By

    url, app = server
    browser.get(url)
    before = app.state.batcher.stats.batches
    browser.find_element(By.ID, "predict").click()
    assert browser.find_element(By.ID, "error").text == "Type a text first."
    assert app.state.batcher.stats.batches == before
