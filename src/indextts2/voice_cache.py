"""The Synthesizer's memory of voices: reference clips encoded once, kept by content, checked on use.

A :class:`VoiceCache` belongs to one loaded model. It keeps (least recently used first out) the
:class:`~indextts2.voice.Voice` of each reference recording, the GPT's speaker rows of each voice and
the features of each emotion clip, keyed by the SHA-256 of their samples, and refuses a voice made
for another model family or fingerprint.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np
import torch

from indextts2.audio import Audio
from indextts2.errors import InvalidInput
from indextts2.model.voice import load_speaker_clip
from indextts2.model.voice_types import (
    MAX_REFERENCE_SECONDS,
    EmotionConditioning,
    SpeakerClip,
    VoiceConditioning,
)
from indextts2.voice import Voice, content_id

__all__ = ["LRU", "MIN_REFERENCE_SECONDS", "SILENCE_PEAK", "VoiceCache", "speaker_clip"]

logger = logging.getLogger(__name__)

MIN_REFERENCE_SECONDS = 0.5  # shorter references carry too little of a voice to clone
SILENCE_PEAK = 1e-4  # a reference whose peak stays below this (-80 dBFS) is silence

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def speaker_clip(decoded: Audio) -> SpeakerClip:
    """A decoded reference read as the official pipeline reads it, after the checks a user needs.

    Raises:
        InvalidInput: the clip is shorter than 0.5 s or silent. Clips over 15 s are trimmed (with a
            logged warning).
    """
    if decoded.duration < MIN_REFERENCE_SECONDS:
        raise InvalidInput(
            f"the reference clip is {decoded.duration:.2f} s long; give at least "
            f"{MIN_REFERENCE_SECONDS} s of the speaker (5 to 15 s works best)"
        )
    if float(np.abs(decoded.samples).max()) < SILENCE_PEAK:
        raise InvalidInput("the reference clip is silent; give a recording of the speaker")
    if decoded.duration > MAX_REFERENCE_SECONDS:
        logger.warning(
            "the reference clip is %.1f s long; only its first %d s are used",
            decoded.duration,
            MAX_REFERENCE_SECONDS,
        )
    return load_speaker_clip(decoded)


class VoiceCache:
    """Voices, speaker rows and emotion clips of one model, each encoded once.

    Args:
        size: how many of each are kept.
        model_id, fingerprint, family: the model's identity (what a voice must have been made for).
        share_voices_with: the cache of another synthesizer of the same model (on another device): the
            encoded voices live on the CPU, so both keep one set of them; speaker rows and emotion
            features sit on each synthesizer's device and stay its own.
    """

    def __init__(
        self,
        size: int,
        *,
        model_id: str,
        fingerprint: str,
        family: str,
        share_voices_with: VoiceCache | None = None,
    ) -> None:
        self.model_id = model_id
        self.fingerprint = fingerprint
        self.family = family
        self._voices: LRU[str, Voice] = (
            share_voices_with._voices if share_voices_with is not None else LRU(size)
        )
        self._owns_voices = share_voices_with is None
        self._rows: LRU[str, torch.Tensor] = LRU(size)
        self._emotion_clips: LRU[str, EmotionConditioning] = LRU(size)

    def voice(
        self, clip: SpeakerClip, encode: Callable[[SpeakerClip], VoiceConditioning], *, sample_rate: int
    ) -> Voice:
        """The voice of a clip: the cached one, or ``encode(clip)`` made into a :class:`Voice`."""
        voice_id = content_id(clip.audio_22k)
        cached = self._voices.get(voice_id)
        if cached is not None:
            return cached
        voice = Voice(
            id=voice_id,
            model_id=self.model_id,
            model_fingerprint=self.fingerprint,
            duration=clip.audio_22k.shape[0] / sample_rate,
            conditioning=encode(clip),
            family=self.family,
        )
        self._voices.put(voice_id, voice)
        return voice

    def check(self, voice: Voice) -> None:
        """Refuse a voice made with another model (its conditioning would not fit this one)."""
        if not isinstance(voice, Voice):
            raise InvalidInput(f"voice must be a Voice (from Synthesizer.voice), got {type(voice).__name__}")
        if voice.family != self.family:
            raise InvalidInput(
                f"this voice was made for an {voice.family} model ({voice.model_id}); this synthesizer runs "
                f"{self.family} ({self.model_id}), whose voices hold other tensors: create the voice "
                "again from its reference clip with this model"
            )
        if voice.model_fingerprint != self.fingerprint:
            raise InvalidInput(
                f"this voice was made with model {voice.model_id} ({voice.model_fingerprint}); this "
                f"synthesizer runs {self.model_id} ({self.fingerprint}): create the voice again from "
                "its reference clip"
            )

    def speaker_rows(
        self, voice: Voice, compute: Callable[[VoiceConditioning], torch.Tensor]
    ) -> torch.Tensor:
        """The GPT's speaker rows of a voice (``compute`` once per voice)."""
        rows = self._rows.get(voice.id)
        if rows is None:
            rows = compute(voice.conditioning)
            self._rows.put(voice.id, rows)
        return rows

    def emotion_clip(
        self, samples: torch.Tensor, compute: Callable[[torch.Tensor], EmotionConditioning]
    ) -> EmotionConditioning:
        """The features of an emotion clip's 16 kHz samples (``compute`` once per recording)."""
        clip_id = content_id(samples)
        cached = self._emotion_clips.get(clip_id)
        if cached is None:
            cached = compute(samples)
            self._emotion_clips.put(clip_id, cached)
        return cached

    def clear(self) -> None:
        for cache in (self._rows, self._emotion_clips):
            cache.clear()
        if self._owns_voices:  # a shared set of voices stays with the synthesizers still open
            self._voices.clear()
