"""A stand-in Synthesizer that honours the Synthesizer contract (issue 8) for the server's tests.

It exists only until ``indextts2.Synthesizer`` lands; then the ``synthesizer`` fixture in
``tests/server/conftest.py`` switches to ``Synthesizer.from_pretrained("dummy:tiny")`` and this module,
and ``install_options()``, go away.

What it does, as the contract says: ``voice()`` decodes the reference (typed errors for unreadable,
silent or too short clips), the voice id is the SHA-256 of the decoded samples; ``validate()`` and
``stream()`` refuse bad input eagerly; ``stream()`` yields one or more chunks per text segment (a tone
whose pitch depends on the voice and the segment), silence between segments, ``final`` on the last
chunk, and stops at the next chunk boundary when closed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import sys
import threading
import time
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from indextts2.audio import Audio, load_audio
from indextts2.errors import InvalidInput, TextTooLong

SAMPLE_RATE = 22050
EMOTIONS = ("happy", "angry", "sad", "afraid", "disgusted", "melancholic", "surprised", "calm")
CHUNK_SECONDS = 0.1
SECONDS_PER_CHARACTER = 0.03
MIN_REFERENCE_SECONDS = 0.5
MAX_REFERENCE_SECONDS = 15.0


@dataclass(frozen=True)
class Emotion:
    audio: Audio | None = None
    alpha: float = 1.0
    vector: tuple[float, ...] | None = None
    text: str | None = None
    random: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidInput(f"emotion alpha must be between 0 and 1, got {self.alpha}")
        if self.vector is not None:
            if len(self.vector) != len(EMOTIONS):
                raise InvalidInput(
                    f"the emotion vector has {len(self.vector)} values; give {len(EMOTIONS)}, in the order "
                    + ", ".join(EMOTIONS)
                )
            if any(not 0.0 <= v <= 1.0 for v in self.vector):
                raise InvalidInput("every emotion weight must be between 0 and 1")
        sources = sum(x is not None and x != "" for x in (self.audio, self.vector, self.text))
        if sources > 1:
            raise InvalidInput("give one emotion source: a clip, a vector, or a text")

    @classmethod
    def from_mapping(cls, weights: Mapping[str, float], *, alpha: float = 1.0) -> Emotion:
        unknown = sorted(set(weights) - set(EMOTIONS))
        if unknown:
            raise InvalidInput(f"unknown emotion(s) {', '.join(unknown)}; use {', '.join(EMOTIONS)}")
        return cls(vector=tuple(float(weights.get(name, 0.0)) for name in EMOTIONS), alpha=alpha)


@dataclass(frozen=True)
class SynthesisOptions:
    temperature: float = 0.8
    top_k: int = 30
    top_p: float = 0.8
    repetition_penalty: float = 10.0
    num_beams: int = 3
    max_codes: int = 1500
    max_text_tokens_per_segment: int = 120
    diffusion_steps: int = 25
    cfg_rate: float = 0.7
    seed: int | None = None
    interval_silence_ms: int = 200
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise InvalidInput(f"temperature must be positive, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InvalidInput(f"top_p must be in (0, 1], got {self.top_p}")
        if not 0.25 <= self.speed <= 4.0:
            raise InvalidInput(f"speed must be between 0.25 and 4, got {self.speed}")
        if self.diffusion_steps < 1 or self.num_beams < 1 or self.top_k < 0:
            raise InvalidInput("diffusion_steps and num_beams must be at least 1, top_k at least 0")
        if self.interval_silence_ms < 0:
            raise InvalidInput("interval_silence_ms must be 0 or more")

    def replace(self, **changes: Any) -> SynthesisOptions:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidInput(f"unknown option(s): {', '.join(unknown)}")
        return replace(self, **changes)


@dataclass(frozen=True)
class AudioChunk:
    samples: np.ndarray
    sample_rate: int
    segment: int
    final: bool


@dataclass(frozen=True)
class Voice:
    id: str
    model_id: str
    duration: float


def install_options() -> None:
    """Make ``indextts2.options`` importable: the real module when it exists, else this file's types."""
    if importlib.util.find_spec("indextts2.options") is not None:
        return
    module = types.ModuleType("indextts2.options")
    module.Emotion = Emotion  # type: ignore[attr-defined]
    module.SynthesisOptions = SynthesisOptions  # type: ignore[attr-defined]
    module.EMOTIONS = EMOTIONS  # type: ignore[attr-defined]
    sys.modules["indextts2.options"] = module


class FakeSynthesizer:
    """Deterministic tones instead of speech, with the Synthesizer's interface and checks.

    ``chunk_delay`` (seconds) makes each chunk take that long, as a GPU would; ``chunks_made`` and
    ``streams_closed_early`` let tests see the work that was done and stopped.
    """

    model_id = "fake:tone"
    sample_rate = SAMPLE_RATE
    device = "cpu"

    def __init__(self, *, chunk_delay: float = 0.0) -> None:
        self.chunk_delay = chunk_delay
        self.chunks_made = 0
        self.streams_closed_early = 0
        self.voices_encoded = 0
        self.threads_used: set[str] = set()
        self._lock = threading.Lock()

    def _note_thread(self) -> None:
        self.threads_used.add(threading.current_thread().name)

    def voice(self, audio: Any, /) -> Voice:
        self._note_thread()
        clip = audio if isinstance(audio, Audio) else load_audio(audio, SAMPLE_RATE)
        if clip.sample_rate != SAMPLE_RATE:
            clip = clip.resampled(SAMPLE_RATE)
        if clip.duration < MIN_REFERENCE_SECONDS:
            raise InvalidInput(
                f"the reference is {clip.duration:.2f} s long; "
                f"give at least {MIN_REFERENCE_SECONDS} s of speech"
            )
        if float(np.max(np.abs(clip.samples))) < 1e-4:
            raise InvalidInput("the reference is silent; record some speech")
        samples = clip.samples[: int(MAX_REFERENCE_SECONDS * SAMPLE_RATE)]
        with self._lock:
            self.voices_encoded += 1
        return Voice(
            id=hashlib.sha256(samples.tobytes()).hexdigest(),
            model_id=self.model_id,
            duration=len(samples) / SAMPLE_RATE,
        )

    def check_voice(self, voice: Voice) -> None:
        if voice.model_id != self.model_id:
            raise InvalidInput(f"voice {voice.id[:12]} was made for {voice.model_id}, not {self.model_id}")

    def validate(
        self,
        text: str,
        *,
        voice: Voice,
        emotion: Emotion | None = None,
        options: SynthesisOptions | None = None,
        max_text_chars: int | None = None,
    ) -> None:
        if not text or not text.strip():
            raise InvalidInput("the text is empty; give some text to speak")
        if max_text_chars is not None and len(text) > max_text_chars:
            raise TextTooLong(len(text), max_text_chars)
        self.check_voice(voice)

    def stream(
        self,
        text: str,
        /,
        *,
        voice: Voice,
        emotion: Emotion | None = None,
        options: SynthesisOptions | None = None,
    ) -> Iterator[AudioChunk]:
        self._note_thread()
        self.validate(text, voice=voice, emotion=emotion, options=options)
        return self._generate(text, voice, options or SynthesisOptions())

    def _generate(self, text: str, voice: Voice, options: SynthesisOptions) -> Iterator[AudioChunk]:
        segments = [s for s in re.split(r"(?<=[.!?。！？])\s*", text.strip()) if s]
        base = 200.0 + int(voice.id[:4], 16) % 200
        blocks: list[tuple[int, np.ndarray]] = []
        for index, segment in enumerate(segments):
            seconds = max(CHUNK_SECONDS, len(segment) * SECONDS_PER_CHARACTER / options.speed)
            t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
            tone = (0.3 * np.sin(2 * math.pi * (base + 40 * index) * t)).astype(np.float32)
            step = int(CHUNK_SECONDS * SAMPLE_RATE)
            pieces = [tone[i : i + step] for i in range(0, len(tone), step)]
            if index < len(segments) - 1 and options.interval_silence_ms:
                silence = np.zeros(int(options.interval_silence_ms / 1000 * SAMPLE_RATE), np.float32)
                pieces[-1] = np.concatenate([pieces[-1], silence])
            blocks.extend((index, piece) for piece in pieces)
        finished = False
        try:
            for number, (segment_index, piece) in enumerate(blocks):
                self._note_thread()
                if self.chunk_delay:
                    time.sleep(self.chunk_delay)
                with self._lock:
                    self.chunks_made += 1
                yield AudioChunk(piece, SAMPLE_RATE, segment_index, number == len(blocks) - 1)
            finished = True
        finally:
            if not finished:
                with self._lock:
                    self.streams_closed_early += 1

    def synthesize(self, text: str, /, *, voice: Voice, emotion: Any = None, options: Any = None) -> Audio:
        chunks = list(self.stream(text, voice=voice, emotion=emotion, options=options))
        return Audio(np.concatenate([c.samples for c in chunks]), SAMPLE_RATE)

    def close(self) -> None:
        pass
