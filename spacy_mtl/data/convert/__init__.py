"""Tabular data sets (CSV, TSV, JSONL, one-text-per-line files) → `.spacy` corpora.

A small spec (YAML or JSON, see docs/convert.md) says where the text is and how each
label group is laid out in the file. Gold labels go into `doc.cats` under
"{group}/{label}" keys with the rules of docs/design.md: an annotated group has every
one of its keys (1.0 or 0.0); a missing group (or, for one column per label, a missing
label) has no key at all.

Files are read line by line and rows are checked one by one, so every error names its
file and physical line, and memory is bounded by the shard size, not the file size.

Modules, in the order data flows: `spec` (the spec and its checks), `readers` (physical
lines → records), `joins` (columns from other files, by key or row position), `rows` (a
record's cells → text, cats, stratum), `splits` (stratified assignment), `writers` (DocBin
shards, the rejects file), `summary` (what was done) and `run` (`convert_files`).
`exceptions` holds the errors they raise.

DOCS: docs/convert.md
"""

from .exceptions import ConvertError, RowError, SpecError
from .run import DEFAULT_CHUNK_SIZE, DEFAULT_SHARD_SIZE, convert_files
from .spec import FORMATS, ConvertSpec, GroupSpec, load_spec
from .splits import assign_splits, parse_split
from .summary import ConvertSummary, CorpusSummary

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SHARD_SIZE",
    "FORMATS",
    "ConvertError",
    "ConvertSpec",
    "ConvertSummary",
    "CorpusSummary",
    "GroupSpec",
    "RowError",
    "SpecError",
    "assign_splits",
    "convert_files",
    "load_spec",
    "parse_split",
]
