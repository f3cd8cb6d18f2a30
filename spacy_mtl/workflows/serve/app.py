"""The HTTP app: `POST /predict`, `POST /explain`, `GET /health`, `GET /info`, the page at `/`.

Requests are read and checked here (size, JSON, fields, types) and answered with a JSON
`{"error": ...}` and a 4xx status when they are wrong; the work goes to the `BatchQueue`,
whose one thread owns the pipeline. FastAPI writes the OpenAPI schema (`/docs`,
`/openapi.json`) from the models below. See docs/serve.md.
"""

import asyncio
import json
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any, AsyncIterator, Dict, List, Optional, Union

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from spacy.language import Language
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...schema import MULTILABEL
from ..explain import ExplainError, TextTooLongError, check_target, explain
from ..loading import find_component
from .batching import BatchQueue

DEFAULT_MAX_TEXTS = 256
DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_MAX_EXPLAIN_TOKENS = 256
DEFAULT_MAX_BATCH = 64
DEFAULT_WAIT_MS = 5.0
DEFAULT_GAP_MS: Optional[float] = None


class PredictRequest(BaseModel):
    texts: List[str] = Field(description="The texts to classify.")


class DocPrediction(BaseModel):
    scores: Dict[str, Dict[str, float]] = Field(description="{group: {label: score}}")
    labels: Dict[str, Union[str, List[str]]] = Field(
        description="{group: label} (multiclass) or {group: [labels]} (multilabel)"
    )


class PredictResponse(BaseModel):
    docs: List[DocPrediction] = Field(description="One per text, in input order.")


class ExplainRequest(BaseModel):
    text: str
    group: str
    label: str


class ExplainResponse(BaseModel):
    text: str
    group: str
    label: str
    score: float = Field(description="The label's score on the whole text.")
    method: str
    tokens: List[str] = Field(description="The spaCy tokens.")
    whitespace: List[str] = Field(description="Each token's trailing whitespace.")
    weights: List[float] = Field(description="Per token: the score drop without it.")


class ErrorResponse(BaseModel):
    error: str


class BadRequest(Exception):
    """A request the server refuses: `status` (4xx) and the message of its JSON body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


PREDICT_EXAMPLE = '{"texts": ["first text", "second text"]}'
EXPLAIN_EXAMPLE = '{"text": "a text", "group": "<group>", "label": "<label>"}'
_ERRORS: Dict[Union[int, str], Dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 413, 422)
}


def make_app(
    nlp: Language,
    *,
    max_texts: int = DEFAULT_MAX_TEXTS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_explain_tokens: int = DEFAULT_MAX_EXPLAIN_TOKENS,
    max_batch: int = DEFAULT_MAX_BATCH,
    wait_ms: float = DEFAULT_WAIT_MS,
    gap_ms: Optional[float] = DEFAULT_GAP_MS,
) -> FastAPI:
    """The FastAPI app serving `nlp` (run it with uvicorn, or `spacy-mtl serve`).

    nlp (Language): A pipeline with one mtl_textcat component.
    max_texts (int): Most texts per `/predict` request (more: 413).
    max_body_bytes (int): Largest request body in bytes (larger: 413).
    max_explain_tokens (int): Most tokens of an `/explain` text (n + 1 forward passes).
    max_batch (int): Most texts per `nlp.pipe` call gathered from concurrent requests.
    wait_ms (float): How long a request waits at most for others to share its batch, ms.
    gap_ms (Optional[float]): The wait ends early once no request has come for this long,
        ms (None: always wait `wait_ms`).
    RETURNS (FastAPI): The app; its worker thread starts and stops with the app's lifespan.
    DOCS: docs/serve.md
    """
    comp = find_component(nlp)
    schema = comp.schema
    batcher = BatchQueue(
        nlp,
        max_batch=max_batch,
        wait=wait_ms / 1000.0,
        gap=None if gap_ms is None else gap_ms / 1000.0,
    )
    limits = {
        "max_texts": max_texts,
        "max_body_bytes": max_body_bytes,
        "max_explain_tokens": max_explain_tokens,
        "max_batch": max_batch,
        "wait_ms": wait_ms,
        "gap_ms": gap_ms,
    }
    info = _info(nlp, comp.name, schema, limits)
    page_text = page_html()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            # Off the event loop: the worker finishes the batch it is running first.
            await asyncio.get_running_loop().run_in_executor(None, batcher.close)

    app = FastAPI(
        title="spacy-mtl",
        version=str(nlp.meta.get("version", "0.0.0")),
        description=f"Multi-group text classification with the pipeline {info['model']['name']}.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, err: BadRequest) -> JSONResponse:
        return JSONResponse({"error": err.message}, status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        # 404s and 405s in the same shape as our own errors.
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_text)

    @app.get("/health")
    async def health() -> JSONResponse:
        """Whether the server can answer: 200 while its worker thread runs, else 503."""
        if not batcher.running:
            return JSONResponse({"status": "stopped"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/info")
    async def get_info() -> JSONResponse:
        """The model: its name and version, the component's groups (kind, labels,
        thresholds or class offsets), the server's limits and its batching so far
        (batches run, texts in them, the largest)."""
        stats = batcher.stats
        batching = {"batches": stats.batches, "texts": stats.texts, "largest": stats.largest}
        return JSONResponse({**info, "batching": batching})

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=_body_schema(PredictRequest),
    )
    async def predict(request: Request) -> JSONResponse:
        """Scores and decided labels of each text, in input order; concurrent requests
        are batched together through `nlp.pipe`."""
        body = await _read_json(request, max_body_bytes, PREDICT_EXAMPLE)
        texts = _predict_texts(body, max_texts)
        docs = await asyncio.wrap_future(batcher.predict(texts))
        return JSONResponse({"docs": docs})

    @app.post(
        "/explain",
        response_model=ExplainResponse,
        responses=_ERRORS,
        openapi_extra=_body_schema(ExplainRequest),
    )
    async def explain_text(request: Request) -> JSONResponse:
        """Per-token weights of one label's score (occlusion: the score drop when the
        token is removed)."""
        body = await _read_json(request, max_body_bytes, EXPLAIN_EXAMPLE)
        _check_object(body, ("text", "group", "label"), EXPLAIN_EXAMPLE)
        for key in ("text", "group", "label"):
            _check_string(body[key], f'"{key}"')
        try:
            check_target(schema, body["group"], body["label"])
        except ExplainError as err:
            raise BadRequest(422, str(err)) from None

        def run(nlp: Language) -> Dict[str, Any]:
            return explain(
                nlp,
                body["text"],
                body["group"],
                body["label"],
                component=comp.name,
                batch_size=max_batch,
                max_tokens=max_explain_tokens,
            ).to_dict()

        try:
            result = await asyncio.wrap_future(batcher.call(run))
        except TextTooLongError as err:
            raise BadRequest(413, str(err)) from None
        return JSONResponse(result)

    return app


def _info(nlp: Language, name: str, schema: Any, limits: Dict[str, Any]) -> Dict[str, Any]:
    meta = nlp.meta
    groups = []
    for group in schema:
        entry: Dict[str, Any] = {
            "name": group.name,
            "kind": group.kind,
            "labels": list(group.labels),
        }
        if group.kind == MULTILABEL:
            thresholds = group.resolved_thresholds(schema.threshold)
            entry["thresholds"] = dict(zip(group.labels, thresholds))
        else:
            entry["class_offsets"] = dict(zip(group.labels, group.resolved_offsets()))
        groups.append(entry)
    return {
        "model": {
            "name": f"{meta.get('lang', nlp.lang)}_{meta.get('name', 'pipeline')}",
            "version": meta.get("version"),
            "spacy_version": meta.get("spacy_version"),
            "pipeline": list(nlp.pipe_names),
        },
        "component": name,
        "threshold": schema.threshold,
        "groups": groups,
        "limits": limits,
    }


def _body_schema(model: Any) -> Dict[str, Any]:
    """The OpenAPI request body of an endpoint that reads its body itself (to answer a
    bad one with our own errors, and to limit its size while reading)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


async def _read_json(request: Request, max_bytes: int, example: str) -> Any:
    """The request's JSON body, read up to `max_bytes` (a Content-Length above the limit
    is refused before reading)."""
    too_large = BadRequest(
        413, f"The body is larger than the limit of {max_bytes} bytes; send fewer or shorter texts."
    )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    if not body:
        raise BadRequest(400, f"The body is empty; send JSON like {example}.")
    try:
        return json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(400, f"The body is not valid JSON ({err}); send {example}.") from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check_object(body: Any, keys: Any, example: str) -> None:
    """`body` is a JSON object with exactly `keys` (a typo such as "text" for "texts" is
    named, not ignored)."""
    if not isinstance(body, dict):
        raise BadRequest(
            422, f"The body must be a JSON object like {example}, not {_json_type(body)}."
        )
    missing = [key for key in keys if key not in body]
    unknown = [key for key in body if key not in keys]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(f'"{key}"' for key in missing))
        if unknown:
            parts.append("unknown " + ", ".join(json.dumps(key) for key in unknown))
        raise BadRequest(422, f"{'; '.join(parts).capitalize()}: send {example}.")


def _check_string(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise BadRequest(422, f"{where} must be a string, not {_json_type(value)}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        # JSON may escape half of a UTF-16 pair ("\ud800"), which is no text.
        char = value[err.start]
        raise BadRequest(
            422,
            f"{where} holds a lone surrogate {char!r} at position {err.start}: not valid Unicode.",
        ) from None


def _predict_texts(body: Any, max_texts: int) -> List[str]:
    _check_object(body, ("texts",), PREDICT_EXAMPLE)
    texts = body["texts"]
    if not isinstance(texts, list):
        raise BadRequest(
            422,
            f'"texts" must be an array of strings, not {_json_type(texts)}: '
            f"send {PREDICT_EXAMPLE}.",
        )
    if len(texts) > max_texts:
        raise BadRequest(
            413, f"{len(texts)} texts in one request; the limit is {max_texts}: split them."
        )
    for i, text in enumerate(texts):
        _check_string(text, f"texts[{i}]")
    return texts


def page_html() -> str:
    """The page served at `/` (page.html beside this module: plain HTML and JavaScript,
    nothing loaded from elsewhere)."""
    return files(__package__).joinpath("page.html").read_text(encoding="utf8")
