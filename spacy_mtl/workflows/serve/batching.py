"""One thread owns the pipeline; requests from every client are batched through `nlp.pipe`.

A spaCy pipeline is not made to be called from several threads at once, and one `nlp.pipe`
over 32 texts costs far less than 32 calls of `nlp(text)`. So the server's request
handlers only put jobs on a queue and wait for their futures; the worker thread takes the
first job, takes every job already waiting and those that arrive within a short window
(up to a cap in texts), runs them as one `nlp.pipe`, and hands each job its docs back in
order. A batch that reaches the cap runs at once; otherwise the window costs each batch
at most `wait` seconds. With a `gap`, the window also closes as soon as no job has arrived
for `gap` seconds: a lone client waits only `gap`, while clients that keep arriving (those
whose previous batch just came back) join the batch until `wait` is up.
"""

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence

from spacy.language import Language

# Predictions of one doc as the server returns them: {"scores": ..., "labels": ...}.
Prediction = Dict[str, Any]


@dataclass
class _Job:
    texts: Sequence[str]
    future: "Future[Any]"


@dataclass
class _Call:
    """Any other work on the pipeline (an explanation): run alone, in the worker."""

    run: Callable[[Language], Any]
    future: "Future[Any]"


_STOP = object()


@dataclass
class BatchStats:
    """What the worker has done: batches run, texts in them, the largest batch."""

    batches: int = 0
    texts: int = 0
    largest: int = 0


class BatchQueue:
    """The worker thread that owns `nlp` and the queue of jobs it batches.

    nlp (Language): The pipeline; only the worker thread calls it once started.
    max_batch (int): Most texts per `nlp.pipe` call gathered from several jobs (one job
        with more texts runs alone, through `nlp.pipe` in batches of `max_batch`).
    wait (float): Seconds the worker waits at most, once it takes a job, for others to join.
    gap (Optional[float]): Seconds without a new job after which the window closes early;
        None keeps the window open for the whole `wait`.
    """

    def __init__(
        self,
        nlp: Language,
        *,
        max_batch: int = 64,
        wait: float = 0.005,
        gap: Optional[float] = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}.")
        if wait < 0:
            raise ValueError(f"wait must be >= 0 seconds, got {wait}.")
        if gap is not None and gap < 0:
            raise ValueError(f"gap must be >= 0 seconds or None, got {gap}.")
        self.nlp = nlp
        self.max_batch = max_batch
        self.wait = wait
        self.gap = gap
        self.stats = BatchStats()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def start(self) -> None:
        """Start the worker thread (jobs submitted before wait for it)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="spacy-mtl-serve", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the worker thread is started, alive and not told to stop."""
        return self._thread is not None and self._thread.is_alive() and not self._closed

    def close(self, timeout: Optional[float] = 30.0) -> None:
        """Finish the jobs already queued, then stop the worker; later submits fail."""
        self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    def predict(self, texts: Sequence[str]) -> "Future[List[Prediction]]":
        """Queue `texts`; the future gives one prediction per text, in order."""
        future: Future[List[Prediction]] = Future()
        self._put(_Job(list(texts), future), future)
        return future

    def call(self, run: Callable[[Language], Any]) -> "Future[Any]":
        """Queue `run(nlp)` to run in the worker thread between batches."""
        future: Future[Any] = Future()
        self._put(_Call(run, future), future)
        return future

    def _put(self, item: Any, future: "Future[Any]") -> None:
        if self._closed:
            future.set_exception(RuntimeError("The server is shutting down."))
        else:
            self._queue.put(item)

    def _work(self) -> None:
        carry: Any = None
        while True:
            item = carry if carry is not None else self._queue.get()
            carry = None
            if item is _STOP:
                self._fail_rest()
                return
            # A job whose client went away (its future cancelled) is dropped; a running
            # future can no longer be cancelled, so setting its result cannot fail.
            if not item.future.set_running_or_notify_cancel():
                continue
            if isinstance(item, _Call):
                _resolve(item.future, partial(item.run, self.nlp))
                continue
            batch, n_texts = [item], len(item.texts)
            # The window opens when the worker takes the job, not when it was queued: under
            # load, the clients of the batch that just finished send their next requests
            # now, and a window counted from queueing would leave them to the next batch,
            # splitting the clients into two cohorts of half batches (measured: docs/serve.md,
            # section "Benchmark").
            deadline = time.monotonic() + self.wait
            while n_texts < self.max_batch:
                try:
                    # Take what is waiting at once; wait for more only within the window.
                    remaining = deadline - time.monotonic()
                    if self.gap is not None:
                        remaining = min(remaining, self.gap)
                    nxt = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if not isinstance(nxt, _Job) or n_texts + len(nxt.texts) > self.max_batch:
                    carry = nxt
                    break
                if nxt.future.set_running_or_notify_cancel():
                    batch.append(nxt)
                    n_texts += len(nxt.texts)
            self._run(batch)

    def _run(self, batch: List[_Job]) -> None:
        texts = [text for job in batch for text in job.texts]
        try:
            predictions = self._pipe(texts)
        except Exception as err:
            if len(batch) == 1:
                batch[0].future.set_exception(err)
            else:
                # One job's texts must not fail the others': run each alone, so only the
                # one at fault gets the error.
                for job in batch:
                    self._run([job])
            return
        self.stats.batches += 1
        self.stats.texts += len(texts)
        self.stats.largest = max(self.stats.largest, len(texts))
        start = 0
        for job in batch:
            end = start + len(job.texts)
            job.future.set_result(predictions[start:end])
            start = end

    def _fail_rest(self) -> None:
        """Fail the jobs that slipped in behind the stop, so that no handler waits forever."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and item.future.set_running_or_notify_cancel():
                item.future.set_exception(RuntimeError("The server is shutting down."))

    def _pipe(self, texts: List[str]) -> List[Prediction]:
        return [
            {"scores": doc._.mtl_scores, "labels": doc._.mtl_labels}
            for doc in self.nlp.pipe(texts, batch_size=self.max_batch)
        ]


def _resolve(future: "Future[Any]", run: Callable[[], Any]) -> None:
    """Set `future` to what `run()` returns, or to the exception it raises."""
    try:
        result = run()
    except Exception as err:
        future.set_exception(err)
    else:
        future.set_result(result)
