"""Small thinc layers: one pooled vector per doc from token vectors."""

from typing import Callable, List, Optional, Tuple

from thinc.api import Model
from thinc.types import Floats2d, Ints2d

from .errors import Errors

POOLINGS = ("mean", "max", "first")
# "cls" is accepted as a name for "first": with a token-level tok2vec (a transformer
# listener, a Tok2Vec), the first row of a doc is its first token's vector.
_ALIASES = {"cls": "first"}

InT = List[Floats2d]
OutT = Floats2d


def doc_pooling(kind: str = "mean") -> Model[InT, OutT]:
    """Reduce each doc's token vectors (n_tokens, width) to one row (width,).

    kind (str): 'mean', 'max' or 'first' (alias 'cls').
    RETURNS (Model[List[Floats2d], Floats2d]): One row per doc. A doc with no rows (an empty
        doc; a transformer may give it a (0, 0) array) pools to zeros of width nO, so its
        score does not depend on the other docs of its batch.
    """
    name = _ALIASES.get(kind, kind)
    if name not in POOLINGS:
        raise ValueError(Errors.E109.format(pooling=kind, known=[*POOLINGS, "cls"]))
    return Model(
        f"doc_pool_{name}",
        forward,
        init=init,
        dims={"nO": None},
        attrs={"pooling": name},
    )


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> None:
    if X is not None and not model.has_dim("nO"):
        for array in X:
            if array.shape[0] > 0 and array.shape[1] > 0:
                model.set_dim("nO", array.shape[1])
                break


def forward(model: Model[InT, OutT], Xs: InT, is_train: bool) -> Tuple[OutT, Callable]:
    ops = model.ops
    width = model.get_dim("nO")
    pooling = model.attrs["pooling"]
    rows = [i for i, X in enumerate(Xs) if X.shape[0] > 0]
    shapes = [X.shape for X in Xs]
    Y = ops.alloc2f(len(Xs), width)
    if not rows:
        return Y, lambda dY: [ops.alloc2f(*shape) for shape in shapes]

    lengths = ops.asarray1i([Xs[i].shape[0] for i in rows])
    flat = ops.xp.concatenate([Xs[i] for i in rows])
    index = ops.xp.asarray(rows)
    which: Optional[Ints2d] = None
    if pooling == "mean":
        pooled = ops.reduce_mean(flat, lengths)
    elif pooling == "max":
        pooled, which = ops.reduce_max(flat, lengths)
    else:
        starts = ops.xp.cumsum(lengths) - lengths
        pooled = flat[starts]
    Y[index] = pooled

    def backprop(dY: OutT) -> InT:
        d_pooled = ops.xp.ascontiguousarray(dY[index])
        if pooling == "mean":
            d_flat = ops.backprop_reduce_mean(d_pooled, lengths)
        elif pooling == "max":
            assert which is not None
            d_flat = ops.backprop_reduce_max(d_pooled, which, lengths)
        else:
            d_flat = ops.alloc2f(*flat.shape)
            d_flat[starts] = d_pooled
        dXs = [ops.alloc2f(*shape) for shape in shapes]
        start = 0
        for i, n in zip(rows, lengths.tolist()):
            dXs[i] = d_flat[start : start + n]
            start += n
        return dXs

    return Y, backprop
