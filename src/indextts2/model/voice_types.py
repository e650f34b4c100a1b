"""The values of the voice stage: prepared reference clips and the conditioning computed from them.

Plain dataclasses of tensors, so that a cache can keep them, save them (``to_tensors`` gives a flat
dict for safetensors) and batch them (``stack``) without the networks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F

from indextts2.errors import InvalidInput

__all__ = [
    "MAX_REFERENCE_SECONDS",
    "MIN_REFERENCE_SECONDS",
    "SEMANTIC_RATE",
    "SPEAKER_RATE",
    "EmotionConditioning",
    "SpeakerClip",
    "VoiceConditioning",
]

# infer_v2: _load_and_cut_audio(path, 15, ...) for both the speaker and the emotion clip.
MAX_REFERENCE_SECONDS = 15
# Ours: shorter clips have too few frames for the fbank statistics and CAMPPlus's pooling.
MIN_REFERENCE_SECONDS = 0.1
# infer_v2: librosa.load's default rate (speaker clip, prompt mel) and w2v-BERT's input rate.
SPEAKER_RATE = 22050
SEMANTIC_RATE = 16000


@dataclass(frozen=True, eq=False)
class SpeakerClip:
    """A speaker reference read as the official pipeline reads it (quirk Q1).

    Attributes:
        audio_22k: ``(samples,)`` float32 at 22.05 kHz (soxr HQ from the file), at most 15 s.
        audio_16k: ``(samples,)`` float32, ``audio_22k`` through the sinc resampler.
        emotion_16k: ``(samples,)`` float32, the same clip read as an emotion clip (soxr HQ from the
            file straight to 16 kHz, at most 15 s): used when no emotion clip is given.
    """

    audio_22k: torch.Tensor
    audio_16k: torch.Tensor
    emotion_16k: torch.Tensor


T = TypeVar("T", bound="_PaddedBatch")


@dataclass(frozen=True, eq=False)
class _PaddedBatch:
    """Tensors with a batch axis first; some padded along a time axis with a lengths field."""

    # field -> (lengths field, time axis) for the padded tensors
    _TIME_AXES: ClassVar[dict[str, tuple[str, int]]] = {}

    @property
    def batch_size(self) -> int:
        return int(getattr(self, fields(self)[0].name).shape[0])

    def to(self: T, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> T:
        """Move every tensor to ``device``; floating-point ones also to ``dtype`` (ints stay ints)."""
        changes: dict[str, torch.Tensor] = {}
        for f in fields(self):
            tensor: torch.Tensor = getattr(self, f.name)
            target = dtype if dtype is not None and tensor.is_floating_point() else None
            changes[f.name] = tensor.to(device=device, dtype=target)
        return replace(self, **changes)

    def item(self: T, index: int) -> T:
        """Row ``index`` as a batch of one, cut to its own lengths."""
        if not -self.batch_size <= index < self.batch_size:
            raise IndexError(f"index {index} is out of range for a batch of {self.batch_size}")
        index %= self.batch_size
        changes: dict[str, torch.Tensor] = {}
        for f in fields(self):
            row = getattr(self, f.name)[index : index + 1]
            axis = self._TIME_AXES.get(f.name)
            if axis is not None:
                length = int(getattr(self, axis[0])[index])
                row = row.narrow(axis[1], 0, length)
            changes[f.name] = row
        return replace(self, **changes)

    @classmethod
    def stack(cls: type[T], items: Sequence[T]) -> T:
        """One batch from several (each of any batch size), zero-padded along time."""
        if not items:
            raise ValueError(f"{cls.__name__}.stack needs at least one item")
        changes: dict[str, torch.Tensor] = {}
        for f in fields(cls):
            tensors: list[torch.Tensor] = [getattr(item, f.name) for item in items]
            axis = cls._TIME_AXES.get(f.name)
            if axis is not None:
                longest = max(t.shape[axis[1]] for t in tensors)
                tensors = [_pad_axis(t, axis[1], longest) for t in tensors]
            changes[f.name] = torch.cat(tensors)
        return cls(**changes)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """A flat ``{field: tensor}`` dict (contiguous, for safetensors)."""
        return {f.name: getattr(self, f.name).contiguous() for f in fields(self)}

    @classmethod
    def from_tensors(cls: type[T], tensors: Mapping[str, Any]) -> T:
        """Rebuild from :meth:`to_tensors` output; a missing or non-tensor field is an InvalidInput."""
        values: dict[str, torch.Tensor] = {}
        for f in fields(cls):
            value = tensors.get(f.name)
            if not isinstance(value, torch.Tensor):
                raise InvalidInput(f"{cls.__name__}: missing tensor {f.name!r}")
            values[f.name] = value
        batch = {int(v.shape[0]) if v.dim() else -1 for v in values.values()}
        if len(batch) != 1 or -1 in batch:
            raise InvalidInput(f"{cls.__name__}: the tensors disagree on the batch size")
        return cls(**values)


def _pad_axis(tensor: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    missing = size - tensor.shape[axis]
    if missing == 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 1 - axis) + [0, missing]
    return F.pad(tensor, pad)


@dataclass(frozen=True, eq=False)
class VoiceConditioning(_PaddedBatch):
    """What the later stages need from speaker reference clips; one row per clip.

    Names of the official pipeline (``infer_v2.py``) in brackets. ``W`` is the semantic width (1024
    in the release), ``T`` w2v-BERT frames (~50 Hz), ``M`` prompt-mel frames (~86 Hz).

    Attributes:
        speaker_features: ``(B, T, W)`` normalised w2v-BERT layer-17 features [``spk_cond_emb``].
        feature_lengths: ``(B,)`` int64 valid ``T`` per clip.
        speaker_style: ``(B, 192)`` CAMPPlus speaker style [``style``].
        prompt_mel: ``(B, 80, M)`` log-mel of the clip at 22.05 kHz [``ref_mel``].
        mel_lengths: ``(B,)`` int64 valid ``M`` per clip [``ref_target_lengths``].
        prompt_condition: ``(B, M, C)`` the length-regulated prompt content [``prompt_condition``]:
            the codec-quantised features (IndexTTS-2's ``S_ref``) or the features themselves (2.5).
        emotion_features: ``(B, T_e, W)`` the clip's features read as an emotion clip [``emo_cond_emb``
            when no emotion clip is given].
        emotion_lengths: ``(B,)`` int64 valid ``T_e`` per clip.
    """

    speaker_features: torch.Tensor
    feature_lengths: torch.Tensor
    speaker_style: torch.Tensor
    prompt_mel: torch.Tensor
    mel_lengths: torch.Tensor
    prompt_condition: torch.Tensor
    emotion_features: torch.Tensor
    emotion_lengths: torch.Tensor

    _TIME_AXES: ClassVar[dict[str, tuple[str, int]]] = {
        "speaker_features": ("feature_lengths", 1),
        "prompt_mel": ("mel_lengths", 2),
        "prompt_condition": ("mel_lengths", 1),
        "emotion_features": ("emotion_lengths", 1),
    }

    def emotion(self) -> EmotionConditioning:
        """The clip's own emotion features, as used when no emotion clip is given."""
        return EmotionConditioning(features=self.emotion_features, lengths=self.emotion_lengths)


@dataclass(frozen=True, eq=False)
class EmotionConditioning(_PaddedBatch):
    """Emotion-clip features [``emo_cond_emb``]: ``features`` ``(B, T, W)``, ``lengths`` ``(B,)`` int64."""

    features: torch.Tensor
    lengths: torch.Tensor

    _TIME_AXES: ClassVar[dict[str, tuple[str, int]]] = {"features": ("lengths", 1)}
