"""`mtl_transformer`: spacy-transformers' `transformer` whose `nlp.pipe` sorts by length.

A transformer pads every batch to its longest text. `nlp.pipe` cuts the stream into batches
in input order, so on a mix of short and long texts most of a batch is padding
(docs/benchmarks.md). spacy-transformers' `Transformer.pipe`
sorts only inside one `batch_size` batch, which does not help: the long text is still in it.

This component reads a *buffer* of `buffer_batches` batches, counts each doc's wordpieces
with the model's own tokenizer, runs the buffer through the model in batches of similar
length, and yields the docs in input order. The components after it (the listener of
`mtl_textcat`) read `doc._.trf_data`, which does not depend on the batch a doc ran in, so
the scores are the unsorted ones (to float rounding). Everything else is inherited:
`__call__` (one doc), `update` (training through the listeners), serialization.

Why here and not elsewhere: `nlp.pipe` chains the components' own `pipe` methods, and the
transformer is the only place where padding is paid and where a buffer can be read before
any work is done. `mtl_textcat` comes too late (the transformer has run), and sorting
around the whole pipeline needs the caller's help (`spacy_mtl.trf.batching.pipe_by_length`).

The buffer bounds memory: at most `buffer_batches * batch_size` docs, and at most
`buffer_wordpieces` wordpieces (a few long docs fill it), are held with their transformer
output before the first of them is yielded.

Changes to the model the component is given, for speed, each with the same output (to
float rounding): its shim's `predict` leaves the encoder in eval mode and runs under
`torch.inference_mode` on CPU (`serve_in_eval_mode`), there through a copy of the encoder
whose linear layers run in oneDNN with prepacked weights (`onednn`, spacy_mtl/trf/onednn.py);
and spacy-transformers' forward tokenizes its windows with the Rust tokenizer's batch call,
aligns tokens to wordpieces in numpy and splits the output by doc without a map of every
token (`forward_tokenizing_with_rust`).

`quantize = "onnx-int8"` runs the transformer as an int8 ONNX Runtime model, `quantize =
"int8"` its linear layers in torch int8, for CPU serving (see spacy_mtl/workflows/quantize.py and
`spacy-mtl quantize`).

DOCS: docs/performance.md ("Fast by default"), docs/benchmarks.md.
"""

from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import srsly
import torch
from spacy.language import Language
from spacy.tokens import Doc
from spacy.vocab import Vocab
from spacy_transformers.align import get_alignment
from spacy_transformers.annotation_setters import null_annotation_setter
from spacy_transformers.data_classes import (
    FullTransformerBatch,
    TransformerData,
    WordpieceBatch,
)
from spacy_transformers.layers import transformer_model
from spacy_transformers.pipeline_component import Transformer, install_extensions
from spacy_transformers.truncate import truncate_oversize_splits
from spacy_transformers.util import batch_by_length, maybe_flush_pytorch_cache
from thinc.api import Config, Model, NumpyOps, torch2xp
from transformers.file_utils import ModelOutput

from .align import align_by_offsets
from .serving import serve_in_eval_mode
from .span_getters import WordpieceSpans, encode_wordpieces, tokenize_windows

# Padded wordpieces of one training batch above which the encoder keeps no activations for
# the backward pass and recomputes them there instead (Hugging Face's gradient checkpointing,
# `torch.utils.checkpoint` with the dropout masks replayed: the same gradients). A batch of
# 32 docs of one window each has at most 32 x 128 = 4,096; a batch of long docs, cut into
# many windows, held 7 GB of activations in the demo (docs/performance.md, "Training
# memory"). Batches under the limit run as before.
CHECKPOINT_WORDPIECES = 8192

DEFAULT_CONFIG_STR = """
[transformer]
max_batch_items = 4096
sort_by_length = true
buffer_batches = 32
buffer_wordpieces = 131072
quantize = null
onednn = true

[transformer.set_extra_annotations]
@annotation_setters = "spacy-transformers.null_annotation_setter.v1"

[transformer.model]
@architectures = "spacy-transformers.TransformerModel.v3"
name = "roberta-base"
tokenizer_config = {"use_fast": true}
transformer_config = {}
mixed_precision = false
grad_scaler_config = {}

[transformer.model.get_spans]
@span_getters = "spacy-mtl.wordpiece_spans.v1"
window = 128
"""
DEFAULT_CONFIG = Config().from_str(DEFAULT_CONFIG_STR)


@Language.factory(
    "mtl_transformer",
    assigns=["doc._.trf_data"],
    default_config=DEFAULT_CONFIG["transformer"],
)
def make_mtl_transformer(
    nlp: Language,
    name: str,
    model: Model,
    set_extra_annotations: Callable[[List[Doc], Any], None],
    max_batch_items: int,
    sort_by_length: bool,
    buffer_batches: int,
    buffer_wordpieces: int,
    quantize: Optional[str] = None,
    onednn: bool = True,
) -> "SortedTransformer":
    """Construct a `transformer` (spacy-transformers) whose `pipe` sorts docs by length.

    model (Model[List[Doc], FullTransformerBatch]): The transformer model, as for the
        `transformer` factory (default: `spacy-transformers.TransformerModel.v3` with
        `spacy-mtl.wordpiece_spans.v1` windows of 128 wordpieces).
    set_extra_annotations (Callable): As for the `transformer` factory.
    max_batch_items (int): Most padded wordpieces (windows × the longest window) in one
        forward pass of `pipe`, counted with the wordpieces known from sorting (4096: 32
        windows of 128; chosen by measurement, docs/performance.md, "Fast by default").
        Without `sort_by_length` or `wordpiece_spans`: spaCy
        tokens × docs, as spacy-transformers counts. On CPU a forward pass of `pipe` also
        ends where the wordpiece length steps up once it holds a quarter of batch_size
        docs, so that most pad nothing (docs/performance.md, "Fast by default").
    sort_by_length (bool): Sort the docs of a buffer by wordpieces in `pipe` (default). False
        gives spacy-transformers' own `pipe`.
    buffer_batches (int): Batches (of `nlp.pipe`'s batch_size) read, sorted and run together.
    buffer_wordpieces (int): The buffer also ends when its docs reach this many wordpieces,
        so that a run of long docs does not hold thousands of transformer outputs.
    quantize (Optional[str]): Run the transformer in int8 on CPU, for serving (such a
        component cannot be trained). "onnx-int8": an int8 ONNX Runtime model, saved as
        `model.onnx` beside the fp32 weights (made from them if missing; needs the `onnx`
        extra). "int8": torch dynamic quantization of the linear layers, applied when the
        fp32 weights are loaded. `spacy-mtl quantize` sets it; `spacy.load(path,
        config={"components": {NAME: {"quantize": None}}})` loads the fp32 transformer
        again. None (default): fp32.
    onednn (bool): On an x86 CPU, run the transformer's linear layers through oneDNN with
        weights packed once (`spacy_mtl.trf.onednn`) at inference: the same outputs to float
        rounding, faster (docs/performance.md, "Fast by default"). Training and GPUs are
        unaffected. Default true.
    RETURNS (SortedTransformer): The component.
    """
    return SortedTransformer(
        nlp.vocab,
        model,
        set_extra_annotations,
        name=name,
        max_batch_items=max_batch_items,
        sort_by_length=sort_by_length,
        buffer_batches=buffer_batches,
        buffer_wordpieces=buffer_wordpieces,
        quantize=quantize,
        onednn=onednn,
    )


QUANTIZE_OPTIONS = (None, "int8", "onnx-int8")
# The int8 ONNX model in the component's folder (quantize = "onnx-int8").
ONNX_FILE = "model.onnx"


class SortedTransformer(Transformer):
    """spacy-transformers' `Transformer`; `pipe` runs each buffer sorted by wordpieces and
    yields the docs in input order. Training and single docs are unchanged."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        set_extra_annotations: Callable = null_annotation_setter,
        *,
        name: str = "transformer",
        max_batch_items: int = 4096,
        sort_by_length: bool = True,
        buffer_batches: int = 32,
        buffer_wordpieces: int = 131072,
        quantize: Optional[str] = None,
        onednn: bool = True,
    ) -> None:
        """Initialize the component. Arguments as in `make_mtl_transformer`."""
        super().__init__(
            vocab, model, set_extra_annotations, name=name, max_batch_items=max_batch_items
        )
        if buffer_batches < 1:
            raise ValueError(f"{name}: buffer_batches must be at least 1, got {buffer_batches}.")
        if buffer_wordpieces < 1:
            raise ValueError(
                f"{name}: buffer_wordpieces must be at least 1, got {buffer_wordpieces}."
            )
        if quantize not in QUANTIZE_OPTIONS:
            raise ValueError(
                f"{name}: quantize must be null, 'int8' or 'onnx-int8', got {quantize!r}."
            )
        # In cfg: saved with the pipeline, restored by from_disk / from_bytes.
        self.cfg.update(
            {
                "sort_by_length": bool(sort_by_length),
                "buffer_batches": int(buffer_batches),
                "buffer_wordpieces": int(buffer_wordpieces),
            }
        )
        # Not in cfg (which the saved pipeline restores over the config): a config override
        # `quantize = null` at spacy.load gives the fp32 transformer back.
        self.quantize = quantize
        # The fp32 transformer while an int8 copy runs: what to_disk / to_bytes save.
        self._fp32: Any = None
        # quantize = "onnx-int8": the serialized int8 ONNX model (saved with the component).
        self._onnx: Optional[bytes] = None
        serve_in_eval_mode(model, onednn=onednn)
        tokenize_with_rust(model)
        getter = model.attrs.get("get_spans")
        if isinstance(getter, WordpieceSpans):
            # The span getter counts with this model's own tokenizer: no model folder is
            # needed after `spacy.load`, and the config need not repeat the model's name.
            getter.bind(model)

    # -- int8 serving ---------------------------------------------------------------------

    @property
    def quantized(self) -> bool:
        """Whether the transformer runs an int8 copy of its weights now."""
        return self._fp32 is not None

    def _apply_quantization(self) -> None:
        if self.quantize is None or self.quantized:
            return
        if not self.model.attrs.get("has_transformer"):
            return
        fp32 = hf_encoder(self)
        if self.quantize == "onnx-int8":
            from .onnx_encoder import export_int8, make_encoder

            if self._onnx is None:
                self._onnx = export_int8(fp32)
            int8 = make_encoder(self._onnx, fp32.config)
        else:
            from .torch_int8 import quantize_dynamic_int8

            int8 = quantize_dynamic_int8(fp32)
        self._swap_in(int8)
        self._fp32 = fp32

    def _swap_in(self, module: Any) -> Any:
        """Put `module` in the shim as the transformer; returns the one it replaces."""
        shim: Any = self.model.layers[0].shims[0]
        before = shim._model
        shim._model = shim._hfmodel.transformer = module
        return before

    def _loaded(self) -> None:
        """After loading fp32 weights: drop the old int8 copy, make the new one if asked."""
        self._fp32 = None
        self._apply_quantization()

    def initialize(self, get_examples: Callable, *, nlp: Optional[Language] = None) -> None:
        """Initialize as spacy-transformers does, then quantize if `quantize` is set."""
        super().initialize(get_examples, nlp=nlp)
        self._onnx = None
        self._loaded()

    def from_disk(self, path: Any, *, exclude: Iterable[str] = tuple()) -> "SortedTransformer":
        """Load as spacy-transformers does (fp32 weights), then quantize if set (with the
        saved ONNX model, for "onnx-int8")."""
        super().from_disk(path, exclude=exclude)
        onnx = Path(path) / ONNX_FILE
        wanted = self.quantize == "onnx-int8" and "model" not in exclude
        self._onnx = onnx.read_bytes() if wanted and onnx.exists() else None
        self._loaded()
        return self

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> Any:
        """Load as spacy-transformers does (fp32 weights), then quantize if set."""
        super().from_bytes(bytes_data, exclude=exclude)
        # spaCy's from_bytes skips keys it does not know, such as "onnx".
        wanted = self.quantize == "onnx-int8" and "model" not in exclude
        self._onnx = srsly.msgpack_loads(bytes_data).get("onnx") if wanted else None
        self._loaded()
        return self

    def to_disk(self, path: Any, *, exclude: Iterable[str] = tuple()) -> None:
        """Save the fp32 weights (an int8 copy is made again on load), and the int8 ONNX
        model for "onnx-int8"."""
        if not self.quantized:
            super().to_disk(path, exclude=exclude)
            return
        int8 = self._swap_in(self._fp32)
        try:
            super().to_disk(path, exclude=exclude)
        finally:
            self._swap_in(int8)
        if self._onnx is not None and "model" not in exclude:
            (Path(path) / ONNX_FILE).write_bytes(self._onnx)

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        """Serialize with the fp32 weights (an int8 copy is made again on load), and the int8
        ONNX model for "onnx-int8"."""
        if not self.quantized:
            return super().to_bytes(exclude=exclude)
        int8 = self._swap_in(self._fp32)
        try:
            data = super().to_bytes(exclude=exclude)
        finally:
            self._swap_in(int8)
        if self._onnx is None or "model" in exclude:
            return data
        fields = srsly.msgpack_loads(data)
        fields["onnx"] = self._onnx
        return srsly.msgpack_dumps(fields)

    def update(self, examples: Iterable[Any], **kwargs: Any) -> Dict[str, float]:
        """As spacy-transformers' update; refused while the transformer runs in int8."""
        if self.quantized:
            raise ValueError(
                f"{self.name}: the transformer runs in int8 (quantize = 'int8'), which is "
                "for serving; train the fp32 pipeline and quantize it again."
            )
        return super().update(examples, **kwargs)

    def set_annotations(self, docs: Iterable[Doc], predictions: FullTransformerBatch) -> None:
        """As spacy-transformers' `set_annotations` (`doc._.trf_data`, then
        `set_extra_annotations`), with the batch split by doc by `split_by_doc`."""
        if predictions.cached_doc_data is None:
            predictions.cached_doc_data = split_by_doc(predictions)
        super().set_annotations(docs, predictions)

    # -- sorted pipe ----------------------------------------------------------------------

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """Apply the transformer to a stream of docs, each buffer sorted by length.

        stream (Iterable[Doc]): The docs.
        batch_size (int): Docs per forward pass (before `max_batch_items` splits it).
        YIELDS (Doc): The docs, with `doc._.trf_data` set, in input order.
        """
        if not self.cfg.get("sort_by_length", True):
            yield from super().pipe(stream, batch_size=batch_size)
            return
        install_extensions()
        docs = iter(stream)
        while True:
            buffer, lengths, encodings = self._read_buffer(docs, batch_size)
            if not buffer:
                return
            self._run_sorted(buffer, lengths, encodings, batch_size)
            yield from buffer

    def _read_buffer(
        self, docs: Iterator[Doc], batch_size: int
    ) -> Tuple[List[Doc], List[int], Optional[List[Any]]]:
        """Up to buffer_batches * batch_size docs, fewer if buffer_wordpieces is reached;
        with each doc's wordpiece count and, for a fast tokenizer, its encoding."""
        most_docs = max(1, batch_size) * self.cfg["buffer_batches"]
        most_pieces = self.cfg["buffer_wordpieces"]
        buffer: List[Doc] = []
        lengths: List[int] = []
        encodings: Optional[List[Any]] = []
        pieces = 0
        # Read batch by batch: the tokenizer runs once per batch, and a buffer of long docs
        # stops early.
        while len(buffer) < most_docs and pieces < most_pieces:
            chunk = list(islice(docs, min(max(1, batch_size), most_docs - len(buffer))))
            if not chunk:
                break
            counts, encoded = self._wordpieces(chunk)
            buffer.extend(chunk)
            lengths.extend(counts)
            if encodings is not None and encoded is not None:
                encodings.extend(encoded)
            else:
                encodings = None
            pieces += sum(counts)
        return buffer, lengths, encodings

    def _wordpieces(self, docs: Sequence[Doc]) -> Tuple[List[int], Optional[List[Any]]]:
        tokenizer = getattr(self.model, "tokenizer", None)
        texts = [doc.text for doc in docs]
        if tokenizer is None:
            # Not initialized: predict will say so; characters are as good as anything here.
            return [len(text) for text in texts], None
        # With special tokens: a doc of one window is then ready for the forward pass.
        return encode_wordpieces(tokenizer, texts, special_tokens=True)

    def _run_sorted(
        self,
        docs: List[Doc],
        lengths: List[int],
        encodings: Optional[List[Any]],
        batch_size: int,
    ) -> None:
        getter = self.model.attrs.get("get_spans")
        for run in self._runs(docs, lengths, encodings, batch_size):
            subbatch = [docs[i] for i in run]
            if isinstance(getter, WordpieceSpans):
                # The counts and encodings made for sorting: the span getter tokenizes
                # nothing again.
                known = [lengths[i] for i in run]
                encoded = None if encodings is None else [encodings[i] for i in run]
                with getter.known_lengths(subbatch, known, encoded):
                    self.set_annotations(subbatch, self.predict(subbatch))
            else:
                self.set_annotations(subbatch, self.predict(subbatch))

    def _runs(
        self,
        docs: List[Doc],
        lengths: List[int],
        encodings: Optional[List[Any]],
        batch_size: int,
    ) -> List[List[int]]:
        """The buffer's forward passes, as positions into `docs`, in ascending order of
        wordpieces (a stable sort: docs of equal length keep their input order)."""
        order = sorted(range(len(docs)), key=lengths.__getitem__)
        getter = self.model.attrs.get("get_spans")
        size = max(1, batch_size)
        most = self.cfg["max_batch_items"]
        if isinstance(getter, WordpieceSpans) and encodings is not None:
            # The wordpieces are known: runs are cut by padded wordpieces. On CPU a forward
            # pass costs about the wordpieces it pads, so a run also ends where the length
            # steps up once it holds a quarter of batch_size (short texts: padding 1.05 ->
            # 1.01, docs/performance.md, "Fast by default"); elsewhere runs are batch_size docs.
            on_cpu = isinstance(self.model.ops, NumpyOps)
            runs = padded_runs(
                [lengths[i] for i in order],
                getter.window,
                getter.n_special,
                most,
                most_docs=size,
                fill_docs=max(1, size // 4) if on_cpu else size,
            )
            return [[order[i] for i in run] for run in runs]
        # As spacy-transformers does: batches of batch_size, cut by spaCy tokens × docs.
        runs = []
        for start in range(0, len(order), size):
            picked = order[start : start + size]
            batch = [docs[i] for i in picked]
            runs.extend([picked[i] for i in indices] for indices in batch_by_length(batch, most))
        return runs


def padded_runs(
    lengths: Sequence[int],
    window: int,
    n_special: int,
    most: int,
    *,
    most_docs: Optional[int] = None,
    fill_docs: Optional[int] = None,
) -> List[List[int]]:
    """Cut docs, in ascending order of wordpieces, into consecutive runs (forward passes).

    A doc of n wordpieces is ceil(n / (window - n_special)) windows (at least one) of at most
    `window` wordpieces with the special tokens; a forward pass pads all its windows to the
    longest, which in ascending order is the last doc's. A run ends before the doc that
    would make it pad more than `most` wordpieces (a doc alone may pass it), before the doc
    that would make it hold more than `most_docs` docs, and before a doc longer than the
    run's docs once the run holds `fill_docs` docs (runs of equal lengths pad nothing).

    lengths (Sequence[int]): Each doc's wordpieces without special tokens, ascending.
    window (int): Most wordpieces per window (the span getter's), special tokens included.
    n_special (int): Special tokens added to each window.
    most (int): Most padded wordpieces (windows × longest window) per run.
    most_docs (Optional[int]): Most docs per run (None: no limit).
    fill_docs (Optional[int]): Docs a run holds before a longer doc ends it (None: never).
    RETURNS (List[List[int]]): Positions into `lengths`, run by run.
    """
    budget = max(1, window - n_special)
    most_docs = most_docs or len(lengths)
    fill_docs = fill_docs or len(lengths) + 1
    runs: List[List[int]] = []
    run: List[int] = []
    windows = 0
    run_longest = 0
    for i, n in enumerate(lengths):
        n_windows = max(1, -(-n // budget))
        longest = min(n + n_special, window)
        if run and (
            (windows + n_windows) * longest > most
            or len(run) >= most_docs
            or (longest > run_longest and len(run) >= fill_docs)
        ):
            runs.append(run)
            run, windows = [], 0
        run.append(i)
        windows += n_windows
        run_longest = longest
    if run:
        runs.append(run)
    return runs


def tokenize_with_rust(model: Model) -> None:
    """Run spacy-transformers' TransformerModel with `forward_tokenizing_with_rust`.

    Only a model whose forward is spacy-transformers' own is changed (another architecture
    keeps its own); its output is the same (tested against spacy-transformers' forward).
    """
    if getattr(model, "_func", None) is transformer_model.forward:
        model._func = forward_tokenizing_with_rust


def forward_tokenizing_with_rust(model: Any, docs: List[Doc], is_train: bool) -> Any:
    """spacy-transformers' TransformerModel forward pass, with the same output, from its own
    pieces (spans → wordpieces → alignment → truncation → the transformer) except two,
    each tested equal to the one it replaces:

    - windows tokenized by `tokenize_windows` (the Rust tokenizer's batch call, reusing the
      span getter's encodings) instead of `huggingface_tokenize`;
    - the alignment by `align_by_offsets` (vectorized) instead of
      `get_alignment_via_offset_mapping`.

    (The component's `set_annotations` splits the output by doc with `split_by_doc`.)
    With spacy-transformers' memory logger set, its own forward runs."""
    if "logger" in model.attrs:
        return transformer_model.forward(model, docs, is_train)
    tokenizer = model.tokenizer
    getter = model.attrs["get_spans"]
    known: Optional[List[Any]] = None
    if isinstance(getter, WordpieceSpans) and getter.tokenizer is tokenizer:
        # The encodings the getter counted with: windows of one doc need no second call.
        spans, span_encodings = getter.spans_and_encodings(docs)
        known = [encoding for doc_encodings in span_encodings for encoding in doc_encodings]
    else:
        spans = getter(docs)
    flat = [span for doc_spans in spans for span in doc_spans]
    maybe_flush_pytorch_cache(chance=model.attrs.get("flush_cache_chance", 0))
    encoded = tokenize_windows(tokenizer, [span.text for span in flat], known)
    wordpieces = WordpieceBatch.from_batch_encoding(encoded)
    if "offset_mapping" in encoded:
        align = align_by_offsets(flat, encoded["offset_mapping"])
    else:
        align = get_alignment(flat, wordpieces.strings, tokenizer.all_special_tokens)
    wordpieces, align = truncate_oversize_splits(wordpieces, align, tokenizer.model_max_length)
    with checkpointing(
        model.layers[0], is_train and wordpieces.input_ids.size > CHECKPOINT_WORDPIECES
    ):
        output, backprop_tensors = model.layers[0](wordpieces, is_train)
    batch = FullTransformerBatch(
        spans=spans, wordpieces=wordpieces, model_output=output, align=align
    )

    def backprop(d_batch: FullTransformerBatch) -> List[Doc]:
        backprop_tensors(d_batch.model_output)
        return docs

    return batch, backprop


@contextmanager
def checkpointing(layer: Model, on: bool) -> Iterator[None]:
    """Run `layer`'s Hugging Face model with gradient checkpointing within the block if
    `on` (and the model supports it): its forward keeps only each layer's input, and the
    backward pass recomputes the rest. The flag is read in the forward pass, so turning it
    off after the block leaves the recorded backward pass as it is."""
    hf: Any = _hf_model(layer) if on else None
    if not getattr(hf, "supports_gradient_checkpointing", False):
        yield
        return
    hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    try:
        yield
    finally:
        hf.gradient_checkpointing_disable()


def split_by_doc(batch: FullTransformerBatch) -> List[TransformerData]:
    """`FullTransformerBatch.split_by_doc`: one `TransformerData` per doc, with its rows of
    the outputs, its wordpieces and its alignment (renumbered from its first wordpiece).

    spacy-transformers finds where a doc's rows start in the alignment (one row per token of
    every doc that has spans, in order) through a dict of every token of the batch: spaCy
    `Token` objects made one by one, most of the split's time on tweets. When every doc is
    a different Doc object and its spans are its own, a
    token's row is the tokens of the docs before it plus its index, which is what this
    computes. Otherwise spacy-transformers' own split runs. Tested equal to it.
    """
    docs = [doc_spans[0].doc for doc_spans in batch.spans if doc_spans]
    own = all(span.doc is doc_spans[0].doc for doc_spans in batch.spans for span in doc_spans)
    if not own or len({id(doc) for doc in docs}) != len(docs):
        return batch.split_by_doc()
    outputs: Dict[str, Any] = {}
    for key, output in batch.model_output.items():
        if isinstance(output, torch.Tensor):
            outputs[key] = torch2xp(output)
        elif isinstance(output, tuple) and all(isinstance(t, torch.Tensor) for t in output):
            # Tuples of per-layer outputs (output_hidden_states), as spacy-transformers keeps.
            n_rows = batch.model_output["last_hidden_state"].shape[0]
            if all(t.shape[0] == n_rows for t in output):
                outputs[key] = [torch2xp(t) for t in output]
    # One doc (`nlp(text)`) whose spans run from its first token to its last: its
    # wordpieces and alignment are the whole batch's; nothing to slice.
    whole = len(batch.spans) == 1 and _covers(batch.spans[0])
    doc_data: List[TransformerData] = []
    start = 0  # the doc's first window
    first_row = 0  # the alignment row of the doc's first token
    prev_tokens = 0  # wordpiece rows before its first window
    for doc_spans in batch.spans:
        if len(doc_spans) == 0 or len(doc_spans[0]) == 0:
            # (Still, the tokens of a doc with spans have alignment rows.)
            doc_data.append(TransformerData.empty())
            first_row += len(doc_spans[0].doc) if doc_spans else 0
            continue
        end = start + len(doc_spans)
        if whole:
            wordpieces, align = batch.wordpieces, batch.align
        else:
            wordpieces = batch.wordpieces[start:end]
            align = batch.align[first_row + doc_spans[0].start : first_row + doc_spans[-1].end]
            align.data = align.data - prev_tokens
        model_output = ModelOutput()
        for key, output in outputs.items():
            if isinstance(output, list):
                model_output[key] = [t[start:end] for t in output]
            else:
                model_output[key] = output[start:end]
        doc_data.append(
            TransformerData(wordpieces=wordpieces, model_output=model_output, align=align)
        )
        prev_tokens += wordpieces.input_ids.size
        start = end
        first_row += len(doc_spans[0].doc)
    return doc_data


def _covers(spans: List[Any]) -> bool:
    """Whether a doc's spans start at its first token and end at its last (its alignment
    rows are then the whole batch's, for a batch of one doc)."""
    return (
        bool(spans)
        and spans[0].start == 0
        and len(spans[0]) > 0
        and (spans[-1].end == len(spans[-1].doc))
    )


def hf_encoder(component: Any) -> Any:
    """The Hugging Face model of a spacy-transformers transformer component (the fp32 one,
    also while an int8 copy runs)."""
    fp32 = getattr(component, "_fp32", None)
    if fp32 is not None:
        return fp32
    return _hf_model(component.model.layers[0])


def _hf_model(layer: Model) -> Any:
    """The Hugging Face model inside spacy-transformers' HF wrapper layer (its shim's)."""
    shim: Any = layer.shims[0]
    return shim._hfmodel.transformer


def sorts_by_length(component: Any) -> bool:
    """Whether `component` is an `mtl_transformer` that sorts in `pipe`."""
    return isinstance(component, SortedTransformer) and bool(
        component.cfg.get("sort_by_length", True)
    )


def pipeline_sorts(nlp: Language, before: Optional[str] = None) -> bool:
    """Whether a transformer of `nlp` (before the component `before`, if given) sorts by
    length in `nlp.pipe`."""
    for name, component in nlp.pipeline:
        if name == before:
            break
        if sorts_by_length(component):
            return True
    return False
