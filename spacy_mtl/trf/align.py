"""Token ↔ wordpiece alignment from character offsets, in a few numpy calls per batch.

spacy-transformers' `get_alignment_via_offset_mapping` maps each spaCy token to the
wordpieces whose characters it covers: per window, it fills a char → token table with a
loop over the window's tokens, walks every wordpiece's characters, collects a set per
token, and numbers tokens through a dict of every token of the batch (spaCy `Token`
objects, made one by one). `align_by_offsets` computes the same `Ragged` for the whole batch
at once, in numpy. For one or two windows spacy-transformers' compiled loop is used (it
makes fewer calls, so it is faster there; docs/performance.md).

The rule, as spacy-transformers has it: a token covers its own characters and the one after
it (a following token takes that character if it starts there); a wordpiece belongs to
every token that covers one of its characters (offsets relative to its window's text);
rows are the tokens of each doc in order of first appearance, the wordpiece indices are
into the flattened (windows × padded length) array, sorted within a token.
"""

from typing import Any, Dict, List, Sequence, cast

import numpy
from spacy.attrs import IDX, LENGTH
from spacy.tokens import Span
from spacy_transformers.align import get_alignment_via_offset_mapping
from thinc.types import Ints1d, Ragged

# Fewer windows than this are aligned by spacy-transformers' own function.
FEWEST_WINDOWS = 3


def align_by_offsets(spans: Sequence[Span], offset_mapping: Any) -> Ragged:
    """`get_alignment_via_offset_mapping(spans, offset_mapping)`, vectorized (see the module
    docstring). Tested equal to it.

    spans (Sequence[Span]): The windows, in order (one row of offset_mapping each).
    offset_mapping (Ints3d): (windows, padded length, 2) character offsets of each
        wordpiece in its window's text; (0, 0) for special tokens and padding.
    RETURNS (Ragged): For each token of each doc, its wordpieces' flat indices.
    """
    offsets = numpy.asarray(offset_mapping)
    if len(spans) != len(offsets):
        raise ValueError("Cannot align batches of different sizes.")
    if len(spans) < FEWEST_WINDOWS or any(len(span) == 0 for span in spans):
        # A window or two (`nlp(text)`): spacy-transformers' compiled loop makes fewer calls
        # and was faster there. An empty window: its own error.
        return get_alignment_via_offset_mapping(list(spans), offset_mapping)
    return align_vectorized(spans, offsets)


def align_vectorized(spans: Sequence[Span], offsets: Any) -> Ragged:
    """The numpy computation of `align_by_offsets`, for any number of non-empty windows."""
    # Each doc's tokens (character start, length), and each window's first row in them.
    doc_rows: Dict[int, int] = {}
    arrays: List[Any] = []
    first_rows: List[int] = []
    n_rows = 0
    for span in spans:
        row = doc_rows.get(id(span.doc))
        if row is None:
            row = doc_rows[id(span.doc)] = n_rows
            arrays.append(span.doc.to_array([IDX, LENGTH]))
            n_rows += len(span.doc)
        first_rows.append(row + span.start)
    tokens = numpy.concatenate(arrays).astype("int64")
    n_tokens = numpy.asarray([len(span) for span in spans], dtype="int64")
    window_of = numpy.repeat(numpy.arange(len(spans)), n_tokens)
    firsts = numpy.cumsum(n_tokens) - n_tokens
    token_row = numpy.repeat(numpy.asarray(first_rows, dtype="int64") - firsts, n_tokens)
    token_row += numpy.arange(window_of.shape[0])
    idx = tokens[token_row, 0]
    length_of = tokens[token_row, 1]
    # Characters relative to each window's text; the windows' char tables (one slot more
    # than the text) laid end to end.
    relative = idx - idx[firsts][window_of]
    lasts = firsts + n_tokens - 1
    text_lengths = relative[lasts] + length_of[lasts] + 1
    text_starts = numpy.cumsum(text_lengths) - text_lengths
    token_start = text_starts[window_of] + relative
    # A token covers its characters and the next one.
    token_end = token_start + length_of + 1
    # Every character of every wordpiece, inside its window's char table.
    n_windows, length = offsets.shape[:2]
    limit = text_lengths[:, None]
    first = numpy.clip(offsets[:, :, 0].astype("int64"), 0, limit)
    last = numpy.clip(offsets[:, :, 1].astype("int64"), 0, limit)
    n_chars = numpy.maximum(last - first, 0).ravel()
    piece = numpy.repeat(numpy.arange(n_windows * length), n_chars)
    within = numpy.arange(piece.shape[0]) - numpy.repeat(numpy.cumsum(n_chars) - n_chars, n_chars)
    char = text_starts[piece // length] + first.ravel()[piece] + within
    # The token of a character: the last one starting at or before it, if it covers it.
    token = numpy.searchsorted(token_start, char, side="right") - 1
    covered = char < token_end[token]
    n_pieces = n_windows * length
    pairs = numpy.unique(token_row[token[covered]] * n_pieces + piece[covered])
    lengths = numpy.bincount(pairs // n_pieces, minlength=n_rows)
    return Ragged((pairs % n_pieces).astype("i"), cast(Ints1d, lengths.astype("i")))
