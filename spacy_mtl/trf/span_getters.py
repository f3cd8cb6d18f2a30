"""A span getter that cuts long docs into windows of at most N *wordpieces*.

spacy-transformers' `strided_spans.v1` counts spaCy tokens: a window of 128 tokens is often
more than 128 wordpieces (an emoji code or a URL is one spaCy token and ten wordpieces), and
the usual stride (96 of 128) runs a quarter of every long doc through the model twice.
`spacy-mtl.wordpiece_spans.v1` counts what the transformer pays for: it tokenizes each doc
once with the model's own (fast) tokenizer, and cuts it into consecutive spans that cover
every token exactly once, each at most `window` wordpieces with the special tokens. Cuts are
made only where a word starts, so a span tokenized on its own gives the same wordpieces
(exact for BERT-style WordPiece tokenizers; byte-level BPE may differ by a piece or two at a
cut, because the first word of a span loses its leading-space marker).

It is the default span getter of the `mtl_transformer` component and of every config in
configs/; the `spacy_span_getters` entry point registers it.

DOCS: docs/benchmarks.md (long texts).
"""

from contextlib import contextmanager
from itertools import chain
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy
from spacy.attrs import IDX
from spacy.tokens import Doc, Span
from spacy_transformers.layers.transformer_model import huggingface_tokenize
from spacy_transformers.util import registry
from transformers.tokenization_utils_base import BatchEncoding

SpanGetterT = Callable[[List[Doc]], List[List[Span]]]


def encode_wordpieces(
    tokenizer: Any, texts: List[str], *, special_tokens: bool = False
) -> Tuple[List[int], Optional[List[Any]]]:
    """Each text's wordpieces under a Hugging Face tokenizer, in one batched call, and, for a
    fast tokenizer, each text's `tokenizers.Encoding` (ids, character offsets, word ids: what
    `WordpieceSpans` cuts windows from, so a caller that sorted by length can hand them on
    instead of tokenizing again). The counts never include special tokens.

    special_tokens (bool): Add the special tokens to the encodings (the counts still leave
        them out). Encodings handed on to `WordpieceSpans.known_lengths` and
        `tokenize_windows` have them: a text of one window is then tokenized once.
    """
    if not texts:
        return [], []
    if getattr(tokenizer, "is_fast", False):
        # The Rust tokenizer's own batch call, which the Hugging Face wrapper makes too,
        # without the wrapper's conversion of every encoding to Python lists (a third of
        # the time on tweets); padding and truncation off (`_plain`).
        backend = _plain(tokenizer.backend_tokenizer)
        encodings = backend.encode_batch(list(texts), add_special_tokens=special_tokens)
        n_special = backend.num_special_tokens_to_add(False) if special_tokens else 0
        return [len(encoding) - n_special for encoding in encodings], list(encodings)
    encoded = tokenizer(
        texts,
        add_special_tokens=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    return [len(ids) for ids in encoded["input_ids"]], None


def _plain(backend: Any) -> Any:
    """The Rust tokenizer with padding and truncation off. The Hugging Face wrapper sets both
    on the shared Rust tokenizer at each call (spacy-transformers' call leaves padding on)."""
    if backend.padding is not None:
        backend.no_padding()
    if backend.truncation is not None:
        backend.no_truncation()
    return backend


def tokenize_windows(
    tokenizer: Any, texts: List[str], encodings: Optional[Sequence[Optional[Any]]] = None
) -> BatchEncoding:
    """spacy-transformers' `huggingface_tokenize` (special tokens added, padded to the
    longest text, offsets, wordpiece strings, numpy arrays) for a fast tokenizer, from the
    Rust tokenizer's batch call: the same arrays, without the Hugging Face wrapper's
    conversion of every encoding to Python lists and back, padded in numpy, and with each
    wordpiece's string read from its encoding instead of looked up again by id (see
    docs/performance.md, "Fast by default"). Another tokenizer:
    spacy-transformers' own.

    encodings (Optional[Sequence[Optional[Any]]]): For some texts, the text's
        `tokenizers.Encoding` with special tokens, from the same tokenizer
        (`encode_wordpieces(..., special_tokens=True)`, handed on by
        `WordpieceSpans.spans_and_encodings`): used as it is instead of tokenizing the text
        again. Not changed.
    """
    if not texts or not getattr(tokenizer, "is_fast", False) or tokenizer.pad_token is None:
        # (Without a pad token the wrapper's own error says what to set.)
        return huggingface_tokenize(tokenizer, texts)
    done: List[Any] = list(encodings) if encodings is not None else [None] * len(texts)
    missing = [i for i, encoding in enumerate(done) if encoding is None]
    if missing:
        # No truncation, no padding (below, over all the texts).
        backend = _plain(tokenizer.backend_tokenizer)
        fresh = backend.encode_batch([texts[i] for i in missing], add_special_tokens=True)
        for i, encoding in zip(missing, fresh):
            done[i] = encoding
    # What the wrapper's padding="longest" does, in numpy: each array is filled with its
    # pad value and the texts' values are written where the mask is set. (The tokenizer's
    # pad settings are properties that look the token up each time: read once.)
    lengths = numpy.fromiter((len(encoding) for encoding in done), dtype="int64", count=len(done))
    longest = int(lengths.max())
    total = int(lengths.sum())
    positions = numpy.arange(longest)
    left = tokenizer.padding_side == "left"
    # Where each row's wordpieces go: its first n columns, or its last n (padding side).
    mask = positions >= (longest - lengths)[:, None] if left else positions < lengths[:, None]
    shape = (len(done), longest)

    def padded(values: Iterable[Any], fill: int, width: int = 0) -> numpy.ndarray:
        flat = numpy.fromiter(values, dtype="int64", count=total * max(width, 1))
        out = numpy.full((*shape, width) if width else shape, fill, dtype="int64")
        out[mask] = flat.reshape((total, width)) if width else flat
        return out

    data: Dict[str, Any] = {
        "input_ids": padded(chain.from_iterable(e.ids for e in done), tokenizer.pad_token_id)
    }
    if "token_type_ids" in tokenizer.model_input_names:
        rows = chain.from_iterable(e.type_ids for e in done)
        data["token_type_ids"] = padded(rows, tokenizer.pad_token_type_id)
    data["attention_mask"] = mask.astype("int64")
    offsets = chain.from_iterable(chain.from_iterable(e.offsets for e in done))
    data["offset_mapping"] = padded(offsets, 0, 2)
    pad_token = tokenizer.pad_token
    strings = [e.tokens for e in done]
    for row, n in zip(strings, lengths.tolist()):
        if n < longest:
            if left:
                row[0:0] = [pad_token] * (longest - n)
            else:
                row.extend([pad_token] * (longest - n))
    data["input_texts"] = strings
    data["pad_token"] = pad_token
    return BatchEncoding(data)


def count_wordpieces(tokenizer: Any, texts: List[str]) -> List[int]:
    """Each text's wordpieces under a Hugging Face tokenizer (see `encode_wordpieces`).
    Special tokens are not counted: they are the same for every text, so they change no
    ranking by length."""
    return encode_wordpieces(tokenizer, texts)[0]


class WordpieceSpans:
    """Callable span getter: docs → consecutive spans of at most `window` wordpieces.

    The tokenizer is the one of the transformer model it is bound to (`bind`, which the
    `mtl_transformer` component does), else one given with `set_tokenizer` (see
    `attach_tokenizers`, which hands it the pipeline's own tokenizer so a loaded pipeline
    does not need the original model folder), else one loaded from `name` on first use.
    """

    def __init__(self, name: str = "", *, window: int = 128) -> None:
        """Initialize the span getter.

        name (str): Hugging Face name or folder of the tokenizer; the transformer's `name`.
            Needed to initialize a pipeline (the transformer calls its span getter then);
            may be "" when the tokenizer is attached before the first call.
        window (int): Most wordpieces per span, special tokens ([CLS], [SEP]) included.
        """
        self.name = name
        self.window = window
        self._tokenizer: Any = None
        self._n_special = 0
        self._model: Any = None
        # Wordpiece counts of the docs being processed, by id(doc), when the caller knows
        # them (`known_lengths`): a doc that fits one window then needs no tokenizer call,
        # and a longer one whose encoding is known is cut without one.
        self._known: Dict[int, int] = {}
        self._encodings: Dict[int, Any] = {}

    def bind(self, model: Any) -> None:
        """Count with the tokenizer of this spacy-transformers model (`model.tokenizer`),
        read when the model has its transformer (after initialize or loading)."""
        self._model = model

    @contextmanager
    def known_lengths(
        self,
        docs: Sequence[Doc],
        lengths: Sequence[int],
        encodings: Optional[Sequence[Any]] = None,
    ) -> Iterator[None]:
        """Within the block, take these wordpiece counts (special tokens not counted) for
        these docs instead of tokenizing them again to find the ones that fit one window;
        with `encodings`, cut the longer ones from them too.

        docs (Sequence[Doc]): The docs.
        lengths (Sequence[int]): Each doc's wordpieces with the same tokenizer.
        encodings (Optional[Sequence[Any]]): Each doc's `tokenizers.Encoding` of `doc.text`
            with the same tokenizer, special tokens added (`encode_wordpieces(...,
            special_tokens=True)`).
        """
        self._known = {id(doc): n for doc, n in zip(docs, lengths)}
        if encodings is not None:
            self._encodings = {id(doc): enc for doc, enc in zip(docs, encodings)}
        try:
            yield
        finally:
            self._known = {}
            self._encodings = {}

    def set_tokenizer(self, tokenizer: Any) -> None:
        """Use this (fast) Hugging Face tokenizer to count wordpieces."""
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                "spacy-mtl.wordpiece_spans.v1 needs a fast tokenizer (its offsets and word "
                f"ids tell where words start); got {type(tokenizer).__name__}. Set "
                'tokenizer_config = {"use_fast": true} on the transformer.'
            )
        n_special = tokenizer.num_special_tokens_to_add(pair=False)
        if self.window - n_special < 1:
            raise ValueError(
                f"spacy-mtl.wordpiece_spans.v1: window={self.window} leaves no room for "
                f"wordpieces next to the {n_special} special tokens."
            )
        self._tokenizer = tokenizer
        self._n_special = n_special

    @property
    def tokenizer(self) -> Any:
        model = self._model
        if model is not None and model.attrs.get("has_transformer"):
            # Read each time: loading a pipeline replaces the model's tokenizer object.
            current = model.tokenizer
            if current is not self._tokenizer:
                self.set_tokenizer(current)
        if self._tokenizer is None:
            if not self.name:
                raise ValueError(
                    "spacy-mtl.wordpiece_spans.v1 has no tokenizer: give `name` (the "
                    "transformer's model name or folder) or call "
                    "spacy_mtl.trf.span_getters.attach_tokenizers(nlp) after loading."
                )
            from transformers import AutoTokenizer

            self.set_tokenizer(AutoTokenizer.from_pretrained(self.name, use_fast=True))
        return self._tokenizer

    @property
    def n_special(self) -> int:
        """Special tokens the tokenizer adds to each window ([CLS], [SEP])."""
        return self.tokenizer.num_special_tokens_to_add(pair=False)

    def __call__(self, docs: List[Doc]) -> List[List[Span]]:
        return self.spans_and_encodings(docs)[0]

    def spans_and_encodings(
        self, docs: List[Doc]
    ) -> Tuple[List[List[Span]], List[List[Optional[Any]]]]:
        """The spans of each doc, and for each span the `tokenizers.Encoding` of its text
        (special tokens added) where one is already at hand: a doc of one window whose
        encoding was counted here or given to `known_lengths`, and whose last token has no
        trailing space (the span's text is then the doc's). `tokenize_windows` takes it
        instead of tokenizing the text again. None elsewhere."""
        if not any(len(doc) for doc in docs):
            return [[] for _ in docs], [[] for _ in docs]
        tokenizer = self.tokenizer
        budget = self.window - self._n_special
        known = self._known
        given = self._encodings
        # Docs known to fit one window need no tokenizer call (the common case for short
        # texts under `mtl_transformer`, which has counted them to sort them).
        filled = [doc for doc in docs if len(doc) and known.get(id(doc), budget + 1) > budget]
        unknown = [doc for doc in filled if id(doc) not in given]
        fresh: Dict[int, Any] = {}
        n_special = self._n_special
        if unknown:
            # One batched call (Rust, parallel).
            texts = [doc.text for doc in unknown]
            encodings = encode_wordpieces(tokenizer, texts, special_tokens=True)[1] or []
            fresh = {id(doc): enc for doc, enc in zip(unknown, encodings)}
        spans: List[List[Span]] = []
        span_encodings: List[List[Optional[Any]]] = []
        for doc in docs:
            if not len(doc):
                spans.append([])
                span_encodings.append([])
                continue
            # A doc not known to fit has an encoding, given or fresh.
            encoding: Any = given[id(doc)] if id(doc) in given else fresh.get(id(doc))
            if known.get(id(doc), budget + 1) <= budget or len(encoding) - n_special <= budget:
                # The common case for short texts: the whole doc fits one window.
                spans.append([doc[:]])
                same_text = not doc[len(doc) - 1].whitespace_
                span_encodings.append([encoding if same_text else None])
            else:
                offsets, word_ids = _without_special_tokens(encoding)
                cuts = window_cuts(doc.to_array(IDX), offsets, word_ids, budget)
                spans.append([doc[start:end] for start, end in zip(cuts[:-1], cuts[1:])])
                span_encodings.append([None] * (len(cuts) - 1))
        return spans, span_encodings


def _without_special_tokens(encoding: Any) -> Tuple[List[Any], List[Optional[int]]]:
    """The offsets and word ids of an encoding's wordpieces, its special tokens left out."""
    keep = [i for i, special in enumerate(encoding.special_tokens_mask) if not special]
    offsets, word_ids = encoding.offsets, encoding.word_ids
    return [offsets[i] for i in keep], [word_ids[i] for i in keep]


def window_cuts(
    token_starts: Union[Sequence[int], numpy.ndarray],
    offsets: Sequence[Sequence[int]],
    word_ids: Sequence[Optional[int]],
    budget: int,
) -> List[int]:
    """Token positions [0, c1, c2, ..., n_tokens] that cut a doc into windows.

    token_starts (Union[Sequence[int], numpy.ndarray]): Character offset of each spaCy
        token (token.idx).
    offsets (Sequence[Sequence[int]]): (start, end) characters of each wordpiece of the doc
        (no special tokens).
    word_ids (Sequence[Optional[int]]): The tokenizer's word index of each wordpiece.
    budget (int): Most wordpieces per window.
    RETURNS (List[int]): Increasing cut positions; every window between two cuts has at most
        `budget` wordpieces unless one word alone is longer (then it gets a window of its
        own). Windows never split a word if a clean cut exists.
    """
    starts = numpy.asarray(token_starts, dtype="int64")
    n_tokens = starts.shape[0]
    if n_tokens == 0:
        return [0]
    pieces = numpy.asarray(offsets, dtype="int64").reshape((-1, 2))
    # Each wordpiece belongs to the token in which it starts.
    owner = numpy.searchsorted(starts, pieces[:, 0], side="right") - 1
    owner = numpy.clip(owner, 0, n_tokens - 1)
    counts = numpy.bincount(owner, minlength=n_tokens)
    cum = numpy.cumsum(counts)
    n_pieces = pieces.shape[0]
    first = cum - counts  # index of each token's first wordpiece (= pieces before it)
    words = numpy.asarray([-1 if w is None else w for w in word_ids], dtype="int64")
    # A cut before token i is clean when the wordpiece before it ends before the token
    # starts (none crosses the cut) and the token's first wordpiece starts a new word (not a
    # '##' continuation). spaCy may split inside a tokenizer word ("cannot" -> "can" "not"):
    # such cuts are not clean.
    clean = numpy.ones(n_tokens, dtype=bool)
    inner = first > 0
    prev = first[inner] - 1
    own = numpy.minimum(first[inner], max(n_pieces - 1, 0))
    new_word = (counts[inner] == 0) | (words[own] != words[prev])
    clean[inner] = (pieces[prev, 1] <= starts[inner]) & new_word
    clean_positions = numpy.flatnonzero(clean)
    cuts = [0]
    start = 0
    while start < n_tokens:
        base = int(cum[start - 1]) if start else 0
        end = int(numpy.searchsorted(cum, base + budget, side="right"))
        if end >= n_tokens:
            cuts.append(n_tokens)
            break
        # Back off to the last clean cut inside the window, if there is one.
        k = int(numpy.searchsorted(clean_positions, end, side="right")) - 1
        if k >= 0 and clean_positions[k] > start:
            end = int(clean_positions[k])
        elif end <= start:
            # One token longer than the budget: a window of its own.
            end = start + 1
        cuts.append(end)
        start = end
    return cuts


@registry.span_getters("spacy-mtl.wordpiece_spans.v1")  # type: ignore[attr-defined]
def configure_wordpiece_spans(name: str = "", window: int = 128) -> SpanGetterT:
    """Cut docs into consecutive spans of at most `window` wordpieces (special tokens
    included), each token in exactly one span.

    name (str): The transformer's model name or folder, to load its tokenizer (needed at
        `nlp.initialize`); after `spacy.load`, `attach_tokenizers(nlp)` hands the getter the
        pipeline's own tokenizer, so the folder need not exist any more.
    window (int): Most wordpieces per span, e.g. 128 (the model's limit is the upper bound).
    RETURNS (Callable[[List[Doc]], List[List[Span]]]): The span getter.
    """
    return WordpieceSpans(name, window=window)


def attach_tokenizers(nlp: Any) -> Dict[str, bool]:
    """Give every `wordpiece_spans` getter in the pipeline its transformer's own tokenizer.

    Call after `nlp.initialize()` or `spacy.load()`: the getter then needs no model folder.
    nlp (Language): The pipeline.
    RETURNS (Dict[str, bool]): {transformer component name: whether a getter was attached}.
    """
    attached: Dict[str, bool] = {}
    for name, component in nlp.components:
        model = getattr(component, "model", None)
        if model is None or "get_spans" not in getattr(model, "attrs", {}):
            continue
        getter = model.attrs["get_spans"]
        tokenizer = getattr(model, "tokenizer", None)
        found = isinstance(getter, WordpieceSpans) and tokenizer is not None
        if found:
            getter.set_tokenizer(tokenizer)
        attached[name] = found
    return attached
