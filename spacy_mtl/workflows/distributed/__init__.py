"""Predict at scale with Ray Data: the output of `spacy-mtl predict`, from many files or an
object store, on CPU or GPU workers, with the pipeline loaded once per worker.

The input is read as a Ray Dataset (Parquet, JSONL, CSV or TSV: files, folders, globs or
object-store URIs such as s3://bucket/comments/), streamed through a pool of actors that
each load the pipeline once (`MTLPredictor`), and written either
- as a folder of part files (`part-000000.parquet`, ...; names sort in input order), by
  the cluster's workers: the way for data that does not pass through one machine; or
- as one file, by this process, with the same writers as `predict_file`: the same bytes
  as the local command, for data that fits through the driver.

Why Ray Data (and not Dask or Spark) is written up in docs/predict.md.

Modules: `cluster` (importing Ray, `local_cluster`), `reading` (the input as a Ray Dataset),
`worker` (the `MTLPredictor` actor) and `run` (`predict_distributed`, the writers' side).

DOCS: docs/predict.md, section "Scale out"
"""

from .cluster import RAY_EXTRA, local_cluster
from .reading import csv_header, read_dataset
from .run import DistributedSummary, check_paths, output_mode, predict_distributed
from .worker import DEFAULT_ROWS_PER_CALL, MTLPredictor

__all__ = [
    "DEFAULT_ROWS_PER_CALL",
    "RAY_EXTRA",
    "DistributedSummary",
    "MTLPredictor",
    "check_paths",
    "csv_header",
    "local_cluster",
    "output_mode",
    "predict_distributed",
    "read_dataset",
]
