"""A validated synthesis request and what generation makes of it on a model.

:class:`Request` is what :class:`~indextts2.Synthesizer` checked and prepared from the caller's
arguments (text segments, voice, emotion, options, seed); :func:`model_segments` turns it into the
GPT's :class:`~indextts2.model.pipeline.Segment` rows (conditioning and emotion computed once per
request, each segment with its own seeded generators), on the engine thread or alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from indextts2.audio import Audio
from indextts2.engine import EngineConfig, StreamingOptions
from indextts2.engine.pacing import paced_codes
from indextts2.engine.scheduler import max_positions
from indextts2.errors import InvalidInput
from indextts2.model.decoding import make_generator
from indextts2.model.flow import FlowOptions
from indextts2.model.pipeline import Segment, TTSModel
from indextts2.options import Emotion, SynthesisOptions
from indextts2.voice import Voice
from indextts2.voice_cache import VoiceCache

if TYPE_CHECKING:
    from indextts2.text import Segment as TextSegment

__all__ = [
    "Request",
    "check_engine_positions",
    "check_model_limits",
    "join_waves",
    "model_segments",
    "paced_counts",
    "segment_seed",
    "silence",
]


@dataclass(frozen=True, eq=False)
class Request:
    """A validated request: everything generation needs, nothing computed on the model yet."""

    segments: list[TextSegment]
    voice: Voice
    emotion: Emotion
    emotion_clip: torch.Tensor | None  # 16 kHz samples of an emotion clip (audio mode)
    options: SynthesisOptions
    seed: int
    streaming: StreamingOptions
    language_id: int | None = None  # the lang_embedding row (IndexTTS-2.5)


def segment_seed(base: int, index: int | str) -> int:
    """Each segment's own seed, so that a segment's result does not depend on what it is batched with."""
    digest = hashlib.sha256(f"{base}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def check_model_limits(model: TTSModel, options: SynthesisOptions) -> None:
    """Refuse options past the GPT's own limits (text tokens per segment, codes)."""
    gpt = model.gpt.config
    if options.max_text_tokens_per_segment > gpt.max_text_tokens:
        raise InvalidInput(
            f"max_text_tokens_per_segment {options.max_text_tokens_per_segment} is more than the "
            f"model's limit of {gpt.max_text_tokens}"
        )
    if options.max_codes > gpt.max_mel_tokens:
        raise InvalidInput(
            f"max_codes {options.max_codes} is more than the model's limit of {gpt.max_mel_tokens}"
        )


def check_engine_positions(
    model: TTSModel, config: EngineConfig, segments: Sequence[TextSegment], options: SynthesisOptions
) -> None:
    """Refuse a request whose longest segment could outgrow the engine's KV cache per sequence."""
    positions = max_positions(model, config)
    longest = max(len(segment.ids) for segment in segments)
    if longest + model.prompt_overhead + options.max_codes > positions:
        raise InvalidInput(
            f"a segment of {longest} tokens with max_codes {options.max_codes} can need more than "
            f"the engine's {positions} KV-cache positions per sequence: lower max_codes or "
            "max_text_tokens_per_segment (or give the engine more max_positions)"
        )


def silence(sample_rate: int, options: SynthesisOptions) -> np.ndarray:
    """The silence between two segments."""
    return np.zeros(int(sample_rate * options.interval_silence_ms / 1000), dtype=np.float32)


def join_waves(sample_rate: int, request: Request, waves: list[np.ndarray]) -> Audio:
    """A request's segment waves joined with its silence between them."""
    gap = silence(sample_rate, request.options)
    pieces: list[np.ndarray] = []
    for index, wave in enumerate(waves):
        if index:
            pieces.append(gap)
        pieces.append(wave)
    return Audio(np.concatenate(pieces) if pieces else np.zeros(0, np.float32), sample_rate)


def model_segments(
    model: TTSModel, cache: VoiceCache, request: Request, exact_codes: Sequence[int] | None = None
) -> list[Segment]:
    """The request's segments, ready for the GPT: conditioning and emotion computed once.

    ``exact_codes`` (per segment; benchmarks) sets each segment's ``max_codes``.
    """
    device = model.device
    conditioning = request.voice.conditioning.to(device)
    latents = cache.speaker_rows(request.voice, model.speaker_latents)
    emotion = request.emotion
    clip = None
    if request.emotion_clip is not None:
        clip = cache.emotion_clip(request.emotion_clip, model.voice_encoder.encode_emotion)
    text_weights = model.classify_emotions([emotion.text])[0] if emotion.text is not None else None
    vector = model.emotion_vector(
        emotion,
        voice=conditioning,
        emotion_clip=clip,
        generator=make_generator(request.seed, device),
        text_weights=text_weights,
    )
    options = request.options
    flow = FlowOptions(steps=options.diffusion_steps, cfg_rate=options.cfg_rate)
    return [
        Segment(
            text_ids=torch.tensor(text_segment.ids, dtype=torch.int64),
            voice=conditioning,
            speaker_latents=latents,
            emotion=vector,
            generation=(
                options.generation
                if exact_codes is None
                else dataclasses.replace(options.generation, max_codes=exact_codes[index])
            ),
            flow=flow,
            generator=make_generator(segment_seed(request.seed, index), device),
            index=index,
            speed=options.speed,
            noise_generator=make_generator(segment_seed(request.seed, f"{index}:noise"), device),
            language=request.language_id,
            duration=options.duration,
        )
        for index, text_segment in enumerate(request.segments)
    ]


def paced_counts(model: TTSModel, request: Request) -> list[int] | None:
    """Code counts for a model that never stops (random weights), else None: see engine.pacing."""
    if not model.random_weights:
        return None
    counts = paced_codes([segment.tokens for segment in request.segments], model.codes_per_second)
    return [min(count, request.options.max_codes) for count in counts]
