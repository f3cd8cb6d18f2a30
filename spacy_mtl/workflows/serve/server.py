"""Running the app with uvicorn: in this process, or in N worker processes.

With one worker the loaded pipeline is served as it is. Uvicorn starts several workers as
fresh processes that import the app by name, so with N > 1 the settings travel in an
environment variable and each worker loads its own copy of the pipeline (`app_from_env`).
uvicorn handles SIGINT and SIGTERM: it stops taking connections, lets the requests in
flight finish, and the app's lifespan stops the batching thread.
"""

import ipaddress
import json
import os
from typing import Any, Dict, Optional

from spacy.language import Language

ENV_SETTINGS = "SPACY_MTL_SERVE_SETTINGS"
LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server(
    nlp: Optional[Language],
    *,
    model: str,
    host: str = LOOPBACK,
    port: int = 8000,
    workers: int = 1,
    code: Optional[str] = None,
    gpu_id: int = -1,
    app_options: Optional[Dict[str, Any]] = None,
    log_level: str = "info",
) -> None:
    """Serve until SIGINT or SIGTERM.

    nlp (Optional[Language]): The loaded pipeline, served as it is with one worker; None
        (or workers > 1) to have each worker load `model`.
    model (str): The pipeline folder or package, for the workers to load.
    host (str): Address to bind; the default accepts local connections only.
    port (int): Port to bind.
    workers (int): Worker processes, each with its own pipeline and batching thread.
    code (Optional[str]): Python file the workers import before loading (`--code`).
    gpu_id (int): GPU for the workers' pipelines; -1 for CPU.
    app_options (Optional[Dict[str, Any]]): Keyword arguments of `make_app` (limits).
    log_level (str): uvicorn's log level.
    """
    import uvicorn

    from .app import make_app

    options = dict(app_options or {})
    if workers == 1 and nlp is not None:
        uvicorn.run(make_app(nlp, **options), host=host, port=port, log_level=log_level)
        return
    settings = {"model": model, "code": code, "gpu_id": gpu_id, "app_options": options}
    os.environ[ENV_SETTINGS] = json.dumps(settings)
    uvicorn.run(
        f"{__name__}:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
    )


def app_from_env() -> Any:
    """The app of one uvicorn worker process: loads the pipeline named in
    $SPACY_MTL_SERVE_SETTINGS (written by `run_server`)."""
    from ..loading import load_pipeline
    from .app import make_app

    raw = os.environ.get(ENV_SETTINGS)
    if raw is None:
        raise RuntimeError(
            f"${ENV_SETTINGS} is not set: start the server with `spacy-mtl serve MODEL`."
        )
    settings = json.loads(raw)
    if settings.get("code"):
        from spacy.cli._util import import_code

        import_code(settings["code"])
    nlp = load_pipeline(settings["model"], int(settings.get("gpu_id", -1)))
    return make_app(nlp, **settings.get("app_options", {}))
