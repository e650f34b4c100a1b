"""The whole IndexTTS2 network stack and its stages, batched.

:class:`TTSModel` owns every network (voice encoder, GPT, s2mel, BigVGAN, emotion exemplars, the
IndexTTS-2.5 codec decoder, and the optional text-emotion model) and runs the stages of the official
``infer`` on batches of independent segments. It knows nothing of text, caching or requests: the
Synthesizer and the engine decide what goes into a batch. Where the model families differ it asks
its :class:`~indextts2.model.family.ModelFamily`.

Per segment the stages are (official ``IndexTTS2.infer_generator``):

1. GPT decoding: [speaker conditioning + emotion vector, text (+ language)] -> semantic codes
   (~50 Hz for IndexTTS-2, ~25 Hz for IndexTTS-2.5);
2. content: the GPT latents of the codes (IndexTTS-2's latent pass) or the codec decoder's
   features (IndexTTS-2.5, two frames per code);
3. s2mel: content (``gpt_layer(latent) + vq2emb(codes)`` in IndexTTS-2) -> length regulator -> flow
   matching after the voice's prompt -> mel (~86 Hz);
4. BigVGAN: mel -> 22.05 kHz waveform.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from indextts2.errors import InvalidInput, ModelFilesMissing
from indextts2.model.bigvgan import BigVGAN
from indextts2.model.codec import CodecDecoder
from indextts2.model.config import ModelConfig, load_preset
from indextts2.model.decoding import GeneratedCodes, generate_codes
from indextts2.model.dummy import perturb_constant_parameters, seeded
from indextts2.model.emotion import EmotionExemplars, emotion_vector
from indextts2.model.family import ModelFamily, family_named, family_of_preset
from indextts2.model.flow import FlowOptions
from indextts2.model.gpt import UnifiedVoice, build_dummy_gpt
from indextts2.model.s2mel import CODES_TO_MEL_FRAMES, S2Mel, S2MelOutput, S2MelSolve
from indextts2.model.voice import VoiceCheckpointFiles, VoiceEncoder
from indextts2.model.voice_types import EmotionConditioning, VoiceConditioning
from indextts2.options import Emotion, GenerationOptions

if TYPE_CHECKING:
    from indextts2.model.qwen_emotion import QwenEmotion
    from indextts2.store import ModelFiles

__all__ = ["MelPiece", "NoiseSource", "NoiseStream", "Segment", "SegmentResult", "TTSModel"]

logger = logging.getLogger(__name__)

# Called with (segment, shape) to give the flow's initial noise; None draws it from the segment's
# generator. Tests use it to replay the noise the official solver drew.
NoiseSource = Callable[["Segment", tuple[int, ...]], torch.Tensor]


@dataclass(frozen=True, eq=False)
class Segment:
    """One text segment of one request, ready for the GPT.

    Attributes:
        text_ids: ``(L,)`` int64 token ids of the segment.
        voice: the speaker's conditioning (a batch of one).
        speaker_latents: ``(1, R, D)`` the GPT's speaker rows (:meth:`TTSModel.speaker_latents`: 32
            perceiver latents in IndexTTS-2, the projected style in IndexTTS-2.5).
        emotion: ``(1, D)`` the request's emotion vector.
        generation: sampling settings of the request.
        flow: flow-matching settings of the request.
        generator: the segment's random generator for GPT sampling.
        index: the segment's position in its request (for the noise source and logs).
        speed: speaking-rate factor (1 = the model's own; see :meth:`ModelFamily.mel_frames`).
        noise_generator: the source of the flow's noise (:class:`NoiseStream`); None: ``generator``
            after decoding. A generator of its own keeps the audio independent of how many random
            draws decoding made (a batching engine may draw differently for finished rows).
        language: the ``lang_embedding`` row of the segment's language (IndexTTS-2.5), else None.
        duration: IndexTTS-2.5's duration factor (the length regulator's target scale).
    """

    text_ids: torch.Tensor
    voice: VoiceConditioning
    speaker_latents: torch.Tensor
    emotion: torch.Tensor
    generation: GenerationOptions
    flow: FlowOptions
    generator: torch.Generator
    index: int = 0
    speed: float = 1.0
    noise_generator: torch.Generator | None = None
    language: int | None = None
    duration: float = 1.0


NOISE_BLOCK_FRAMES = 64  # the flow noise is drawn in blocks of this many frames (see NoiseStream)


class NoiseStream:
    """A segment's flow noise, drawn frame-major in fixed blocks as frames are asked for.

    Frames ``[a, b)`` are the same whether a segment is rendered whole or piece by piece (streamed),
    since the draws never depend on the sizes asked for. The prompt frames need no noise: the
    solver zeroes them.
    """

    def __init__(self, generator: torch.Generator, bins: int) -> None:
        self._generator = generator
        self._bins = bins
        self._blocks: list[torch.Tensor] = []

    def frames(self, start: int, stop: int) -> torch.Tensor:
        """``(bins, stop - start)`` float32 noise of frames ``[start, stop)``."""
        while len(self._blocks) * NOISE_BLOCK_FRAMES < stop:
            generator = self._generator
            draw = torch.randn((NOISE_BLOCK_FRAMES, self._bins), generator=generator, device=generator.device)
            self._blocks.append(draw)
        first, last = start // NOISE_BLOCK_FRAMES, -(-stop // NOISE_BLOCK_FRAMES)
        joined = torch.cat(self._blocks[first:last])  # (frames, bins)
        offset = first * NOISE_BLOCK_FRAMES
        return joined[start - offset : stop - offset].T


@dataclass(frozen=True, eq=False)
class MelPiece:
    """Codes of one segment to be turned into mel, and where they sit in the segment.

    A whole segment is ``MelPiece(segment, codes, content)``; a streamed piece covers codes
    ``[start, start + n)`` and the mel frames ``[first_frame, first_frame + frames)`` of the segment.

    Attributes:
        segment: the segment it belongs to.
        codes: ``(n,)`` int64 codes on the model's device.
        content: their content rows (:meth:`TTSModel.content_pass`): ``(n, D)`` GPT latents, or
            ``(2n, W)`` codec features (IndexTTS-2.5).
        first_frame: the segment's mel frame the piece starts at.
        frames: target mel frames (None: the family's rule, :meth:`TTSModel.mel_frames`).
    """

    segment: Segment
    codes: torch.Tensor
    content: torch.Tensor
    first_frame: int = 0
    frames: int | None = None


@dataclass(frozen=True, eq=False)
class SegmentResult:
    """The rendered audio of one segment.

    Attributes:
        wave: ``(samples,)`` float32 in [-1, 1] at the output rate, on the CPU.
        codes: the semantic codes it was made from.
        stopped: whether the GPT ended with its stop code (False: it hit ``max_codes``).
    """

    wave: torch.Tensor
    codes: torch.Tensor
    stopped: bool


class TTSModel(nn.Module):
    """Every network of one IndexTTS2 model (either family), on one device.

    Build with :meth:`from_files` (a checkpoint directory, via the model store) or :meth:`dummy`
    (seeded random weights from a preset config). The GPT may run in a reduced precision
    (``gpt_dtype``); everything else runs in float32, as the official pipeline does.
    """

    def __init__(
        self,
        *,
        family: ModelFamily,
        config: ModelConfig,
        voice_encoder: VoiceEncoder,
        gpt: UnifiedVoice,
        s2mel: S2Mel,
        vocoder: BigVGAN,
        exemplars: EmotionExemplars,
        codec: CodecDecoder | None = None,
        qwen_emotion_dir: Path | None = None,
        dummy_emotion_model: bool = False,
        random_weights: bool = False,
    ) -> None:
        super().__init__()
        if (codec is None) == (family.content_frames_per_code > 1):
            raise InvalidInput(f"{family.name} {'needs a' if codec is None else 'has no'} codec decoder")
        self.family = family
        self.config = config
        self.codec = codec
        self.voice_encoder = voice_encoder
        self.gpt = gpt
        self.s2mel = s2mel
        self.vocoder = vocoder
        self.exemplars = exemplars
        self._qwen_emotion_dir = qwen_emotion_dir
        self._dummy_emotion_model = dummy_emotion_model
        self._emotion_model: QwenEmotion | None = None
        self.random_weights = random_weights
        # The voice encoder and s2mel both hold s2mel.pth's length regulator; share one instance so
        # that a dummy build cannot give them different weights.
        self.voice_encoder.length_regulator = self.s2mel.length_regulator

    # ------------------------------------------------------------------------------ construction

    @classmethod
    def from_files(cls, files: ModelFiles) -> TTSModel:
        """Load a model in the official checkpoints layout (see :func:`indextts2.store.resolve_model`).

        Every file is loaded strictly: a missing, unexpected or mis-shaped tensor is a
        :class:`~indextts2.errors.CheckpointError` naming the file and the key.
        """
        family = family_named(files.family)
        config = files.load_config()
        codec = None
        if files.codec is not None:
            codec = CodecDecoder.from_config(config.section("semantic_codec"))
            codec.load(files.codec)
        return cls(
            family=family,
            config=config,
            voice_encoder=VoiceEncoder.from_checkpoint(
                files.root, config=config, files=VoiceCheckpointFiles.of(files)
            ),
            gpt=UnifiedVoice.from_checkpoint(files.gpt, config, speaker_mode=family.speaker_mode),
            s2mel=S2Mel.from_checkpoint(config, files.s2mel, gpt_layer=family.s2mel_gpt_layer),
            vocoder=BigVGAN.from_checkpoint(config, files.bigvgan_weights),
            exemplars=EmotionExemplars.from_files(config, files.root),
            codec=codec,
            qwen_emotion_dir=files.qwen_emotion,
        ).eval()

    @classmethod
    def dummy(cls, preset: str) -> TTSModel:
        """Seeded random weights at the sizes of ``preset`` (``tiny``, ``full``, ``tiny-2.5``,
        ``full-2.5``); no file is read."""
        family = family_of_preset(preset)
        config = load_preset(preset)
        with seeded("emotion_exemplars"):
            exemplars = EmotionExemplars.random(config)
        codec = None
        if family.content_frames_per_code > 1:
            with seeded("codec"):
                codec = CodecDecoder.from_config(config.section("semantic_codec"))
        model = cls(
            family=family,
            config=config,
            voice_encoder=VoiceEncoder.dummy(config, codec=family.semantic_codec),
            gpt=build_dummy_gpt(config, speaker_mode=family.speaker_mode),
            s2mel=S2Mel.dummy(config, gpt_layer=family.s2mel_gpt_layer),
            vocoder=BigVGAN.dummy(config),
            exemplars=exemplars,
            codec=codec,
            dummy_emotion_model=True,
            random_weights=True,
        )
        # Zero-initialised layers (the DiT's) would make some inputs irrelevant: every input matters.
        with seeded("perturbation"):
            perturb_constant_parameters(model)
        return model.eval()

    def set_gpt_dtype(self, dtype: torch.dtype) -> TTSModel:
        """Run the GPT (conditioning, decoding, latents) in ``dtype``; its outputs come back float32."""
        self.gpt.to(dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.gpt.parameters()).device

    @property
    def gpt_dtype(self) -> torch.dtype:
        return next(self.gpt.parameters()).dtype

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def stop_code(self) -> int:
        return self.gpt.config.stop_mel_token

    @property
    def prompt_overhead(self) -> int:
        """Decoding positions a prompt takes besides its text: the conditioning rows, the start and
        stop text tokens and the start code (37 for IndexTTS-2, 6 for IndexTTS-2.5)."""
        return self.gpt.config.conditioning_rows + 3

    @property
    def codes_per_second(self) -> float:
        """Semantic codes per second of audio at speed 1, by the s2mel rule: ~50 for IndexTTS-2, ~25 for
        IndexTTS-2.5 (each code gives two content frames)."""
        frames_per_code = CODES_TO_MEL_FRAMES * self.family.content_frames_per_code
        return self.sample_rate / self.vocoder.hop_size / frames_per_code

    # ------------------------------------------------------------------------------ conditioning

    @torch.inference_mode()
    def speaker_latents(self, voice: VoiceConditioning) -> torch.Tensor:
        """The GPT's speaker rows of one voice, ``(1, R, D)`` in the GPT's dtype (the family's rule:
        32 perceiver latents of the w2v-BERT features, or the projected CAMPPlus style)."""
        return self.family.speaker_conditioning(self, voice)

    @torch.inference_mode()
    def emotion_vector(
        self,
        emotion: Emotion,
        *,
        voice: VoiceConditioning,
        emotion_clip: EmotionConditioning | None,
        generator: torch.Generator,
        text_weights: Sequence[float] | None = None,
    ) -> torch.Tensor:
        """The emotion vector ``(1, D)`` of a request (official ``merge_emovec`` and exemplar blend).

        Args:
            emotion: the request's emotion.
            voice: the speaker's conditioning (a batch of one).
            emotion_clip: the emotion clip's features in audio mode, else None (the speaker clip's own
                emotion features are used, as the official infer does).
            generator: the request's generator (random exemplar choice).
            text_weights: a text emotion's classified weights (:meth:`classify_emotions`).
        """
        source = emotion_clip if emotion.mode == "audio" and emotion_clip is not None else voice.emotion()
        dtype = self.gpt_dtype
        result = emotion_vector(
            self.gpt,
            emotion,
            speaker_features=voice.speaker_features.to(self.device, dtype),
            emotion_features=source.features.to(self.device, dtype),
            style=voice.speaker_style.to(self.device),
            exemplars=self.exemplars,
            generator=generator,
            text_weights=text_weights,
        )
        return result.vector.to(dtype)

    def classify_emotions(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        """Eight emotion weights per text, from the Qwen3 text-emotion model (loaded on first use)."""
        from indextts2.model.qwen_emotion import QwenEmotion

        if self._emotion_model is None:
            if self._dummy_emotion_model:
                self._emotion_model = QwenEmotion.dummy()
            elif self._qwen_emotion_dir is None:
                raise ModelFilesMissing(
                    self.config.name,
                    ["qwen0.6bemo4-merge/"],
                    "emotion from text needs the Qwen emotion model; download the full model "
                    "(indextts2 models download) or give the emotion as a vector or a clip",
                )
            else:
                self._emotion_model = QwenEmotion.from_pretrained(self._qwen_emotion_dir, device=self.device)
        return [tuple(QwenEmotion.as_vector(s)) for s in self._emotion_model.classify(list(texts))]

    # ------------------------------------------------------------------------------ segments

    def prompts(self, segments: Sequence[Segment]) -> list[torch.Tensor]:
        """The GPT's decoding prefix of each segment (:meth:`UnifiedVoice.prompt_embeddings`)."""
        languages = [s.language for s in segments]
        given = [language for language in languages if language is not None]
        if given and len(given) != len(languages):
            raise InvalidInput("segments decoded together must all have a language id, or none")
        return self.gpt.prompt_embeddings(
            torch.cat([s.speaker_latents for s in segments]),
            torch.cat([s.emotion for s in segments]),
            [s.text_ids.to(self.device) for s in segments],
            given or None,
        )

    @torch.inference_mode()
    def decode(
        self, segments: Sequence[Segment], *, min_codes: Sequence[int] | None = None
    ) -> list[GeneratedCodes]:
        """GPT decoding of a batch of segments (one prompt each; ``num_beams`` must agree).

        ``min_codes`` (per segment) refuses the stop code until that many codes exist
        (:func:`~indextts2.model.decoding.generate_codes`).
        """
        prompts = self.prompts(segments)
        return generate_codes(
            self.gpt,
            prompts,
            options=[s.generation for s in segments],
            generators=[s.generator for s in segments],
            min_codes=min_codes,
        )

    @torch.inference_mode()
    def render(
        self,
        segments: Sequence[Segment],
        codes: Sequence[GeneratedCodes],
        *,
        noise_source: NoiseSource | None = None,
    ) -> list[SegmentResult]:
        """Content (latent pass or codec), s2mel and BigVGAN for segments whose codes are known (batched).

        Segments with no code at all (the GPT stopped at once) give an empty waveform.
        """
        results: list[SegmentResult | None] = [None] * len(segments)
        active = [i for i, c in enumerate(codes) if c.codes.numel() > 0]
        for i, generated in enumerate(codes):
            if generated.codes.numel() == 0:
                logger.warning("segment %d produced no speech codes; it is left silent", segments[i].index)
                results[i] = SegmentResult(torch.zeros(0), generated.codes.cpu(), generated.stopped)
        if active:
            chosen = [segments[i] for i in active]
            code_list = [codes[i].codes.to(self.device) for i in active]
            content = self.content_pass(chosen, code_list)
            pieces = [MelPiece(s, c, x) for s, c, x in zip(chosen, code_list, content, strict=True)]
            streams = [NoiseStream(self.noise_generator(s), self.s2mel.mel_bins) for s in chosen]
            waves = self.vocode(
                self.begin_mel(pieces, noise=self.flow_noise(pieces, streams, noise_source)).run()
            )
            for i, wave in zip(active, waves, strict=True):
                results[i] = SegmentResult(wave, codes[i].codes.cpu(), codes[i].stopped)
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------------------ render stages

    @staticmethod
    def noise_generator(segment: Segment) -> torch.Generator:
        """The generator a segment's flow noise comes from."""
        return segment.generator if segment.noise_generator is None else segment.noise_generator

    @torch.inference_mode()
    def content_pass(
        self,
        segments: Sequence[Segment],
        codes: Sequence[torch.Tensor],
        starts: Sequence[int] | None = None,
    ) -> list[torch.Tensor]:
        """Each segment's content rows (float32) for s2mel, from the code ``starts[i]`` on, in one batch.

        IndexTTS-2: the GPT latents of the codes (one row per code; the pass is causal, so the rows
        of the first k codes do not depend on later ones). IndexTTS-2.5: the codec decoder's
        features (two rows per code; each row sees a few codes on either side, so a streamed piece
        decoded without its right context differs near its end).
        """
        content = self.family.content(self, segments, codes)
        if starts is None:
            return content
        per_code = self.family.content_frames_per_code
        return [rows[per_code * start :] for rows, start in zip(content, starts, strict=True)]

    def mel_frames(self, segment: Segment, codes: int) -> int:
        """Mel frames of a segment's first ``codes`` codes (the family's rule at the segment's rate)."""
        return self.family.mel_frames(codes, speed=segment.speed, duration=segment.duration)

    def flow_noise(
        self,
        pieces: Sequence[MelPiece],
        streams: Sequence[NoiseStream],
        noise_source: NoiseSource | Sequence[NoiseSource | None] | None = None,
    ) -> torch.Tensor:
        """The flow's initial noise ``(B, mel_bins, longest)`` for :meth:`begin_mel`, zero-padded.

        Each row: zeros over its voice's prompt frames (the solver zeroes them anyway), then its
        stream's frames. ``noise_source`` (a test hook; one for all rows or one per row) replaces
        the draws of whole segments.
        """
        sources = list(noise_source) if isinstance(noise_source, Sequence) else [noise_source] * len(pieces)
        bins = self.s2mel.mel_bins
        totals = []
        for piece in pieces:
            frames = (
                piece.frames if piece.frames is not None else self.mel_frames(piece.segment, len(piece.codes))
            )
            totals.append((int(piece.segment.voice.mel_lengths[0]), frames))
        noise = torch.zeros(len(pieces), bins, max(p + f for p, f in totals), device=self.device)
        rows = zip(pieces, streams, sources, totals, strict=True)
        for row, (piece, stream, source, (prompt, frames)) in enumerate(rows):
            if source is not None:
                draw = source(piece.segment, (1, bins, prompt + frames))[0]
                noise[row, :, : prompt + frames] = draw.to(self.device)
            else:
                start = piece.first_frame
                noise[row, :, prompt : prompt + frames] = stream.frames(start, start + frames).to(self.device)
        return noise

    @torch.inference_mode()
    def begin_mel(self, pieces: Sequence[MelPiece], *, noise: torch.Tensor) -> S2MelSolve:
        """Start s2mel for a batch of pieces (one flow setting); step the result until done.

        Raises:
            InvalidInput: the pieces ask for different diffusion steps or guidance.
        """
        segments = [p.segment for p in pieces]
        flows = {s.flow for s in segments}
        if len(flows) > 1:
            raise InvalidInput("segments rendered together must use the same diffusion steps and cfg_rate")
        device = self.device
        content, content_lengths = self.family.regulator_input(self, pieces)
        voices = VoiceConditioning.stack([s.voice.to(device) for s in segments])
        target_lengths = torch.tensor(
            [p.frames if p.frames is not None else self.mel_frames(p.segment, len(p.codes)) for p in pieces],
            device=device,
        )
        return self.s2mel.begin_content(
            content,
            content_lengths=content_lengths,
            prompt_condition=voices.prompt_condition,
            prompt_mel=voices.prompt_mel,
            style=voices.speaker_style,
            prompt_lengths=voices.mel_lengths,
            options=segments[0].flow,
            noise=noise,
            target_lengths=target_lengths,
        )

    @torch.inference_mode()
    def vocode(self, mel: S2MelOutput) -> list[torch.Tensor]:
        """BigVGAN on a batch of mels: one float32 waveform per row, on the CPU."""
        wave = self.vocoder(mel.mel, mel.lengths)  # (B, samples)
        samples = (mel.lengths * self.vocoder.hop_size).tolist()
        return [wave[row, : int(n)].cpu() for row, n in enumerate(samples)]
