"""Model families: everything that differs between IndexTTS-2 and IndexTTS-2.5, in one place.

The two releases share most networks (w2v-BERT, CAMPPlus, the emotion conformer/perceiver and
exemplars, the GPT-2 stack and its decoding, the length regulator, DiT + flow matching, BigVGAN).
A :class:`ModelFamily` answers the questions where they differ, so that :class:`TTSModel`, the
engine and the Synthesizer ask it instead of branching on a version:

================================  ===============================  ==================================
question                          IndexTTS-2                       IndexTTS-2.5
================================  ===============================  ==================================
GPT speaker conditioning          32 perceiver latents of the      ``spk_emb_proj`` of the CAMPPlus
                                  w2v-BERT features + 2 speed      style + 2 zero rows (3 rows)
                                  rows (34 rows)
language                          none (zh/en from the text)       ``lang_embedding`` on every text
                                                                   row; zh, en, ja, es, ar
codes per second                  50                               25
s2mel content (one per code ->)   ``gpt_layer(latent) +            ``EnhancedCodec.decode``: two
                                  vq2emb(code)``: one frame        frames per code, no latent pass
mel frames                        ``int(n * 1.72 / speed)``,       ``int(2n * 1.72 * duration)``,
                                  float32                          float64 (quirk Q8)
prompt condition                  codec-quantised features         the continuous features
speaking rate                     ``speed`` (ours)                 ``duration`` (official) and speed
text front end                    sentencepiece ``bpe.model``      tiktoken vocabulary, 5 languages
checkpoint layout                 store spec ``IndexTeam/          store spec ``IndexTeam/
                                  IndexTTS-2``                     IndexTTS-2.5`` (``hf_cache/``)
================================  ===============================  ==================================

Families are found by name (:func:`family_named`): the store recognises a checkpoint's family from its
files (``ModelFiles.family``), a dummy preset names its own (:func:`family_of_preset`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from indextts2.errors import InvalidInput
from indextts2.model.s2mel import mel_frames_for_codes, mel_frames_for_content

if TYPE_CHECKING:
    from indextts2.model.pipeline import MelPiece, Segment, TTSModel
    from indextts2.model.voice_types import VoiceConditioning

__all__ = [
    "FAMILIES",
    "INDEXTTS_2",
    "INDEXTTS_2_5",
    "ModelFamily",
    "family_named",
    "family_of_preset",
]

# The rate of semantic codes: w2v-BERT's 50 Hz frames, one code each (IndexTTS-2), or one code per
# two frames (IndexTTS-2.5's codec, downsample_scale 2).
W2V_FRAME_RATE = 50.0


@dataclass(frozen=True)
class ModelFamily(ABC):
    """What a model family is and how its stages differ (subclasses give the behaviour).

    Attributes:
        name: ``IndexTTS-2`` or ``IndexTTS-2.5`` (also the store spec's ``family``).
        model_id: the hub id of its release.
        content_frames_per_code: s2mel content frames each code gives (1, or 2 through the codec).
        speaker_mode: the GPT's speaker conditioning (``UnifiedVoice`` ``conformer`` / ``campplus``).
        languages: the languages the model was trained on (a caller may name one, or one of the
            official fall-backs its text front end accepts); empty when the model takes none.
        supports_duration: whether ``SynthesisOptions.duration`` (the official ``duration_factor``)
            applies.
        s2mel_gpt_layer: whether s2mel.pth has a ``gpt_layer`` (the latent pass feeds it).
        semantic_codec: whether the voice encoder quantises the prompt with MaskGCT's codec.
    """

    name: str
    model_id: str
    content_frames_per_code: int
    speaker_mode: str
    languages: tuple[str, ...]
    supports_duration: bool
    s2mel_gpt_layer: bool
    semantic_codec: bool

    @property
    def code_rate(self) -> float:
        """Semantic codes per second of speech (50 for IndexTTS-2, 25 for IndexTTS-2.5)."""
        return W2V_FRAME_RATE / self.content_frames_per_code

    @property
    def supports_language(self) -> bool:
        return bool(self.languages)

    # ------------------------------------------------------------------ stages

    @abstractmethod
    def speaker_conditioning(self, model: TTSModel, voice: VoiceConditioning) -> torch.Tensor:
        """The GPT's speaker rows of one voice, ``(1, R, D)`` in the GPT's dtype."""
        ...

    @abstractmethod
    def content(
        self, model: TTSModel, segments: Sequence[Segment], codes: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """Per segment, the rows s2mel is made from: ``content_frames_per_code`` rows per code."""
        ...

    @abstractmethod
    def regulator_input(
        self, model: TTSModel, pieces: Sequence[MelPiece]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The length regulator's input ``(B, T, W)`` of a batch of pieces and its lengths ``(B,)``."""
        ...

    @abstractmethod
    def mel_frames(self, codes: int, *, speed: float = 1.0, duration: float = 1.0) -> int:
        """Mel frames of ``codes`` codes at a speaking rate (the s2mel target-length rule)."""
        ...

    def check_options(self, *, language: str | None, duration: float, speed: float = 1.0) -> None:
        """Refuse options this family does not have (:class:`~indextts2.errors.InvalidInput`).

        With both ``speed`` and ``duration`` (IndexTTS-2.5), their combined factor ``duration / speed``
        must stay within 0.5-2, the range each has alone.
        """
        if language is not None and not self.supports_language:
            raise InvalidInput(
                f"{self.name} takes no language (it reads Chinese and English from the text itself); "
                "leave the language out, or load IndexTeam/IndexTTS-2.5 for zh, en, ja, es or ar"
            )
        if duration != 1.0 and not self.supports_duration:
            raise InvalidInput(
                f"{self.name} has no duration factor (an IndexTTS-2.5 control); set speed instead "
                f"(speed = 1 / duration: {1.0 / duration:.3g} for duration {duration:g})"
            )
        if not 0.5 <= duration / speed <= 2.0:
            raise InvalidInput(
                f"speed {speed:g} and duration {duration:g} together make the speech {duration / speed:.3g} "
                "times as long; keep duration / speed between 0.5 and 2"
            )


class _IndexTTS2(ModelFamily):
    def speaker_conditioning(self, model: TTSModel, voice: VoiceConditioning) -> torch.Tensor:
        # Lengths are left to the official rule (quirk Q3), so that results match the official code.
        features = voice.speaker_features.to(model.device, model.gpt_dtype)
        return model.gpt.speaker_conditioning(features)

    def content(
        self, model: TTSModel, segments: Sequence[Segment], codes: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        device = model.device
        latents = model.gpt.latents(
            torch.cat([s.speaker_latents for s in segments]),
            torch.cat([s.emotion for s in segments]),
            [s.text_ids.to(device) for s in segments],
            [c.to(device) for c in codes],
        )
        return [x.float() for x in latents]

    def regulator_input(
        self, model: TTSModel, pieces: Sequence[MelPiece]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = model.device
        codes = [p.codes.to(device) for p in pieces]
        lengths = torch.tensor([c.numel() for c in codes], device=device)
        padded_codes = nn.utils.rnn.pad_sequence(codes, batch_first=True)  # (B, N), 0-padded
        latent = nn.utils.rnn.pad_sequence([p.content.float() for p in pieces], batch_first=True)
        codec = model.voice_encoder.codec
        if codec is None:  # pragma: no cover - an IndexTTS-2 model always has one
            raise InvalidInput("an IndexTTS-2 model needs its semantic codec")
        return model.s2mel.content_features(latent, codec.vq2emb(padded_codes)), lengths

    def mel_frames(self, codes: int, *, speed: float = 1.0, duration: float = 1.0) -> int:
        if codes <= 0:
            return 0
        rate = None if speed == 1.0 else torch.tensor([speed])
        return int(mel_frames_for_codes(torch.tensor([codes]), rate)[0])


class _IndexTTS25(ModelFamily):
    def speaker_conditioning(self, model: TTSModel, voice: VoiceConditioning) -> torch.Tensor:
        style = voice.speaker_style.to(model.device, model.gpt_dtype)
        return model.gpt.style_conditioning(style)

    def content(
        self, model: TTSModel, segments: Sequence[Segment], codes: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        codec = model.codec
        if codec is None:  # pragma: no cover - an IndexTTS-2.5 model always has one
            raise InvalidInput("an IndexTTS-2.5 model needs its codec decoder")
        device = model.device
        rows = [c.to(device) for c in codes]
        lengths = torch.tensor([r.numel() for r in rows], device=device)
        decoded = codec.decode(nn.utils.rnn.pad_sequence(rows, batch_first=True), lengths)
        per_code = self.content_frames_per_code
        return [decoded[i, : per_code * int(n)] for i, n in enumerate(lengths.tolist())]

    def regulator_input(
        self, model: TTSModel, pieces: Sequence[MelPiece]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = model.device
        rows = [p.content.to(device).float() for p in pieces]
        lengths = torch.tensor([r.shape[0] for r in rows], device=device)
        return nn.utils.rnn.pad_sequence(rows, batch_first=True), lengths

    def mel_frames(self, codes: int, *, speed: float = 1.0, duration: float = 1.0) -> int:
        if codes <= 0:
            return 0
        # The official factor is duration_factor; our speed divides it (speed = 1 / duration).
        factor = duration if speed == 1.0 else duration / speed
        return mel_frames_for_content(codes * self.content_frames_per_code, factor)


INDEXTTS_2: ModelFamily = _IndexTTS2(
    name="IndexTTS-2",
    model_id="IndexTeam/IndexTTS-2",
    content_frames_per_code=1,
    speaker_mode="conformer",
    languages=(),
    supports_duration=False,
    s2mel_gpt_layer=True,
    semantic_codec=True,
)

INDEXTTS_2_5: ModelFamily = _IndexTTS25(
    name="IndexTTS-2.5",
    model_id="IndexTeam/IndexTTS-2.5",
    content_frames_per_code=2,
    speaker_mode="campplus",
    languages=("zh", "en", "ja", "es", "ar"),
    supports_duration=True,
    s2mel_gpt_layer=False,
    semantic_codec=False,
)

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (INDEXTTS_2_5, INDEXTTS_2)}


def family_named(name: str) -> ModelFamily:
    """The family of that name (``ModelFiles.family``, ``ModelSpec.family``)."""
    family = FAMILIES.get(name)
    if family is None:
        raise InvalidInput(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return family


def family_of_preset(preset: str) -> ModelFamily:
    """The family of a dummy preset: ``tiny`` / ``full`` are IndexTTS-2, ``*-2.5`` IndexTTS-2.5."""
    return INDEXTTS_2_5 if preset.endswith("-2.5") else INDEXTTS_2
