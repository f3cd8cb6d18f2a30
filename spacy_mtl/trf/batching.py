"""Length-sorted batch prediction that gives the docs back in input order.

`nlp.pipe` cuts the stream into batches in input order, and a transformer pads every batch
to its longest text. On a mix of short and long texts most of a batch is padding. The
`transformer` component sorts only inside a batch, which does not help: the long text is
still in the batch. Sorting across batches puts texts of similar length together, so each
batch pads little and the model does far less arithmetic for the same answers.

The length that matters is the number of *wordpieces*: on tweets, spaCy tokens rank texts
badly (an HTML emoji code such as '&#128514;' is one spaCy token and six wordpieces), so the
default key counts wordpieces with the pipeline's own transformer tokenizer when there is
one, and characters otherwise.

DOCS: docs/benchmarks.md (what sorting buys, measured).
"""

from itertools import islice
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

from spacy.language import Language
from spacy.tokens import Doc

from .span_getters import count_wordpieces

TextOrDoc = Union[str, Doc]
LengthsT = Callable[[List[str]], Sequence[int]]


def char_lengths(texts: List[str]) -> List[int]:
    """Length of each text in characters (a free proxy for wordpieces)."""
    return [len(text) for text in texts]


def wordpiece_lengths(tokenizer: Any) -> LengthsT:
    """A key that counts each text's wordpieces with a Hugging Face tokenizer (one batched
    call per buffer; special tokens not counted, as they are the same for every text).

    tokenizer: A Hugging Face tokenizer (fast ones batch in Rust).
    RETURNS (Callable[[List[str]], Sequence[int]]): The key.
    """

    def lengths(texts: List[str]) -> List[int]:
        return count_wordpieces(tokenizer, texts)

    return lengths


def find_tokenizer(nlp: Language) -> Any:
    """The Hugging Face tokenizer of the pipeline's first transformer component, or None."""
    for _, component in nlp.components:
        model = getattr(component, "model", None)
        tokenizer = getattr(model, "tokenizer", None) if model is not None else None
        if tokenizer is not None and callable(tokenizer):
            return tokenizer
    return None


def resolve_key(nlp: Language, key: Union[str, LengthsT]) -> LengthsT:
    """The length function for `key`: 'auto' (wordpieces with the pipeline's transformer
    tokenizer, else characters), 'wordpieces', 'chars', or a callable."""
    if callable(key):
        return key
    if key in ("auto", "wordpieces"):
        tokenizer = find_tokenizer(nlp)
        if tokenizer is not None:
            return wordpiece_lengths(tokenizer)
        if key == "wordpieces":
            raise ValueError(
                "key='wordpieces' needs a transformer component with a Hugging Face "
                "tokenizer in the pipeline (initialize the pipeline first)."
            )
        return char_lengths
    if key == "chars":
        return char_lengths
    raise ValueError(f"Unknown sort key {key!r}: use 'auto', 'wordpieces', 'chars' or a callable.")


def iter_by_length(
    nlp: Language,
    texts: Iterable[TextOrDoc],
    *,
    batch_size: int = 64,
    buffer_size: Optional[int] = None,
    key: Union[str, LengthsT] = "auto",
    disable: Iterable[str] = (),
    component_cfg: Optional[Dict[str, Dict[str, Any]]] = None,
) -> Iterator[Tuple[int, Doc]]:
    """Process texts sorted by length across batches; yield (input index, doc) pairs in the
    order they are processed (shortest first within each buffer).

    Use this to stream results out as they come (write them with their index); use
    `pipe_by_length` to get docs in input order. Arguments as in `pipe_by_length`.
    YIELDS (Tuple[int, Doc]): The doc's position in `texts`, and the processed doc.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if buffer_size is not None and buffer_size < 1:
        raise ValueError(f"buffer_size must be at least 1 or None, got {buffer_size}.")
    lengths_of = resolve_key(nlp, key)
    disable = list(disable)
    stream = iter(texts)
    offset = 0
    while True:
        chunk = list(stream if buffer_size is None else islice(stream, buffer_size))
        if not chunk:
            return
        # Lengths from the raw strings: `doc.text` rebuilds the text token by token.
        lengths = lengths_of([text if isinstance(text, str) else text.text for text in chunk])
        docs = [nlp.make_doc(text) if isinstance(text, str) else text for text in chunk]
        if len(lengths) != len(docs):
            raise ValueError(f"The sort key gave {len(lengths)} lengths for {len(docs)} docs.")
        # A stable sort: docs of equal length keep their input order.
        order = sorted(range(len(docs)), key=lengths.__getitem__)
        processed = nlp.pipe(
            (docs[i] for i in order),
            batch_size=batch_size,
            disable=disable,
            component_cfg=component_cfg,
        )
        for i, doc in zip(order, processed):
            yield offset + i, doc
        offset += len(docs)
        if buffer_size is None:
            return


def pipe_by_length(
    nlp: Language,
    texts: Iterable[TextOrDoc],
    *,
    batch_size: int = 64,
    buffer_size: Optional[int] = None,
    key: Union[str, LengthsT] = "auto",
    disable: Iterable[str] = (),
    component_cfg: Optional[Dict[str, Dict[str, Any]]] = None,
) -> Iterator[Doc]:
    """Like `nlp.pipe`, but sorts the texts by length across batches before the pipeline
    sees them, and yields the processed docs in input order.

    nlp (Language): The pipeline.
    texts (Iterable[Union[str, Doc]]): Texts or docs (docs are processed in place).
    batch_size (int): Docs per batch, as in `nlp.pipe`.
    buffer_size (Optional[int]): How many docs are read, sorted and processed together;
        None (default) sorts the whole input at once. Larger buffers pad less; the first
        doc comes out when its buffer is done, and a buffer's docs are held in memory.
    key (Union[str, Callable[[List[str]], Sequence[int]]]): How to measure length: 'auto'
        (default: wordpieces with the pipeline's transformer tokenizer, else characters),
        'wordpieces', 'chars', or a function of a list of texts. spaCy tokens are no
        option: they rank tweets badly (see the module docstring).
    disable (Iterable[str]): Component names to skip, as in `nlp.pipe`.
    component_cfg (Optional[Dict[str, Dict[str, Any]]]): Per-component settings, as in
        `nlp.pipe`.
    YIELDS (Doc): The processed docs, one per input, in input order; empty texts included.
    """
    pending: Dict[int, Doc] = {}
    next_out = 0
    for index, doc in iter_by_length(
        nlp,
        texts,
        batch_size=batch_size,
        buffer_size=buffer_size,
        key=key,
        disable=disable,
        component_cfg=component_cfg,
    ):
        pending[index] = doc
        # Docs leave as soon as every earlier one is done: with a bounded buffer, memory
        # stays bounded by the buffer.
        while next_out in pending:
            yield pending.pop(next_out)
            next_out += 1
    if pending:
        raise RuntimeError(f"pipe_by_length lost the order: {len(pending)} docs left over.")
