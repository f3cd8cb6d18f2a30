"""The resume file: `OUTPUT.progress.json` records the complete chunks of an unfinished run,
and what must not change before it is continued."""

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, Mapping

from spacy.language import Language

from ...schema import GroupSchema
from .formats import PROGRESS_SUFFIX, PROGRESS_VERSION, PredictError
from .writers import parts_dir


def progress_path(output: Path) -> Path:
    """The sidecar that records the complete chunks of an unfinished output."""
    return output.with_name(output.name + PROGRESS_SUFFIX)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf8") as file:
        json.dump(data, file, indent=2, sort_keys=True)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


# Bytes before the recorded position whose hash is kept: enough to tell the output an
# earlier run wrote from another file (a copy, a replaced file), cheap to read per chunk.
TAIL_BYTES = 4096


def tail_digest(path: Path, position: int) -> str:
    """SHA-256 of the last TAIL_BYTES bytes of `path` before `position`."""
    start = max(0, position - TAIL_BYTES)
    with open(path, "rb") as file:
        file.seek(start)
        return hashlib.sha256(file.read(position - start)).hexdigest()


def _check_written(output: Path, fmt: str, progress: Mapping[str, Any], record: Path) -> None:
    """Refuse to continue an output that is not what the recorded run wrote: shorter than
    the recorded position (a truncated copy: appending there would leave a hole, or NUL
    bytes), other bytes before it, or Parquet parts missing."""
    position = progress["position"]
    rows = f"{progress['rows_done']:,} rows"
    again = "Continuing would lose or garble rows; start over with --force."
    if fmt == "parquet":
        parts = parts_dir(output)
        missing = [i for i in range(position) if not (parts / f"part-{i:06d}.parquet").is_file()]
        if missing:
            raise PredictError(
                f"{parts}: {len(missing):,} of the {position:,} part files that {record} "
                f"records ({rows}) are missing, the first part-{missing[0]:06d}.parquet. " + again
            )
        return
    if not position:
        return
    if not output.exists():
        raise PredictError(
            f"{output} is gone but {record} records {rows} written; start over with --force."
        )
    size = output.stat().st_size
    if size < position:
        raise PredictError(
            f"{output} has {size:,} bytes, but {record} records {rows} written in its first "
            f"{position:,} bytes: the output was cut short or replaced since. " + again
        )
    digest = progress.get("tail")
    if digest is not None and tail_digest(output, position) != digest:
        raise PredictError(
            f"{output}: the bytes before position {position:,} are not those the unfinished "
            f"run recorded in {record} wrote (the file was replaced or edited). " + again
        )


def _input_identity(path: Path) -> Dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def run_settings(nlp: Language, model: Any, schema: GroupSchema, **options: Any) -> Dict[str, Any]:
    """What must not change between an interrupted run and its resumption."""
    meta = nlp.meta
    settings = {
        "model": str(model) if not isinstance(model, Language) else None,
        "model_meta": f"{meta.get('name')}-{meta.get('version')}",
        "schema": {"groups": schema.to_config(), "threshold": schema.threshold},
        **options,
    }
    # JSON-normalised (tuples become lists) so that it compares equal after a round trip.
    return json.loads(json.dumps(settings, sort_keys=True))


def _check_resume(progress: Mapping[str, Any], settings: Mapping[str, Any], path: Path) -> None:
    where = f"{progress_path(path)} (an unfinished earlier run)"
    if progress.get("version") != PROGRESS_VERSION:
        raise PredictError(f"{where}: unknown version; start over with --force.")
    before = progress.get("settings", {})
    changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
    if changed:
        raise PredictError(
            f"{where} used other settings ({', '.join(changed)} differ); rerun with the same "
            "model and options to continue it, or start over with --force."
        )


def remove_output(output: Path, progress_file: Path) -> None:
    for path in (output, progress_file):
        if path.exists():
            path.unlink()
    if parts_dir(output).exists():
        shutil.rmtree(parts_dir(output))


def start_or_resume(
    output: Path,
    fmt: str,
    progress_file: Path,
    settings: Dict[str, Any],
    input_path: Path,
    overwrite: bool,
) -> Dict[str, Any]:
    """The progress record to start from: a fresh one, or the unfinished run's."""
    fresh = {
        "version": PROGRESS_VERSION,
        "settings": settings,
        "input": _input_identity(input_path),
        "rows_done": 0,
        "chunks_done": 0,
        "position": 0,
        "empty": 0,
        "truncated": 0,
        "replaced": 0,
        "replaced_at": [],
    }
    if overwrite:
        remove_output(output, progress_file)
    elif progress_file.exists():
        try:
            progress = json.loads(progress_file.read_text(encoding="utf8"))
        except (OSError, ValueError) as err:
            raise PredictError(
                f"{progress_file}: the progress file cannot be read ({err}); start over with "
                "--force."
            ) from None
        _check_resume(progress, settings, output)
        if progress.get("input") != fresh["input"]:
            raise PredictError(
                f"{input_path} changed (size or modification time) since the unfinished run "
                f"recorded in {progress_file}; start over with --force."
            )
        _check_written(output, fmt, progress, progress_file)
        return progress
    elif output.exists() or parts_dir(output).exists():
        raise PredictError(
            f"{output} already exists (and no unfinished run is recorded for it); use "
            "--force to replace it."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(progress_file, fresh)
    return fresh
