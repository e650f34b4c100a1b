"""The real Synthesizer, watched: the in-process server tests' view of what the server asks of it.

Records which threads call it, how often it is asked for a voice, how many chunks it streams and how
many streams are closed before their end; ``chunk_delay`` slows each chunk down, as a slow GPU would,
and ``before_chunk`` runs before each chunk is handed over (hold it on an event, or move the server's
clock), so that timeouts and disconnects can be tested on the tiny model without racing the machine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from indextts2 import Synthesizer

# Server-wide defaults that keep the tiny random-weight model fast: random weights rarely emit the
# stop code, so without a cap every segment would decode the official 1500 codes.
FAST_OPTIONS: dict[str, Any] = {"max_codes": 20, "diffusion_steps": 3, "num_beams": 1}


class SpySynthesizer:
    def __init__(
        self,
        inner: Synthesizer,
        *,
        chunk_delay: float = 0.0,
        before_chunk: Callable[[int], None] | None = None,
    ) -> None:
        self._inner = inner
        self.chunk_delay = chunk_delay
        self.before_chunk = before_chunk  # called with the chunk's index, on the worker thread
        self.threads_used: set[str] = set()
        self.voices_encoded = 0
        self.chunks_made = 0
        self.streams_closed_early = 0
        self.options_seen: list[Any] = []  # the SynthesisOptions of each stream, in order
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _note_thread(self) -> None:
        with self._lock:
            self.threads_used.add(threading.current_thread().name)

    def voice(self, audio: Any, /) -> Any:
        self._note_thread()
        self.voices_encoded += 1
        return self._inner.voice(audio)

    def check_voice(self, voice: Any) -> None:
        self._note_thread()
        self._inner.check_voice(voice)

    def validate(self, text: str, **kwargs: Any) -> None:
        self._note_thread()
        self._inner.validate(text, **kwargs)

    def synthesize(self, text: str, /, **kwargs: Any) -> Any:
        self._note_thread()
        return self._inner.synthesize(text, **kwargs)

    def stream(self, text: str, /, **kwargs: Any) -> Iterator[Any]:
        self._note_thread()
        self.options_seen.append(kwargs.get("options"))
        return self._watch(self._inner.stream(text, **kwargs))  # validation stays eager

    def _watch(self, chunks: Iterator[Any]) -> Iterator[Any]:
        finished = False
        try:
            for chunk in chunks:
                self._note_thread()
                self.chunks_made += 1
                if self.chunk_delay:
                    time.sleep(self.chunk_delay)
                if self.before_chunk is not None:
                    self.before_chunk(self.chunks_made - 1)
                yield chunk
            finished = True
        finally:
            if not finished:
                self.streams_closed_early += 1
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()


class ServerClock:
    """The clock of the server's request deadlines (``admission.time``): real time plus what a test adds.

    ``advance(seconds)`` is a step that took that long, as far as the deadline can tell, without the
    test waiting for it or guessing how long real work takes.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)
