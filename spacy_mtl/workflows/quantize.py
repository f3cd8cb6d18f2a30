"""int8 CPU serving: a copy of a trained pipeline whose transformer runs in int8.

`quantize_pipeline(MODEL, OUT, method=...)` writes a copy of a trained pipeline whose
transformer components are `mtl_transformer`s with `quantize` set:
- method "onnx" (the default, `quantize = "onnx-int8"`): the encoder is exported to ONNX and
  quantized by ONNX Runtime (int8 weights per output channel, dynamic 8-bit activations);
  the int8 model is saved next to the fp32 weights (`transformer/model.onnx`) and runs in an
  ONNX Runtime session when the pipeline loads (spacy_mtl/trf/onnx_encoder.py). Needs the
  `onnx` extra.
- method "torch" (`quantize = "int8"`): torch's dynamic quantization replaces the encoder's
  `nn.Linear` layers with int8 ones when the pipeline loads (spacy_mtl/trf/torch_int8.py).
Both keep the fp32 weights, so the folder loads with plain `spacy.load`, packages with
`spacy package`, and loads in fp32 again with the config override `quantize = null`.
`doc.cats`, `doc._.mtl_scores` and `doc._.mtl_labels` are those of the fp32 pipeline,
computed in int8.

Why ONNX is the default: on the demo model both kept the quality of fp32, and ONNX Runtime
was the faster of the two (the measurements: docs/performance.md, "int8 on CPU").

DOCS: docs/performance.md ("int8 on CPU").
"""

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from ..errors import ModelLoadError

PathLike = Union[str, Path]
# `spacy-mtl quantize --method` → the `quantize` setting of `mtl_transformer`.
METHODS = {"onnx": "onnx-int8", "torch": "int8"}
# What a pipeline quantized with ONNX needs to load (as in pyproject's `onnx` extra).
ONNXRUNTIME_REQUIREMENT = "onnxruntime>=1.17"


def transformer_names(nlp: Any) -> List[str]:
    """The pipeline's spacy-transformers transformer components (stock or mtl_transformer)."""
    from spacy_transformers.pipeline_component import Transformer

    return [name for name, component in nlp.components if isinstance(component, Transformer)]


def quantize_pipeline(
    model: PathLike,
    out: PathLike,
    *,
    method: str = "onnx",
    overwrite: bool = False,
    on_step: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Write a copy of the pipeline `model` whose transformers run in int8.

    model (Union[str, Path]): A pipeline folder or installed package, trained.
    out (Union[str, Path]): The new pipeline folder.
    method (str): "onnx" (ONNX Runtime, default) or "torch" (torch dynamic quantization).
    overwrite (bool): Replace `out` if it exists.
    on_step (Optional[Callable[[str], None]]): Called with a line before each stage (export
        and quantize per component, the check that the copy loads): the CLI prints them,
        as each stage of a base-size model takes tens of seconds to minutes on CPU.
    RETURNS (Dict[str, Any]): {"components": the transformer components quantized,
        "converted": those that were spacy-transformers' `transformer` and are now
        `mtl_transformer`s (same weights and settings, sorting `pipe`), "quantize": the
        `quantize` setting written}.
    RAISES ValueError: unknown method.
    RAISES ImportError: method "onnx" without onnxruntime / onnx installed.
    RAISES ModelLoadError: `model` cannot be loaded or has no transformer component.
    """
    import spacy
    from spacy.util import load_config

    from ..trf.transformer import ONNX_FILE, hf_encoder
    from .loading import load_pipeline

    if method not in METHODS:
        raise ValueError(f"Unknown quantization method {method!r}: use 'onnx' or 'torch'.")
    if method == "onnx":
        from ..trf.onnx_encoder import require_onnxruntime

        # Before the model loads: a missing extra should not cost its loading time.
        require_onnxruntime("for --method onnx (or use --method torch)")
    setting = METHODS[method]
    step = on_step if on_step is not None else _no_step
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ModelLoadError(out, None, "the output folder exists; pass overwrite=True")
    nlp = load_pipeline(model)
    names = transformer_names(nlp)
    if not names:
        raise ModelLoadError(
            model, None, "no transformer component to quantize (a tok2vec model is small already)"
        )
    if setting == "onnx-int8":
        # `spacy package` puts these in the package's install requirements.
        requirements = nlp.meta.setdefault("requirements", [])
        if not any(req.startswith("onnxruntime") for req in requirements):
            requirements.append(ONNXRUNTIME_REQUIREMENT)
    nlp.to_disk(out)
    if setting == "onnx-int8":
        from ..trf.onnx_encoder import export_int8

        for i, name in enumerate(names, 1):
            step(f"Exporting {name!r} to ONNX and quantizing it to int8 ({i}/{len(names)})")
            # Beside the fp32 weights; the component reads it when it loads.
            (out / name / ONNX_FILE).write_bytes(export_int8(hf_encoder(nlp.get_pipe(name))))
    config = load_config(out / "config.cfg", interpolate=False)
    converted = []
    for name in names:
        section = config["components"][name]
        if section.get("factory") != "mtl_transformer":
            converted.append(name)
            section["factory"] = "mtl_transformer"
        section["quantize"] = setting
    config.to_disk(out / "config.cfg")
    # Check that the copy loads and runs in int8.
    step(f"Checking that {out} loads in int8")
    loaded = spacy.load(out)
    for name in names:
        if not getattr(loaded.get_pipe(name), "quantized", False):
            raise ModelLoadError(out, "config.cfg", f"{name} did not load in int8")
    return {"components": names, "converted": converted, "quantize": setting}


def _no_step(line: str) -> None:
    """The default `on_step`: nothing to show."""
