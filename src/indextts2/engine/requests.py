"""What a caller hands the engine (:class:`SynthesisJob`) and what it gets back (:class:`RequestHandle`).

A handle is the request as its caller sees it: a thread-safe iterator of :class:`AudioChunk`\\ s
(blocking), the same as an async iterator for event-loop code, and :meth:`RequestHandle.cancel`.
The engine thread is the only producer; any thread (or event loop) may consume.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from indextts2.engine.config import StreamingOptions
from indextts2.engine.stats import StageObserver, StageSpan

if TYPE_CHECKING:
    from indextts2.model.pipeline import NoiseSource, Segment, TTSModel

__all__ = ["AudioChunk", "RequestHandle", "SynthesisJob"]


@dataclass(frozen=True)
class AudioChunk:
    """A piece of streamed audio.

    Attributes:
        samples: float32 mono samples in [-1, 1].
        sample_rate: 22050 for IndexTTS2.
        segment: the index of the text segment it belongs to (silence between segments belongs to
            the segment after it).
        final: True on the last chunk of the request.
    """

    samples: np.ndarray
    sample_rate: int
    segment: int
    final: bool

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate


@dataclass(frozen=True, eq=False)
class SynthesisJob:
    """One request, as the engine needs it.

    Attributes:
        prepare: builds the request's segments (conditioning, emotion vector); runs on the engine
            thread, since it uses the model. Errors it raises come out of the handle.
        sample_rate: of the audio.
        silence_samples: zeros between two segments.
        streaming: chunked rendering and its settings (the segmentation part is the caller's).
        parallel_segments: segments of this request that may decode at the same time (1 for a stream
            read in order; more for a whole text, whose segments then batch with each other).
        noise_source: test hook replacing the flow noise of whole segments.
        min_codes: per segment, the stop code is refused until this many codes exist (with
            ``max_codes`` equal, it decodes exactly that many: benchmarks on random weights, which
            never choose to stop). Not a synthesis option.
        backpressure: start no new segment while ``max_buffered_chunks`` chunks wait unread (off when
            the caller collects every request of a batch before reading them in turn).
        label: names the request in logs.
        observer: told of each stretch of the request's time in the engine (:class:`StageSpan`),
            on the engine thread; for tracing.
        log_context: the context the request's log lines are emitted in (the caller's, so that
            they carry what it set there: a server's request id).
    """

    prepare: Callable[[TTSModel], Sequence[Segment]]
    sample_rate: int
    silence_samples: int = 0
    streaming: StreamingOptions = field(default_factory=StreamingOptions)
    parallel_segments: int = 1
    noise_source: NoiseSource | None = None
    min_codes: Sequence[int] | None = None
    backpressure: bool = True
    label: str = ""
    observer: StageObserver | None = None
    log_context: contextvars.Context | None = None

    def report(self, span: StageSpan) -> None:
        """Tell the observer (if any) of a stretch of this request's time; it must not fail the engine."""
        if self.observer is None:
            return
        try:
            self.observer(span)
        except Exception:
            logging.getLogger(__name__).debug("the stage observer of a request failed", exc_info=True)

    def log(self, logger: logging.Logger, level: int, message: str, *args: object) -> None:
        """A log line about this request, emitted in its caller's context."""
        if self.log_context is None:
            logger.log(level, message, *args, stacklevel=2)
        else:  # stacklevel: the record names the line that asked for it
            self.log_context.run(functools.partial(logger.log, level, message, *args, stacklevel=2))


class _End:
    pass


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class RequestHandle:
    """A submitted request: iterate it for its chunks; :meth:`cancel` to stop it.

    Iterating blocks until the next chunk (or the end, or the request's error, which is raised).
    ``async for`` works the same way on an event loop without blocking it.
    """

    def __init__(self, label: str = "") -> None:
        self.label = label
        self._items: deque[Any] = deque()
        self._condition = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._cancelled = threading.Event()
        self._done = False
        self._closed = False  # the engine delivered the end (or a failure)
        self.delivered = 0
        """Chunks handed over by the engine."""
        self.consumed = 0
        """Chunks taken by the consumer."""
        self.submitted_at = time.monotonic()
        self.first_chunk_at: float | None = None
        """When the engine produced the first chunk that holds audio (monotonic seconds)."""
        self.finished_at: float | None = None
        self.audio_samples = 0

    # ---- the consumer's side

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Stop the request: the engine frees its slots at its next step. Idempotent."""
        self._cancelled.set()
        with self._condition:
            self._condition.notify_all()

    @property
    def unread(self) -> int:
        """Chunks delivered and not yet taken."""
        return self.delivered - self.consumed

    def _take(self) -> Any:
        item = self._items.popleft()
        if isinstance(item, _End):
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        self.consumed += 1
        return item

    def __iter__(self) -> RequestHandle:
        return self

    def __next__(self) -> AudioChunk:
        if self._done:
            raise StopIteration
        with self._condition:
            while not self._items:
                if self.cancelled:
                    self._done = True
                    raise StopIteration
                self._condition.wait()
            return self._take()

    def __aiter__(self) -> RequestHandle:
        return self

    async def __anext__(self) -> AudioChunk:
        if self._done:
            raise StopAsyncIteration
        while True:
            with self._condition:
                if self._items:
                    try:
                        return self._take()
                    except StopIteration:
                        raise StopAsyncIteration from None
                if self.cancelled:
                    self._done = True
                    raise StopAsyncIteration
                event = asyncio.Event()
                self._waiters.append((asyncio.get_running_loop(), event))
            await event.wait()

    # ---- the engine's side

    def _notify(self) -> None:
        self._condition.notify_all()
        waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            # a closed event loop raises RuntimeError: nobody waits there any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def put(self, chunk: AudioChunk) -> None:
        with self._condition:
            if self._closed:
                return
            if self.first_chunk_at is None and chunk.samples.size:
                self.first_chunk_at = time.monotonic()
            self.audio_samples += int(chunk.samples.shape[0])
            self.delivered += 1
            self._items.append(chunk)
            self._notify()

    def finish(self, error: BaseException | None = None) -> None:
        """The last item: the end, or the request's error."""
        with self._condition:
            if self._closed:
                return
            self._closed = True
            self.finished_at = time.monotonic()
            self._items.append(_End() if error is None else _Failure(error))
            self._notify()

    @property
    def finished(self) -> bool:
        return self._closed
