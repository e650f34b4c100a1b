"""Voice conditioning: everything IndexTTS2 computes from a speaker (and an emotion) reference clip.

From a speaker clip: the w2v-BERT layer-17 features (``spk_cond_emb``), the prompt mel, the CAMPPlus
speaker style and the length-regulated ``prompt_condition`` (of the codec-quantised features
``S_ref`` in IndexTTS-2; of the continuous features in IndexTTS-2.5, whose encoder has no codec);
plus the clip's own emotion features (``emo_cond_emb`` when no emotion clip is given), because the
official pipeline reads the speaker clip a second time as an emotion clip. From an emotion clip: its
w2v-BERT features only.

The two clips are read differently (the goldens' quirk Q1), which :func:`load_speaker_clip` and
:func:`load_emotion_clip` reproduce: the speaker clip like ``librosa.load(path)`` (soxr HQ to
22.05 kHz), cut to 15 s, then torchaudio's sinc resampler to 16 kHz; an emotion clip like
``librosa.load(path, sr=16000)`` (soxr HQ straight to 16 kHz), cut to 15 s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from indextts2.audio import Audio, AudioSource, kaldi_fbank, load_audio, log_mel_spectrogram, resample
from indextts2.errors import ConfigError, InvalidInput
from indextts2.model.campplus import CAMPPlus, CAMPPlusDims
from indextts2.model.codec import SemanticCodec
from indextts2.model.config import ModelConfig, load_config
from indextts2.model.dummy import DUMMY_SEED, seeded
from indextts2.model.length_regulator import LengthRegulator
from indextts2.model.loading import read_s2mel_checkpoint
from indextts2.model.semantic import SemanticEncoder
from indextts2.model.voice_types import (
    MAX_REFERENCE_SECONDS,
    MIN_REFERENCE_SECONDS,
    SEMANTIC_RATE,
    SPEAKER_RATE,
    EmotionConditioning,
    SpeakerClip,
    VoiceConditioning,
)

if TYPE_CHECKING:
    from indextts2.store import ModelFiles

__all__ = [
    "MAX_REFERENCE_SECONDS",
    "EmotionConditioning",
    "PromptMelSettings",
    "SpeakerClip",
    "VoiceCheckpointFiles",
    "VoiceConditioning",
    "VoiceEncoder",
    "load_emotion_clip",
    "load_speaker_clip",
]

logger = logging.getLogger(__name__)

# CAMPPlus input: torchaudio.compliance.kaldi.fbank(audio_16k, num_mel_bins=80, dither=0) in infer_v2.
_STYLE_FBANK_BINS = 80
# infer_v2 builds mel_fn with fmax None when the config says None and 8000 for ANY other value.
_PROMPT_MEL_FMAX_WHEN_SET = 8000.0


# --------------------------------------------------------------------------------------------------
# Reading the clips


def _decode(source: Audio | AudioSource, role: str) -> Audio:
    audio = source if isinstance(source, Audio) else load_audio(source)
    if not np.isfinite(audio.samples).all():
        raise InvalidInput(f"the {role} clip holds NaN or infinite samples")
    if audio.duration < MIN_REFERENCE_SECONDS:
        raise InvalidInput(
            f"the {role} clip is {audio.duration * 1000:.0f} ms long; "
            f"a reference needs at least {MIN_REFERENCE_SECONDS * 1000:.0f} ms of audio"
        )
    return audio


def _checked_samples(samples: torch.Tensor) -> torch.Tensor:
    """A caller's own 16 kHz emotion samples, held to the rules :func:`_decode` applies to files."""
    if samples.dim() != 1 or not samples.is_floating_point():
        raise InvalidInput(
            f"emotion samples must be a 1-D float tensor, got {samples.dtype} {tuple(samples.shape)}"
        )
    _decode(Audio(samples.detach().cpu().float().numpy(), SEMANTIC_RATE), "emotion")
    return samples


def _emotion_samples(audio: Audio) -> torch.Tensor:
    at_16k = audio.resampled(SEMANTIC_RATE)  # soxr HQ, as librosa.load(path, sr=16000)
    return torch.from_numpy(at_16k.samples[: int(MAX_REFERENCE_SECONDS * SEMANTIC_RATE)].copy())


def load_speaker_clip(source: Audio | AudioSource) -> SpeakerClip:
    """Read a speaker reference as the official pipeline does (see the module docstring).

    Args:
        source: decoded :class:`~indextts2.audio.Audio` at any rate, or a path, bytes or binary file.

    Raises:
        AudioDecodeError: the file cannot be decoded.
        InvalidInput: the clip is shorter than ``MIN_REFERENCE_SECONDS`` or not finite.
    """
    audio = _decode(source, "speaker")
    at_22k = audio.resampled(SPEAKER_RATE)  # soxr HQ, as librosa.load(path)
    audio_22k = torch.from_numpy(at_22k.samples[: int(MAX_REFERENCE_SECONDS * SPEAKER_RATE)].copy())
    audio_16k = resample(audio_22k, SPEAKER_RATE, SEMANTIC_RATE)  # torchaudio-style sinc
    return SpeakerClip(audio_22k=audio_22k, audio_16k=audio_16k, emotion_16k=_emotion_samples(audio))


def load_emotion_clip(source: Audio | AudioSource) -> torch.Tensor:
    """Read an emotion reference: 16 kHz samples ``(samples,)``, soxr HQ, at most 15 s."""
    return _emotion_samples(_decode(source, "emotion"))


SpeakerInput = SpeakerClip | Audio | AudioSource
EmotionInput = torch.Tensor | Audio | AudioSource


def _as_list(clips: Any, caller: str) -> list[Any]:
    """One clip or a list/tuple of clips (a path string is one clip, not a sequence of letters)."""
    items = list(clips) if isinstance(clips, list | tuple) else [clips]
    if not items:
        raise InvalidInput(f"{caller} needs at least one clip")
    return items


# --------------------------------------------------------------------------------------------------
# The networks


@dataclass(frozen=True)
class VoiceCheckpointFiles:
    """Where the voice networks' files are. ``semantic_codec`` None: no codec (IndexTTS-2.5)."""

    w2v_bert_dir: Path
    w2v_stats: Path
    semantic_codec: Path | None
    campplus: Path
    s2mel: Path

    @classmethod
    def of(cls, files: ModelFiles) -> VoiceCheckpointFiles:
        """The voice files of a model (:class:`~indextts2.store.ModelFiles`), whatever its layout."""
        return cls(
            w2v_bert_dir=files.w2v_bert_dir,
            w2v_stats=files.w2v_stats,
            semantic_codec=files.semantic_codec,
            campplus=files.campplus,
            s2mel=files.s2mel,
        )


@dataclass(frozen=True)
class PromptMelSettings:
    """The prompt mel's STFT and mel settings: config.yaml's ``s2mel.preprocess_params``."""

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float
    fmax: float | None

    @classmethod
    def from_config(cls, config: ModelConfig) -> PromptMelSettings:
        params = config.section("s2mel", "preprocess_params")
        spect = params["spect_params"]
        return cls(
            sample_rate=int(params["sr"]),
            n_fft=int(spect["n_fft"]),
            hop_length=int(spect["hop_length"]),
            win_length=int(spect["win_length"]),
            n_mels=int(spect["n_mels"]),
            fmin=float(spect.get("fmin", 0) or 0),
            fmax=None if spect.get("fmax") is None else _PROMPT_MEL_FMAX_WHEN_SET,
        )


def _campplus_dims(config: ModelConfig) -> dict[str, int]:
    """CAMPPlus sizes for a dummy build: the optional ``campplus`` section, else the release sizes."""
    section = config.main.get("campplus") or {}
    return {
        "growth_rate": int(section.get("growth_rate", 32)),
        "bn_size": int(section.get("bn_size", 4)),
        "init_channels": int(section.get("init_channels", 128)),
    }


def _check_widths(config: ModelConfig) -> None:
    """w2v-BERT, the codec and the length regulator must agree on the feature width."""
    widths = {
        "w2v-BERT hidden_size": int(config.w2v_bert.get("hidden_size", 0)),
        "semantic_codec.hidden_size": config.semantic_width,
        "s2mel.length_regulator.in_channels": int(config.section("s2mel", "length_regulator", "in_channels")),
    }
    if len(set(widths.values())) != 1:
        listed = ", ".join(f"{k} = {v}" for k, v in widths.items())
        raise ConfigError(f"config {config.name}: the semantic feature widths disagree: {listed}")


class VoiceEncoder(nn.Module):
    """The networks that turn reference clips into :class:`VoiceConditioning`.

    Build with :meth:`from_checkpoint` (official files) or :meth:`dummy` (seeded random weights).
    """

    def __init__(
        self,
        *,
        semantic: SemanticEncoder,
        codec: SemanticCodec | None,
        campplus: CAMPPlus,
        length_regulator: LengthRegulator,
        mel: PromptMelSettings,
    ) -> None:
        super().__init__()
        self.semantic = semantic
        self.codec = codec
        self.campplus = campplus
        self.length_regulator = length_regulator
        self.mel = mel

    @classmethod
    def from_checkpoint(
        cls,
        directory: str | Path,
        *,
        config: ModelConfig | None = None,
        files: VoiceCheckpointFiles | None = None,
    ) -> VoiceEncoder:
        """Load from a model directory in the official layout (as ``goldens/checkpoint``).

        ``files`` (:meth:`VoiceCheckpointFiles.of`) names the files of another layout; without a
        ``semantic_codec`` the encoder has none (IndexTTS-2.5: the prompt condition is made from the
        continuous features).

        Raises:
            ConfigError: a config file is missing or malformed.
            CheckpointError: a weight file is missing or unreadable, or a tensor is missing,
                unexpected or of the wrong shape; the message names the file and the key.
        """
        root = Path(directory)
        if files is None or config is None:
            from indextts2.store.files import layout_paths

            _, paths = layout_paths(root)
            files = files or cls._files_at(paths)
            config = config or load_config(
                paths["config"],
                w2v_bert_dir=paths["w2v_bert_config"].parent,
                bigvgan_dir=paths["bigvgan_config"].parent,
            )
        _check_widths(config)

        # The big networks are built on the meta device and take the file's tensors (no double copy).
        with torch.device("meta"):
            semantic = SemanticEncoder(config.w2v_bert, preprocessor=config.w2v_bert_preprocessor)
            codec = (
                None
                if files.semantic_codec is None
                else SemanticCodec.from_config(config.section("semantic_codec"))
            )
        semantic.load_weights(files.w2v_bert_dir, assign=True)
        semantic.load_stats(files.w2v_stats)
        if codec is not None and files.semantic_codec is not None:
            codec.load(files.semantic_codec, assign=True)
        campplus = CAMPPlus.from_checkpoint(
            files.campplus, embedding_size=int(config.section("s2mel", "style_encoder", "dim"))
        )
        regulator = LengthRegulator.from_config(config.section("s2mel", "length_regulator"))
        parts = read_s2mel_checkpoint(files.s2mel, gpt_layer=codec is not None)
        regulator.load(parts["length_regulator"], source=files.s2mel)
        encoder = cls(
            semantic=semantic,
            codec=codec,
            campplus=campplus,
            length_regulator=regulator,
            mel=PromptMelSettings.from_config(config),
        )
        logger.info("voice encoder loaded from %s", root)
        return encoder.eval()

    @staticmethod
    def _files_at(paths: dict[str, Path]) -> VoiceCheckpointFiles:
        return VoiceCheckpointFiles(
            w2v_bert_dir=paths["w2v_bert_config"].parent,
            w2v_stats=paths["w2v_stats"],
            semantic_codec=paths.get("semantic_codec"),
            campplus=paths["campplus"],
            s2mel=paths["s2mel"],
        )

    @classmethod
    def dummy(cls, config: ModelConfig, *, seed: int = DUMMY_SEED, codec: bool = True) -> VoiceEncoder:
        """Every network built from ``config`` with seeded random weights; no file is read.

        Seeds are per network (``w2v_bert``, ``semantic_codec``, ``campplus``, ``length_regulator``);
        the w2v-BERT statistics are mean 0 and variance 1. ``codec`` False: no codec (IndexTTS-2.5).
        """
        _check_widths(config)
        with seeded("w2v_bert", seed):
            semantic = SemanticEncoder(config.w2v_bert, preprocessor=config.w2v_bert_preprocessor)
        semantic_codec = None
        if codec:
            with seeded("semantic_codec", seed):
                semantic_codec = SemanticCodec.from_config(config.section("semantic_codec"))
        with seeded("campplus", seed):
            dims = CAMPPlusDims(
                embedding_size=int(config.section("s2mel", "style_encoder", "dim")), **_campplus_dims(config)
            )
            campplus = CAMPPlus(dims)
        with seeded("length_regulator", seed):
            regulator = LengthRegulator.from_config(config.section("s2mel", "length_regulator"))
        encoder = cls(
            semantic=semantic,
            codec=semantic_codec,
            campplus=campplus,
            length_regulator=regulator,
            mel=PromptMelSettings.from_config(config),
        )
        return encoder.eval()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ----------------------------------------------------------------------------------------------

    def _semantic_batch(self, clips: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised layer-17 features of 16 kHz clips: ``(B, T, W)`` zero-padded, and lengths."""
        device = self.device
        # The input features are computed in float64 on the CPU (cheap; float64 is slow or missing
        # on some accelerators), then moved.
        inputs = self.semantic.features([clip.detach().cpu() for clip in clips])
        features = self.semantic(inputs.features.to(device), inputs.attention_mask.to(device))
        lengths = inputs.lengths.to(device)
        valid = torch.arange(features.shape[1], device=device)[None, :] < lengths[:, None]
        return features * valid[:, :, None].to(features.dtype), lengths

    @torch.no_grad()
    def encode_emotion(self, clips: EmotionInput | Sequence[EmotionInput]) -> EmotionConditioning:
        """``emo_cond_emb`` of one or more emotion clips, batched.

        Args:
            clips: a clip or a list of clips: 16 kHz sample tensors from :func:`load_emotion_clip`,
                or anything it accepts (paths, bytes, :class:`~indextts2.audio.Audio`).
        """
        items = _as_list(clips, "encode_emotion")
        samples = [
            _checked_samples(c) if isinstance(c, torch.Tensor) else load_emotion_clip(c) for c in items
        ]
        features, lengths = self._semantic_batch(samples)
        return EmotionConditioning(features=features, lengths=lengths)

    @torch.no_grad()
    def encode_voice(self, clips: SpeakerInput | Sequence[SpeakerInput]) -> VoiceConditioning:
        """Everything the later stages need from one or more speaker clips, batched.

        Args:
            clips: a clip or a list of clips: :class:`SpeakerClip` from :func:`load_speaker_clip`,
                or anything it accepts (paths, bytes, :class:`~indextts2.audio.Audio`).

        Returns:
            A :class:`VoiceConditioning` with one row per clip, zero-padded, with lengths.

        Raises:
            AudioDecodeError, InvalidInput: a clip cannot be read or is unusable (see
                :func:`load_speaker_clip`).
        """
        items = _as_list(clips, "encode_voice")
        prepared = [c if isinstance(c, SpeakerClip) else load_speaker_clip(c) for c in items]
        count = len(prepared)
        device = self.device

        # One w2v-BERT batch for the speaker clips at 16 kHz and the same clips read as emotion clips.
        semantic, semantic_lengths = self._semantic_batch(
            [c.audio_16k for c in prepared] + [c.emotion_16k for c in prepared]
        )
        feature_lengths, emotion_lengths = semantic_lengths[:count], semantic_lengths[count:]
        speaker_features = semantic[:count, : int(feature_lengths.max())]
        emotion_features = semantic[count:, : int(emotion_lengths.max())]

        prompt_content = speaker_features
        if self.codec is not None:
            prompt_content, _ = self.semantic_tokens(speaker_features, feature_lengths)

        mels = [self._prompt_mel(c.audio_22k.to(device)) for c in prepared]  # each (n_mels, frames)
        mel_lengths = torch.tensor([m.shape[-1] for m in mels], dtype=torch.int64, device=device)
        prompt_mel = torch.stack([F.pad(m, (0, int(mel_lengths.max()) - m.shape[-1])) for m in mels])

        styles = [self._speaker_style(c.audio_16k.to(device)) for c in prepared]
        speaker_style = torch.cat(styles)

        prompt_condition = self.length_regulator(prompt_content, mel_lengths, feature_lengths)
        return VoiceConditioning(
            speaker_features=speaker_features,
            feature_lengths=feature_lengths,
            speaker_style=speaker_style,
            prompt_mel=prompt_mel,
            mel_lengths=mel_lengths,
            prompt_condition=prompt_condition,
            emotion_features=emotion_features,
            emotion_lengths=emotion_lengths,
        )

    @torch.no_grad()
    def semantic_tokens(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """IndexTTS-2: the codec's quantised features ``S_ref`` ``(B, T, W)`` and codes ``(B, T)``.

        Padded frames are zero in both.
        """
        if self.codec is None:
            raise InvalidInput(
                "this voice encoder has no semantic codec (IndexTTS-2.5 uses the features as they are)"
            )
        quantized, codes = self.codec.quantize(features, lengths)
        valid = torch.arange(codes.shape[1], device=features.device)[None, :] < lengths[:, None]
        return quantized * valid[:, :, None].to(quantized.dtype), codes * valid

    def _prompt_mel(self, audio_22k: torch.Tensor) -> torch.Tensor:
        mel = self.mel
        return log_mel_spectrogram(
            audio_22k.float(),
            sample_rate=mel.sample_rate,
            n_fft=mel.n_fft,
            hop_length=mel.hop_length,
            win_length=mel.win_length,
            n_mels=mel.n_mels,
            fmin=mel.fmin,
            fmax=mel.fmax,
        )

    def _speaker_style(self, audio_16k: torch.Tensor) -> torch.Tensor:
        """CAMPPlus style of one clip, ``(1, style_dim)``: CAMPPlus pools over the whole clip."""
        fbank = kaldi_fbank(audio_16k.float(), sample_rate=SEMANTIC_RATE, num_mel_bins=_STYLE_FBANK_BINS)
        fbank = fbank - fbank.mean(dim=0, keepdim=True)  # (frames, 80)
        dtype = next(self.campplus.parameters()).dtype
        style: torch.Tensor = self.campplus(fbank.unsqueeze(0).to(dtype))
        return style
