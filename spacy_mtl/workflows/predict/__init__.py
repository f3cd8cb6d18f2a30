"""Label every row of a CSV, TSV, JSONL or Parquet file with a trained pipeline.

`predict_file` streams the input in chunks of rows, runs `nlp.pipe` over their texts, and
writes each input row, in input order, with the predictions of one `mtl_textcat` component
added: per group the predicted label(s), and optionally every label's score. Memory stays
flat in the size of the file. A run that stops (an error, Ctrl-C, a lost machine) continues
after its last complete chunk when it is started again with the same output.

How a chunk is known to be complete: CSV/TSV/JSONL output is written to OUTPUT.partial;
after each chunk it is flushed and fsynced, then a small sidecar, `OUTPUT.progress.json`,
is replaced atomically with the number of rows done, the output's size in bytes at that
point and a digest of the input rows done. A rerun checks the input's rows and the model's
files against it, truncates the output to that size (dropping a chunk that was half
written, or written but not yet recorded), skips that many input rows and appends.
Parquet cannot be appended to, so Parquet output is written as one part file per chunk in
`OUTPUT.parts/`. At the end the output is renamed (merged, for Parquet) to OUTPUT and the
sidecar is deleted: a file under the final name is always complete. `OUTPUT.lock` keeps a
second run out while one writes (`lock`).

Modules: `formats` (format names, PredictError; extensions and compression are
`spacy_mtl.data.io`'s), `columns` (the added columns), `readers` (rows and chunks),
`inference` (the `nlp.pipe` stream), `writers`, `resume` (the progress file), `lock` (one
run per output) and `run` (`predict_file`). The columns and the writers are shared with
`spacy_mtl.workflows.distributed`, so that both give the same output.

DOCS: docs/predict.md
"""

from .columns import Label, OutputColumns, Scores
from .formats import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_LABEL_SEP,
    FORMATS,
    PredictError,
    file_format,
    resolve_output_format,
    suffix_format,
)
from .inference import components_after, get_schema, iter_predictions, load_model
from .lock import OutputLock, lock_path
from .readers import Chunk, Reader, clean_text, read_chunks
from .resume import progress_path
from .run import PredictSummary, predict_file
from .writers import Writer, csv_safe_cell, open_writer, partial_path, parts_dir

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_LABEL_SEP",
    "FORMATS",
    "Chunk",
    "Label",
    "OutputColumns",
    "OutputLock",
    "PredictError",
    "PredictSummary",
    "Reader",
    "Scores",
    "Writer",
    "clean_text",
    "components_after",
    "csv_safe_cell",
    "file_format",
    "get_schema",
    "iter_predictions",
    "load_model",
    "lock_path",
    "open_writer",
    "partial_path",
    "parts_dir",
    "predict_file",
    "progress_path",
    "read_chunks",
    "resolve_output_format",
    "suffix_format",
]
