"""spacy_mtl: one spaCy component that predicts several label groups at once.

DOCS: README.md
"""

from typing import TYPE_CHECKING, Any

from .errors import GoldError, MTLWarning, SchemaError
from .schema import MULTICLASS, MULTILABEL, GroupSchema, LabelGroup

if TYPE_CHECKING:
    from .pipeline import MultiGroupTextCategorizer

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
]


def __getattr__(name: str) -> Any:
    # The component imports spaCy; loading it lazily keeps `spacy-mtl --help` and the
    # schema types fast to import.
    if name == "MultiGroupTextCategorizer":
        from .pipeline import MultiGroupTextCategorizer

        return MultiGroupTextCategorizer
    raise AttributeError(f"module 'spacy_mtl' has no attribute {name!r}")
