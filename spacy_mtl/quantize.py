"""int8 CPU serving: a pipeline whose transformer runs its linear layers in int8.

`quantize_pipeline(MODEL, OUT)` writes a copy of a trained pipeline whose transformer
components are `mtl_transformer`s with `quantize = "int8"`: when the pipeline is loaded,
torch's dynamic quantization (`torch.ao.quantization.quantize_dynamic`) replaces every
`torch.nn.Linear` of the transformer with an int8 one (weights int8 per tensor, activations
quantized on the fly). The folder keeps the fp32 weights, so it loads with plain
`spacy.load`, packages with `spacy package`, and loads in fp32 again with the config override
`quantize = null`. `doc.cats`, `doc._.mtl_scores` and `doc._.mtl_labels` are those of the
fp32 pipeline, computed with int8 arithmetic.

DOCS: README.md ("Fast by default").
"""

import warnings
from pathlib import Path
from typing import Any, Dict, List, Union

from .errors import ModelLoadError

PathLike = Union[str, Path]


def quantize_dynamic_int8(module: Any) -> Any:
    """An int8 copy of a torch module: every nn.Linear dynamically quantized (qint8).

    module (torch.nn.Module): The fp32 module (left as it is).
    RETURNS (torch.nn.Module): The quantized copy, in eval mode.
    """
    import torch

    with warnings.catch_warnings():
        # torch marks its eager-mode quantization deprecated (moving to torchao) but still
        # ships it; the warnings would come on every spacy.load.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)
    return quantized.eval()


def transformer_names(nlp: Any) -> List[str]:
    """The pipeline's spacy-transformers transformer components (stock or mtl_transformer)."""
    from spacy_transformers.pipeline_component import Transformer

    return [name for name, component in nlp.components if isinstance(component, Transformer)]


def quantize_pipeline(model: PathLike, out: PathLike, *, overwrite: bool = False) -> Dict:
    """Write a copy of the pipeline `model` whose transformers run in int8.

    model (Union[str, Path]): A pipeline folder or installed package, trained.
    out (Union[str, Path]): The new pipeline folder.
    overwrite (bool): Replace `out` if it exists.
    RETURNS (Dict[str, Any]): {"components": the transformer components quantized,
        "converted": those that were spacy-transformers' `transformer` and are now
        `mtl_transformer`s (same weights and settings, sorting `pipe`)}.
    RAISES ModelLoadError: `model` cannot be loaded or has no transformer component.
    """
    import spacy
    from spacy.util import load_config

    from .loading import load_pipeline

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ModelLoadError(out, None, "the output folder exists; pass overwrite=True")
    nlp = load_pipeline(model)
    names = transformer_names(nlp)
    if not names:
        raise ModelLoadError(
            model, None, "no transformer component to quantize (a tok2vec model is small already)"
        )
    nlp.to_disk(out)
    config = load_config(out / "config.cfg", interpolate=False)
    converted = []
    for name in names:
        section = config["components"][name]
        if section.get("factory") != "mtl_transformer":
            converted.append(name)
            section["factory"] = "mtl_transformer"
        section["quantize"] = "int8"
    config.to_disk(out / "config.cfg")
    # Check that the copy loads and runs in int8.
    loaded = spacy.load(out)
    for name in names:
        if not getattr(loaded.get_pipe(name), "quantized", False):
            raise ModelLoadError(out, "config.cfg", f"{name} did not load in int8")
    return {"components": names, "converted": converted}
