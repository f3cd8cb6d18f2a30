"""`spacy-mtl serve`: the app through FastAPI's TestClient, the batching queue on its own,
and the real server in a subprocess on a free loopback port (SIGTERM stops it cleanly)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Tuple

import pytest

pytest.importorskip("fastapi", reason="spacy-mtl[serve] (fastapi) is not installed")
pytest.importorskip("httpx", reason="the TestClient needs httpx")

import httpx
import spacy
from conftest import TEXTS
from fastapi.testclient import TestClient
from spacy.language import Language
from typer.testing import CliRunner

from spacy_mtl.cli import app as cli_app
from spacy_mtl.workflows.explain import explain
from spacy_mtl.workflows.serve import BatchQueue, make_app

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"max_texts": 8, "max_body_bytes": 2000, "max_explain_tokens": 12}


@pytest.fixture(scope="module")
def model(saved_pipeline: Tuple[Language, Any, Path]) -> Path:
    return saved_pipeline[2] / "model"


@pytest.fixture(scope="module")
def reference(model: Path) -> Language:
    """A copy of the served pipeline for expected values: the served one belongs to the
    server's worker thread."""
    return spacy.load(model)


@pytest.fixture(scope="module")
def client(model: Path) -> Iterator[TestClient]:
    with TestClient(make_app(spacy.load(model), **LIMITS)) as test_client:
        yield test_client


def expected(nlp: Language, texts: List[str]) -> List[Dict[str, Any]]:
    return [{"scores": d._.mtl_scores, "labels": d._.mtl_labels} for d in nlp.pipe(texts)]


def assert_same_docs(got: List[Dict[str, Any]], want: List[Dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g["labels"] == w["labels"]
        assert list(g["scores"]) == list(w["scores"])  # groups in schema order
        for group, scores in w["scores"].items():
            assert list(g["scores"][group]) == list(scores)
            assert g["scores"][group] == pytest.approx(scores, abs=1e-5)


# -- /predict ----------------------------------------------------------------------------


def test_predict_equals_nlp_pipe(client: TestClient, reference: Language) -> None:
    texts = TEXTS[:8]  # empty and blank texts among them
    response = client.post("/predict", json={"texts": texts})
    assert response.status_code == 200, response.text
    assert_same_docs(response.json()["docs"], expected(reference, texts))
    assert client.post("/predict", json={"texts": []}).json() == {"docs": []}


def test_concurrent_clients_are_batched_and_get_their_own_docs(
    model: Path, reference: Language
) -> None:
    app = make_app(spacy.load(model), wait_ms=200.0, max_batch=64)
    requests = [[f"text {i} i love it", *(["the food was ok"] * (i % 3))] for i in range(24)]
    with TestClient(app) as test_client, ThreadPoolExecutor(24) as pool:
        barrier = threading.Barrier(24)

        def send(texts: List[str]) -> Any:
            barrier.wait()
            return test_client.post("/predict", json={"texts": texts})

        responses = list(pool.map(send, requests))
    for texts, response in zip(requests, responses):
        assert response.status_code == 200
        assert_same_docs(response.json()["docs"], expected(reference, texts))
    stats = app.state.batcher.stats
    assert stats.texts == sum(map(len, requests))
    # 24 requests within the window share a few nlp.pipe calls.
    assert stats.batches <= 6 and stats.largest > 8


# -- the batching queue ------------------------------------------------------------------


class FakeNLP:
    """Counts its nlp.pipe calls; a text "boom" raises, as a broken doc would."""

    def __init__(self) -> None:
        self.calls: List[List[str]] = []
        self.threads: set = set()

    def pipe(self, texts: List[str], batch_size: int) -> Iterator[Any]:
        self.calls.append(list(texts))
        self.threads.add(threading.get_ident())
        if "boom" in texts:
            raise ValueError("boom")
        for text in texts:
            yield SimpleNamespace(
                _=SimpleNamespace(mtl_scores={"g": {"x": len(text)}}, mtl_labels={})
            )


def test_queue_caps_batches_and_keeps_each_jobs_order() -> None:
    nlp = FakeNLP()
    batcher = BatchQueue(nlp, max_batch=64, wait=0.0)  # type: ignore[arg-type]
    jobs = [[f"{j}-{i}" + "x" * i for i in range(10)] for j in range(10)]
    big = [f"big-{i}" for i in range(100)]
    futures = [batcher.predict(texts) for texts in [*jobs, big]]  # queued before the start
    batcher.start()
    results = [future.result(timeout=10) for future in futures]
    batcher.close()
    for texts, result in zip([*jobs, big], results):
        assert [r["scores"]["g"]["x"] for r in result] == [len(t) for t in texts]
    # Six jobs of 10 texts fit under 64; the next ones wait; the 100 texts run alone.
    assert [len(call) for call in nlp.calls] == [60, 40, 100]
    assert batcher.stats.batches == 3 and batcher.stats.largest == 100
    assert len(nlp.threads) == 1 and threading.get_ident() not in nlp.threads


def test_queue_fails_only_the_job_at_fault() -> None:
    nlp = FakeNLP()
    batcher = BatchQueue(nlp, wait=0.0)  # type: ignore[arg-type]
    good, bad, other = batcher.predict(["a"]), batcher.predict(["boom"]), batcher.predict(["bc"])
    cancelled = batcher.predict(["never"])
    assert cancelled.cancel()
    batcher.start()
    assert good.result(timeout=10)[0]["scores"] == {"g": {"x": 1}}
    assert other.result(timeout=10)[0]["scores"] == {"g": {"x": 2}}
    with pytest.raises(ValueError, match="boom"):
        bad.result(timeout=10)
    assert batcher.call(lambda n: n is nlp).result(timeout=10) is True
    batcher.close()
    assert not any("never" in call for call in nlp.calls)
    assert not batcher.running
    with pytest.raises(RuntimeError, match="shutting down"):
        batcher.predict(["late"]).result(timeout=1)


def test_queue_waits_for_company_within_the_window() -> None:
    nlp = FakeNLP()
    batcher = BatchQueue(nlp, wait=0.5)  # type: ignore[arg-type]
    batcher.start()
    first = batcher.predict(["a"])
    time.sleep(0.05)
    second = batcher.predict(["b"])
    assert len(first.result(timeout=10)) == 1 and len(second.result(timeout=10)) == 1
    batcher.close()
    assert nlp.calls == [["a", "b"]]


def test_queue_gap_closes_the_window_early_but_keeps_arrivals() -> None:
    """With a gap, a job that waits alone runs once the gap passes (not the whole window),
    while jobs arriving closer together than the gap keep joining the batch."""
    nlp = FakeNLP()
    batcher = BatchQueue(nlp, wait=5.0, gap=0.3)  # type: ignore[arg-type]
    batcher.start()
    start = time.monotonic()
    assert len(batcher.predict(["alone"]).result(timeout=10)) == 1
    alone = time.monotonic() - start
    futures = []
    for i in range(4):  # 0.1 s apart: each arrives within the gap of the one before
        futures.append(batcher.predict([f"t{i}"]))
        time.sleep(0.1)
    assert all(len(f.result(timeout=10)) == 1 for f in futures)
    batcher.close()
    assert 0.3 <= alone < 2.0
    assert nlp.calls == [["alone"], ["t0", "t1", "t2", "t3"]]


def test_queue_refuses_a_negative_gap() -> None:
    with pytest.raises(ValueError, match="gap"):
        BatchQueue(FakeNLP(), gap=-1.0)  # type: ignore[arg-type]


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,status,message",
    [
        (b"texts=a", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"\xff\xfe{", 400, "not valid JSON"),
        (b'["a"]', 422, "must be a JSON object"),
        (b'{"text": ["a"]}', 422, 'Missing "texts"; unknown "text"'),
        (b'{"texts": "a text"}', 422, "array of strings, not a string"),
        (b'{"texts": ["a", 3]}', 422, "texts[1] must be a string, not a number"),
        (b'{"texts": [null]}', 422, "texts[0] must be a string, not null"),
        (b'{"texts": ["\\ud800"]}', 422, "lone surrogate"),
        (json.dumps({"texts": ["a"] * 9}).encode(), 413, "9 texts in one request; the limit is 8"),
        (json.dumps({"texts": ["a" * 3000]}).encode(), 413, "larger than the limit of 2000"),
    ],
)
def test_bad_predict_requests_get_a_json_error(
    client: TestClient, body: bytes, status: int, message: str
) -> None:
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert message in response.json()["error"]
    # The server keeps serving.
    assert client.post("/predict", json={"texts": ["ok"]}).status_code == 200


def test_body_over_the_limit_without_content_length(client: TestClient) -> None:
    """A chunked body has no Content-Length: the limit applies while reading."""

    def chunks() -> Iterator[bytes]:
        yield b'{"texts": ["'
        for _ in range(30):
            yield b"a" * 100
        yield b'"]}'

    response = client.post("/predict", content=chunks())
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["error"]


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    assert client.get("/nope").json() == {"error": "Not Found"}
    assert client.get("/predict").status_code == 405
    assert "error" in client.get("/predict").json()


# -- /explain ----------------------------------------------------------------------------


def test_explain_equals_the_function(client: TestClient, reference: Language) -> None:
    text = "i love this movie"
    response = client.post(
        "/explain", json={"text": text, "group": "sentiment", "label": "positive"}
    )
    assert response.status_code == 200, response.text
    data = response.json()
    want = explain(reference, text, "sentiment", "positive")
    assert data["tokens"] == list(want.tokens) == ["i", "love", "this", "movie"]
    assert data["weights"] == pytest.approx(list(want.weights), abs=1e-6)
    assert data["score"] == pytest.approx(want.score, abs=1e-6)


@pytest.mark.parametrize(
    "body,status,message",
    [
        ({"text": "a", "group": "sentimnet", "label": "x"}, 422, "'sentiment', 'emotion'"),
        (
            {"text": "a", "group": "sentiment", "label": "joy"},
            422,
            "'negative', 'neutral', 'positive'",
        ),
        ({"text": 1, "group": "sentiment", "label": "positive"}, 422, '"text" must be a string'),
        ({"text": "a", "group": "sentiment"}, 422, 'Missing "label"'),
        (
            {"text": " ".join(["word"] * 13), "group": "sentiment", "label": "positive"},
            413,
            "13 tokens; explanations are limited to 12",
        ),
    ],
)
def test_bad_explain_requests(
    client: TestClient, body: Dict[str, Any], status: int, message: str
) -> None:
    response = client.post("/explain", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]


# -- /health, /info, docs, the page --------------------------------------------------------


def test_health_info_and_openapi(client: TestClient, reference: Language) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["model"]["name"] == f"{reference.meta['lang']}_{reference.meta['name']}"
    assert info["model"]["version"] == reference.meta["version"]
    component = reference.get_pipe("mtl_textcat")
    assert [g["name"] for g in info["groups"]] == component.schema.names
    by_name = {g["name"]: g for g in info["groups"]}
    assert by_name["sentiment"]["kind"] == "multiclass"
    assert by_name["sentiment"]["labels"] == ["negative", "neutral", "positive"]
    assert by_name["emotion"]["kind"] == "multilabel"
    assert by_name["emotion"]["thresholds"] == {
        label: component.schema.threshold for label in component.schema["emotion"].labels
    }
    assert info["limits"]["max_texts"] == 8
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/explain", "/health", "/info"} <= set(schema["paths"])
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert "texts" in body["schema"]["properties"]
    assert client.get("/docs").status_code == 200


def test_page_is_self_contained(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'id="predict"' in page and 'fetch("/info")' in page and '"/explain"' in page
    # The machine may be offline: nothing is loaded from elsewhere.
    assert "src=" not in page and "http://" not in page and "https://" not in page


def test_health_is_503_once_the_worker_stopped(model: Path) -> None:
    app = make_app(spacy.load(model))
    with TestClient(app) as test_client:
        app.state.batcher.close()
        assert test_client.get("/health").status_code == 503


# -- the CLI and the real server -----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(args: List[str]) -> Tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "spacy_mtl", "serve", *args, "--port", str(port)],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.communicate()[1][-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("the server did not answer /health within 120 s")


def stop_server(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("the server did not stop within 30 s of SIGTERM") from None
    # uvicorn shuts down gracefully, then re-raises the signal so that the process ends
    # "killed by SIGTERM" as a supervisor expects (newer uvicorn); older ones exit 0.
    assert process.returncode in (0, -signal.SIGTERM), stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    # The lifespan ran to its end: the batching thread was stopped, nothing was cut off.
    assert "Application shutdown complete" in stderr, stderr[-3000:]
    return stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_server_subprocess_serves_and_stops_on_sigterm(
    model: Path, reference: Language, workers: int
) -> None:
    process, url = start_server([str(model), "--workers", str(workers)])
    try:
        texts = ["i love this movie", "a sad sad day"]
        response = httpx.post(f"{url}/predict", json={"texts": texts}, timeout=30)
        assert response.status_code == 200
        assert_same_docs(response.json()["docs"], expected(reference, texts))
        assert httpx.post(f"{url}/predict", content=b"{", timeout=30).status_code == 400
    finally:
        stderr = stop_server(process)
    assert f"Uvicorn running on {url}" in stderr  # bound to loopback by default
    assert ("Started parent process" in stderr) == (workers > 1)


def test_cli_refuses_a_missing_model_or_one_without_mtl_textcat(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no such folder" in result.output
    blank = tmp_path / "blank"
    spacy.blank("en").to_disk(blank)
    result = runner.invoke(cli_app, ["serve", str(blank)])
    assert result.exit_code == 1
    assert "no mtl_textcat component" in result.output
