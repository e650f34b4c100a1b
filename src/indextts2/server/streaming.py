"""From a ticket of audio chunks to HTTP bodies: streamed WAV/PCM, whole files, SSE events.

:class:`SynthesisRun` waits for the first chunk before a handler builds its response, so every error
the synthesizer raises while validating still becomes a 4xx answer; after that, audio flows. It records
time to first audio, the real-time factor and the seconds produced when the run ends, and cancels the
GPU job when the consumer stops early (a client that went away).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import numpy as np

from indextts2.audio import Audio, StreamingWavWriter, encode, pcm16_bytes
from indextts2.errors import IndexTTS2Error
from indextts2.server.admission import Ticket
from indextts2.server.context import Interval, current_request
from indextts2.server.errors import ClientDisconnected, error_body
from indextts2.server.metrics import Metrics

__all__ = ["SynthesisRun", "audio_bytes", "collect_audio", "sse_events"]

logger = logging.getLogger(__name__)


class _Resampler:
    """Chunk-by-chunk resampling with libsoxr's streaming resampler (no seams between chunks)."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        import soxr

        self._stream = soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32")

    def __call__(self, samples: np.ndarray, *, last: bool = False) -> np.ndarray:
        return np.asarray(self._stream.resample_chunk(samples, last=last), dtype=np.float32)


class SynthesisRun:
    """One synthesis as the handler sees it: an async iterator of float32 sample blocks."""

    def __init__(self, ticket: Ticket[Any], metrics: Metrics, *, target_rate: int | None = None) -> None:
        self._ticket = ticket
        self._metrics = metrics
        self._target_rate = target_rate
        self._first: Any = None
        self._resampler: _Resampler | None = None
        self.source_rate = 0
        self.samples_out = 0
        self.finished = False

    @property
    def sample_rate(self) -> int:
        """The rate of the samples this run yields."""
        return self._target_rate or self.source_rate

    async def start(self) -> None:
        """Wait for the first chunk; errors (validation, timeout, overload) are raised here."""
        try:
            self._first = await self._ticket.next()
        except StopAsyncIteration:
            self._first = None
            self.finished = True
            return
        except BaseException:
            self._ticket.cancel()
            raise
        self.source_rate = int(self._first.sample_rate)
        if self._target_rate and self._target_rate != self.source_rate:
            self._resampler = _Resampler(self.source_rate, self._target_rate)

    def cancel(self) -> None:
        self._ticket.cancel()

    def _convert(self, samples: np.ndarray, *, last: bool = False) -> np.ndarray:
        samples = np.asarray(samples, dtype=np.float32)
        return self._resampler(samples, last=last) if self._resampler is not None else samples

    async def blocks(self) -> AsyncIterator[np.ndarray]:
        """The samples, block by block; cancels the GPU job if the consumer stops early."""
        produced_seconds = 0.0
        try:
            if self._first is not None:
                produced_seconds += len(self._first.samples) / self.source_rate
                block = self._convert(self._first.samples)
                self._first = None
                self.samples_out += len(block)
                yield block
            while not self.finished:
                try:
                    chunk = await self._ticket.next()
                except StopAsyncIteration:
                    self.finished = True
                    break
                produced_seconds += len(chunk.samples) / self.source_rate
                block = self._convert(chunk.samples)
                self.samples_out += len(block)
                yield block
            if self._resampler is not None:
                tail = self._convert(np.zeros(0, dtype=np.float32), last=True)
                self.samples_out += len(tail)
                yield tail
        finally:
            if not self.finished:
                self._ticket.cancel()
            self._observe(produced_seconds)

    def _observe(self, produced_seconds: float) -> None:
        ticket = self._ticket
        first = ticket.first_item_at
        started = ticket.started_at if ticket.started_at is not None else ticket.submitted_at
        self._metrics.observe_synthesis(
            time_to_first_audio=(first - ticket.submitted_at) if first is not None else None,
            seconds=time.monotonic() - started,
            audio_seconds=produced_seconds,
        )
        context = current_request()
        if context is not None:  # the caller's usage, and the wait for a worker in its trace
            context.audio_seconds += produced_seconds
            if context.trace and ticket.started_at is not None:
                context.intervals.append(Interval("admission.queue", ticket.submitted_at, ticket.started_at))


async def audio_bytes(run: SynthesisRun, format: str) -> AsyncIterator[bytes]:
    """A streamed body: a WAV header with open length then 16-bit PCM, or bare PCM.

    The status line went out with the first chunk, so an error after it (the time limit, a failing
    segment) can only end the stream early; it is logged, and the client sees the audio stop.
    """
    if format == "wav":
        yield StreamingWavWriter(run.sample_rate).header()
    try:
        async for block in run.blocks():
            if len(block):
                yield pcm16_bytes(block)
    except IndexTTS2Error as exc:
        logger.warning("a stream ended early after %d samples: %s", run.samples_out, exc)


async def collect_audio(run: SynthesisRun, receive: Any) -> Audio:
    """All the audio of a run, while watching for the client going away.

    Args:
        receive: the ASGI receive channel of the request (its body already read), used to notice a
            disconnect and stop the GPU work.

    Raises:
        ClientDisconnected: the client left before the audio was complete.
    """
    disconnected = asyncio.Event()

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected.set()
                run.cancel()
                return

    watcher = asyncio.create_task(watch())
    blocks: list[np.ndarray] = []
    try:
        async for block in run.blocks():
            blocks.append(block)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if disconnected.is_set():
        raise ClientDisconnected("the client closed the connection; the synthesis was stopped")
    samples = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    return Audio(samples, run.sample_rate or 22050)


def encode_audio(audio: Audio, format: str) -> bytes:
    """A whole file of the given format (blocking: call it off the event loop)."""
    started = time.monotonic()
    data = encode(audio, format)  # type: ignore[arg-type]
    context = current_request()
    if context is not None and context.trace:
        context.intervals.append(
            Interval(
                "encode",
                started,
                time.monotonic(),
                {"indextts2.format": format, "indextts2.bytes": len(data)},
            )
        )
    return data


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


async def sse_events(run: SynthesisRun, format: str) -> AsyncIterator[bytes]:
    """OpenAI's speech events: ``speech.audio.delta`` with base64 audio, then ``speech.audio.done``.

    wav and pcm deltas carry audio as it is made (the first wav delta starts with the header); other
    formats arrive as one delta holding the whole file.
    """
    try:
        if format in ("wav", "pcm"):
            if format == "wav":
                header = StreamingWavWriter(run.sample_rate).header()
                yield _event(
                    {"type": "speech.audio.delta", "audio": base64.b64encode(header).decode("ascii")}
                )
            async for block in run.blocks():
                if len(block):
                    piece = base64.b64encode(pcm16_bytes(block)).decode("ascii")
                    yield _event({"type": "speech.audio.delta", "audio": piece})
        else:
            blocks = [block async for block in run.blocks()]
            samples = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
            audio = Audio(samples, run.sample_rate or 22050)
            data = await anyio.to_thread.run_sync(encode_audio, audio, format)
            yield _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
    except IndexTTS2Error as exc:
        logger.warning("an event stream ended early after %d samples: %s", run.samples_out, exc)
        yield _event({"type": "error", **error_body(exc.code, exc.message)})
        return
    seconds = run.samples_out / run.sample_rate if run.sample_rate else 0.0
    yield _event({"type": "speech.audio.done", "usage": {"audio_seconds": round(seconds, 3)}})
