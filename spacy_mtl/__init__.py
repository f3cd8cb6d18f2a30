"""spacy_mtl: one spaCy component that predicts several label groups at once."""

from .schema import MULTICLASS, MULTILABEL, GroupSchema, LabelGroup

__version__ = "0.1.0"

__all__ = ["MULTICLASS", "MULTILABEL", "GroupSchema", "LabelGroup", "__version__"]
