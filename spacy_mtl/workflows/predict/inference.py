"""Running the pipeline over chunks of texts: one `nlp.pipe` stream, results per chunk."""

import sys
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple, Union

from spacy.language import Language

from ...schema import GroupSchema
from .columns import OutputColumns, Scores
from .formats import PathLike, PredictError
from .readers import Chunk


def load_model(model: Union[PathLike, Language], gpu_id: int = -1) -> Language:
    """A pipeline: `model` itself if it is one, else `spacy.load(model)` (a folder or the
    name of an installed pipeline package), on GPU `gpu_id` when it is >= 0.

    RAISES ModelLoadError: `spacy_mtl.workflows.loading.load_pipeline`'s, naming the folder, the
        damaged or missing file and the problem.
    """
    from ..loading import load_pipeline

    return load_pipeline(model, gpu_id)


def get_schema(nlp: Language, component: str) -> GroupSchema:
    """The label-group schema of the `mtl_textcat` component `component` of `nlp`."""
    if component not in nlp.pipe_names:
        raise PredictError(
            f"The pipeline has no component {component!r} (components: {nlp.pipe_names}); "
            "name the mtl_textcat component with --component."
        )
    schema = getattr(nlp.get_pipe(component), "schema", None)
    if not isinstance(schema, GroupSchema):
        raise PredictError(
            f"Component {component!r} is not an mtl_textcat component (it has no label-group "
            "schema); name the mtl_textcat component with --component."
        )
    return schema


def components_after(nlp: Language, component: str) -> List[str]:
    """The components after `component`: its predictions do not need them, so prediction
    disables them."""
    names = nlp.pipe_names
    return names[names.index(component) + 1 :]


# -- prediction ---------------------------------------------------------------------------


def iter_predictions(
    nlp: Language,
    chunks: Iterable[Chunk],
    out: OutputColumns,
    *,
    component: str = "mtl_textcat",
    batch_size: int = 64,
    n_process: int = 1,
    sort_by_length: bool = True,
    on_doc: Optional[Callable[[int], None]] = None,
) -> Iterator[Tuple[Chunk, List[Scores]]]:
    """Predict chunk after chunk in one `nlp.pipe` stream, and yield each chunk with its
    rows' scores as soon as all its docs are done, in input order.

    One stream rather than one `nlp.pipe` call per chunk: with n_process > 1 the worker
    processes start once, not once per chunk, and batches run across chunk boundaries.
    Empty texts never reach the pipeline (they get None). Chunks are read ahead only as
    far as `nlp.pipe` reads texts ahead, so memory stays at a chunk or two.

    sort_by_length (bool): Run the texts sorted by length so that a batch pads less
        (default). A pipeline whose transformer is an `mtl_transformer` sorts by itself
        in `nlp.pipe` (in buffers, in each process); any other pipeline is sorted within
        each chunk (`spacy_mtl.trf.batching.iter_by_length`), one process only. False runs
        the texts in input order (an `mtl_transformer`'s sorting is turned off for the
        run).
    on_doc (Optional[Callable[[int], None]]): Called with the number of rows finished
        (for a progress bar).
    YIELDS (Tuple[Chunk, List[Optional[List[float]]]]): A chunk and its rows' scores.
    """
    # Imported here: it loads spacy-transformers (and torch), which a tok2vec pipeline
    # does not need.
    from ...trf.transformer import pipeline_sorts

    if not sort_by_length:
        with _unsorted(nlp):
            yield from _predictions(nlp, chunks, out, component, batch_size, n_process, on_doc)
        return
    if pipeline_sorts(nlp, before=component):
        yield from _predictions(nlp, chunks, out, component, batch_size, n_process, on_doc)
        return
    if n_process > 1:
        raise PredictError(
            "sort_by_length runs in one process unless the pipeline's transformer is an "
            "mtl_transformer; use n_process=1, or no sorting."
        )
    yield from _sorted_predictions(nlp, chunks, out, component, batch_size, on_doc)


def _predictions(
    nlp: Language,
    chunks: Iterable[Chunk],
    out: OutputColumns,
    component: str,
    batch_size: int,
    n_process: int,
    on_doc: Optional[Callable[[int], None]],
) -> Iterator[Tuple[Chunk, List[Scores]]]:
    """iter_predictions over one plain `nlp.pipe` stream."""
    pending: Deque[int] = deque()
    state: Dict[int, Tuple[Chunk, List[Scores], List[int]]] = {}

    def texts() -> Iterator[Tuple[str, Tuple[int, int]]]:
        for chunk in chunks:
            todo = len(chunk.texts) - chunk.n_empty
            state[chunk.index] = (chunk, [None] * len(chunk.texts), [todo])
            pending.append(chunk.index)
            for i, text in enumerate(chunk.texts):
                if text is not None:
                    # The context is plain ints: with n_process > 1 it is pickled to the
                    # workers and back, so it cannot point at the chunk itself.
                    yield text, (chunk.index, i)

    def ready() -> Iterator[Tuple[Chunk, List[Scores]]]:
        while pending and state[pending[0]][2][0] == 0:
            chunk, scores, _ = state.pop(pending.popleft())
            if on_doc is not None and chunk.n_empty:
                on_doc(chunk.n_empty)
            yield chunk, scores

    with _fork_safe_threads(n_process):
        docs = nlp.pipe(
            texts(),
            as_tuples=True,
            batch_size=batch_size,
            n_process=n_process,
            disable=components_after(nlp, component),
        )
        for doc, (index, i) in docs:
            _, scores, todo = state[index]
            scores[i] = out.scores_of(doc.cats)
            todo[0] -= 1
            if on_doc is not None:
                on_doc(1)
            yield from ready()
        yield from ready()
    if pending:
        raise RuntimeError(f"Prediction lost docs: chunks {list(pending)} were not finished.")


def _sorted_predictions(
    nlp: Language,
    chunks: Iterable[Chunk],
    out: OutputColumns,
    component: str,
    batch_size: int,
    on_doc: Optional[Callable[[int], None]],
) -> Iterator[Tuple[Chunk, List[Scores]]]:
    """iter_predictions with the texts of each chunk sorted by length."""
    from ...trf.batching import iter_by_length

    disable = components_after(nlp, component)
    for chunk in chunks:
        rows = [i for i, text in enumerate(chunk.texts) if text is not None]
        texts = [text for text in chunk.texts if text is not None]
        scores: List[Scores] = [None] * len(chunk.texts)
        # Scores are taken from each doc as it comes: docs are not held to restore order.
        for j, doc in iter_by_length(nlp, texts, batch_size=batch_size, disable=disable):
            scores[rows[j]] = out.scores_of(doc.cats)
            # iter_by_length keeps the chunk's docs until the chunk is done; these are our
            # own docs, so drop what is large in them (the transformer's output).
            doc.user_data.clear()
            if on_doc is not None:
                on_doc(1)
        if on_doc is not None and chunk.n_empty:
            on_doc(chunk.n_empty)
        yield chunk, scores


@contextmanager
def _unsorted(nlp: Language) -> Iterator[None]:
    """Turn off the length sorting of the pipeline's `mtl_transformer` components while
    the block runs."""
    from ...trf.transformer import sorts_by_length

    sorting: List[Any] = [c for _, c in nlp.pipeline if sorts_by_length(c)]
    for component in sorting:
        component.cfg["sort_by_length"] = False
    try:
        yield
    finally:
        for component in sorting:
            component.cfg["sort_by_length"] = True


@contextmanager
def _fork_safe_threads(n_process: int) -> Iterator[None]:
    """With n_process > 1, run torch on one thread per process while the workers exist.

    nlp.pipe forks its workers (Linux). If this process has run torch on several threads
    (any prediction or training before), the OpenMP thread pool does not survive the fork
    and the workers hang at their first forward pass (seen with torch 2.13 and
    spacy-transformers 1.4). One thread in the parent at fork time avoids that, and the
    workers inherit it: n_process workers on one thread each, rather than each on all
    the cores.
    """
    torch = sys.modules.get("torch") if n_process > 1 else None
    if torch is None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
