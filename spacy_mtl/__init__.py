"""spacy_mtl: one spaCy component that predicts several label groups at once.

DOCS: README.md
"""

from typing import TYPE_CHECKING, Any

from .errors import GoldError, MTLWarning, SchemaError
from .schema import MULTICLASS, MULTILABEL, GroupSchema, LabelGroup

if TYPE_CHECKING:
    from .data.convert.frames import convert_dataframe
    from .pipeline import MultiGroupTextCategorizer
    from .workflows.dataframe import predict_dataframe
    from .workflows.explain import explain

__version__ = "0.1.0"

__all__ = [
    "MULTICLASS",
    "MULTILABEL",
    "GoldError",
    "GroupSchema",
    "LabelGroup",
    "MTLWarning",
    "MultiGroupTextCategorizer",
    "SchemaError",
    "__version__",
    "convert_dataframe",
    "explain",
    "predict_dataframe",
]


def __getattr__(name: str) -> Any:
    # The component imports spaCy; loading it lazily keeps `spacy-mtl --help` and the
    # schema types fast to import.
    if name == "MultiGroupTextCategorizer":
        from .pipeline import MultiGroupTextCategorizer

        return MultiGroupTextCategorizer
    # The DataFrame helpers import pandas (when called) and the predict and convert
    # workflows: not something spaCy should load with our entry points.
    if name == "predict_dataframe":
        from .workflows.dataframe import predict_dataframe

        return predict_dataframe
    if name == "convert_dataframe":
        from .data.convert.frames import convert_dataframe

        return convert_dataframe
    # Occlusion explanations (docs/serve.md) need spaCy and numpy: imported when used.
    if name == "explain":
        from .workflows.explain import explain

        return explain
    raise AttributeError(f"module 'spacy_mtl' has no attribute {name!r}")
