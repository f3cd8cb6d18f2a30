"""Serving a pipeline over HTTP (`spacy-mtl serve`): FastAPI + uvicorn, with the requests of
concurrent clients batched through one `nlp.pipe` (batching.py), and a page at `/`.

- `make_app(nlp, ...)`: the FastAPI app (app.py).
- `BatchQueue`: the worker thread that owns the pipeline (batching.py).
- `run_server(...)`: uvicorn, in this process or in N workers (server.py).

Needs the `serve` extra: pip install "spacy-mtl[serve]". See docs/serve.md.
"""

from .app import make_app
from .batching import BatchQueue
from .server import run_server

__all__ = ["BatchQueue", "make_app", "run_server"]
