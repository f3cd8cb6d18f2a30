"""spacy_mtl: one spaCy component that predicts several label groups at once.

DOCS: README.md
"""

from .errors import GoldError, MTLWarning, SchemaError
from .pipeline import MultiGroupTextCategorizer
from .schema import MULTICLASS, MULTILABEL, GroupSchema, LabelGroup

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
