"""The resume file: `OUTPUT.progress.json` records the complete chunks of an unfinished run,
and what must not change before it is continued."""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from spacy.language import Language

from ...schema import GroupSchema
from .formats import PROGRESS_SUFFIX, PROGRESS_VERSION, PredictError
from .writers import partial_path, parts_dir


def progress_path(output: Path) -> Path:
    """The sidecar that records the complete chunks of an unfinished output."""
    return output.with_name(output.name + PROGRESS_SUFFIX)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Replace `path` with `data` as JSON: written to a temporary file of a name of its
    own (two processes never share one), fsynced, renamed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf8") as file:
            json.dump(data, file, indent=2, sort_keys=True)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Files of a pipeline folder that do not change its predictions, left out of its digest:
# `evaluate --write-meta` rewrites meta.json with scores (its name and version are
# compared on their own).
_NOT_WEIGHTS = frozenset({"meta.json", "README.md", "LICENSE", "LICENSES_SOURCES"})


def model_files(folder: Path) -> Dict[str, List[Any]]:
    """[size, SHA-256] of each file of a pipeline folder (its components' weights and
    cfgs, the config, the vocab), by path relative to the folder: a model retrained into
    the same folder (training/model-best) has other weights, whatever its name, version
    and labels."""
    found: Dict[str, List[Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative in _NOT_WEIGHTS:
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        found[relative] = [path.stat().st_size, digest.hexdigest()]
    return found


def model_folder(nlp: Language, model: Any) -> Optional[Path]:
    """The folder `model` was loaded from: the folder given, or an installed package's
    data folder; None for a pipeline given as a Language object."""
    if isinstance(model, Language):
        return None
    path = Path(str(model))
    if path.is_dir():
        return path
    loaded = getattr(nlp, "path", None)
    return Path(loaded) if loaded is not None and Path(loaded).is_dir() else None


def _model_name(model: Any) -> Optional[str]:
    """A model path compared by where it is: `../model` and `model` are one model."""
    if isinstance(model, Language):
        return None
    path = Path(str(model))
    try:
        return str(path.resolve()) if path.exists() else str(model)
    except (OSError, RuntimeError):
        return str(model)


# Bytes before the recorded position whose hash is kept: enough to tell the output an
# earlier run wrote from another file (a copy, a replaced file), cheap to read per chunk.
TAIL_BYTES = 4096


def tail_digest(path: Path, position: int) -> str:
    """SHA-256 of the last TAIL_BYTES bytes of `path` before `position`."""
    start = max(0, position - TAIL_BYTES)
    with open(path, "rb") as file:
        file.seek(start)
        return hashlib.sha256(file.read(position - start)).hexdigest()


def _check_written(final: Path, fmt: str, progress: Mapping[str, Any], record: Path) -> None:
    """Refuse to continue an output that is not what the recorded run wrote: shorter than
    the recorded position (a truncated copy: appending there would leave a hole, or NUL
    bytes), other bytes before it, or Parquet parts missing."""
    position = progress["position"]
    rows = f"{progress['rows_done']:,} rows"
    again = "Continuing would lose or garble rows; start over with --force."
    if fmt == "parquet":
        parts = parts_dir(final)
        missing = [i for i in range(position) if not (parts / f"part-{i:06d}.parquet").is_file()]
        if missing:
            raise PredictError(
                f"{parts}: {len(missing):,} of the {position:,} part files that {record} "
                f"records ({rows}) are missing, the first part-{missing[0]:06d}.parquet. " + again
            )
        return
    if not position:
        return
    output = partial_path(final)
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
        "model": _model_name(model),
        "model_meta": f"{meta.get('name')}-{meta.get('version')}",
        "schema": {"groups": schema.to_config(), "threshold": schema.threshold},
        **options,
    }
    # JSON-normalised (tuples become lists) so that it compares equal after a round trip.
    return json.loads(json.dumps(settings, sort_keys=True))


def _check_resume(progress: Mapping[str, Any], settings: Mapping[str, Any], path: Path) -> None:
    where = f"{progress_path(path)} (an unfinished earlier run)"
    if progress.get("version") == 1:
        raise PredictError(
            f"{where} was written by an earlier version of spacy-mtl, which did not record "
            "what the checks of a resume need (the model's files, a digest of the input); "
            "start over with --force."
        )
    if progress.get("version") != PROGRESS_VERSION:
        raise PredictError(f"{where}: unknown version; start over with --force.")
    before = progress.get("settings", {})
    changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
    if changed:
        raise PredictError(
            f"{where} used other settings ({', '.join(changed)} differ); rerun with the same "
            "model and options to continue it, or start over with --force."
        )


def _check_model(progress: Mapping[str, Any], files: Any, path: Path) -> None:
    """Refuse a model whose files differ from those of the recorded run."""
    before = progress.get("model_files")
    if before == files:
        return
    where = f"{progress_path(path)} (an unfinished earlier run)"
    before, files = before or {}, files or {}
    changed = sorted(k for k in set(before) | set(files) if before.get(k) != files.get(k))
    named = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    raise PredictError(
        f"{where} used a model whose files differ from the model's now ({named}): it was "
        "retrained or replaced in the same place. Continuing would mix two models' "
        "predictions in one output; rerun with the model it used, or start over with "
        "--force."
    )


def remove_output(output: Path, progress_file: Path) -> None:
    for path in (output, partial_path(output), progress_file):
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
    model_files: Optional[Dict[str, List[Any]]] = None,
) -> Dict[str, Any]:
    """The progress record to start from: a fresh one, or the unfinished run's.

    model_files (Optional[Dict[str, List[Any]]]): The model's `model_files` (None for a
        pipeline given as an object): a resume with other files is refused.
    """
    fresh = {
        "version": PROGRESS_VERSION,
        "settings": settings,
        "model_files": model_files,
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
        _check_model(progress, model_files, output)
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
    # A .partial file without a progress file is no run's to continue.
    partial_path(output).unlink(missing_ok=True)
    write_json_atomic(progress_file, fresh)
    return fresh
