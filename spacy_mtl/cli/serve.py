"""`spacy-mtl serve`: a pipeline over HTTP (workflows/serve/)."""

from pathlib import Path
from typing import Optional

import typer

from ._util import CODE, GPU_ID, import_code, load_pipeline


def serve_command(
    model: Path = typer.Argument(..., help="Trained pipeline: folder or package name."),
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to bind. The default takes local connections only; the server has "
        "no authentication, so put a proxy in front before binding 0.0.0.0.",
    ),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to bind."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Worker processes, each with its own copy of the pipeline.",
    ),
    max_texts: int = typer.Option(256, "--max-texts", min=1, help="Most texts per request."),
    max_body: int = typer.Option(
        1_000_000, "--max-body", min=1, help="Largest request body, in bytes."
    ),
    code: Optional[Path] = CODE,
    gpu_id: int = GPU_ID,
) -> None:
    """Serve MODEL over HTTP: POST /predict, POST /explain, GET /health, GET /info, the
    OpenAPI docs at /docs and a page at /. Requests of concurrent clients are batched
    through nlp.pipe. Stops on Ctrl+C or SIGTERM. See docs/serve.md.
    """
    from wasabi import msg

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        msg.fail(
            f'serve needs FastAPI and uvicorn ({err}): pip install "spacy-mtl[serve]"', exits=1
        )
    from ..errors import ComponentError
    from ..workflows.serve import make_app, run_server
    from ..workflows.serve.server import is_loopback

    import_code(code)
    # Loaded here with one worker (and served as it is), to check it with several: a bad
    # model fails once, with one line, not in each worker.
    nlp = load_pipeline(model, gpu_id)
    options = {"max_texts": max_texts, "max_body_bytes": max_body}
    try:
        make_app(nlp, **options)
    except ComponentError as err:
        msg.fail(str(err), exits=1)
    if workers > 1:
        del nlp
        nlp = None
    if not is_loopback(host):
        msg.warn(f"Binding {host}: anyone who can reach this address can use the server.")
    run_server(
        nlp,
        model=str(model),
        host=host,
        port=port,
        workers=workers,
        code=None if code is None else str(code),
        gpu_id=gpu_id,
        app_options=options,
    )
