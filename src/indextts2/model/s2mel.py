"""s2mel: GPT latents and semantic codes to a mel spectrogram (the official ``MyModel`` bundle).

Order of operations (infer_v2.py): ``gpt_layer(latent) + vq2emb(codes)`` gives one content vector per
code; the length regulator stretches them to ``int(n_codes * 1.72)`` frames; the voice's prompt
condition is put in front; flow matching generates a mel over prompt + target frames, with the
voice's mel in the prompt frames; the prompt frames are cut off. The result is BigVGAN's input.

IndexTTS-2.5 has no ``gpt_layer`` (``S2Mel(gpt_dim=None)``): its content features come from the
codec decoder (two 50 Hz frames per 25 Hz code, :class:`~indextts2.model.codec.CodecDecoder`) and go
to the length regulator as they are (:meth:`S2Mel.begin_content`), with
``int(frames * 1.72 * duration_factor)`` target frames in float64 (:func:`mel_frames_for_content`).

``s2mel.pth`` is ``{'net': {'cfm', 'length_regulator', 'gpt_layer'}}`` (no ``gpt_layer`` in 2.5).
It is loaded strictly: the only checkpoint entries not loaded are named
(``dit.UNUSED_CHECKPOINT_KEYS``, the U-ViT skip layers of blocks that receive no skip, and the
timestep frequency tables, which are recomputed and checked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from indextts2.errors import CheckpointError, ConfigError, InvalidInput
from indextts2.model.config import ModelConfig
from indextts2.model.dit import UNUSED_CHECKPOINT_KEYS, DiT, DiTConfig, timestep_frequencies
from indextts2.model.dummy import seeded
from indextts2.model.flow import FlowMatching, FlowOptions, FlowSolve
from indextts2.model.length_regulator import LengthRegulator
from indextts2.model.loading import load_into, read_s2mel_checkpoint
from indextts2.model.precision import resolve_precision
from indextts2.model.wavenet import WaveNet
from indextts2.model.weight_norm import fold_weight_norm

__all__ = [
    "CODES_TO_MEL_FRAMES",
    "S2Mel",
    "S2MelOutput",
    "S2MelSolve",
    "concat_ragged",
    "cut_prompt",
    "mel_frames_for_codes",
    "mel_frames_for_content",
]

CODES_TO_MEL_FRAMES = 1.72  # infer_v2.py: target_lengths = (code_lens * 1.72).long()
GPT_LAYER_WIDTHS = (256, 128)  # the official gpt_layer: Linear(gpt_dim, 256), (256, 128), (128, semantic)
_FREQUENCY_KEYS = ("estimator.t_embedder.freqs", "estimator.t_embedder2.freqs")


def mel_frames_for_codes(code_lengths: torch.Tensor, speed: torch.Tensor | None = None) -> torch.Tensor:
    """Mel frames generated for ``n`` codes: ``int(n * 1.72)`` computed in float32, as torch does it.

    ``speed`` (per row, default 1) stretches the regulated content: ``int(n * 1.72 / speed)`` frames,
    at least one. Faster speech keeps its pitch, since only the number of frames changes; this is
    our addition (the official pipeline always uses speed 1).
    """
    frames = code_lengths.to(torch.float32) * CODES_TO_MEL_FRAMES
    if speed is None:
        return frames.to(torch.int64)
    return (frames / speed.to(device=frames.device, dtype=torch.float32)).to(torch.int64).clamp(min=1)


def mel_frames_for_content(frames: int, duration: float = 1.0) -> int:
    """IndexTTS-2.5's target: ``int(frames * 1.72 * duration)`` for ``frames`` content frames.

    Evaluated in Python float64, left to right (``(frames * 1.72) * duration``), then truncated, as
    the official infer does (quirk Q8): exact or float32 arithmetic gives another integer for some
    inputs (230 frames at 1.25: 988 here, 989 exactly). At least one frame.
    """
    return max(1, int(float(frames) * CODES_TO_MEL_FRAMES * float(duration)))


def _lengths_mask(lengths: torch.Tensor, time: int) -> torch.Tensor:
    return torch.arange(time, device=lengths.device)[None, :] < lengths[:, None]


def concat_ragged(
    first: torch.Tensor, first_lengths: torch.Tensor, second: torch.Tensor, second_lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence, the valid frames of ``first`` then those of ``second``, zero-padded.

    Args:
        first: ``(B, T1, C)``; second: ``(B, T2, C)``; lengths ``(B,)`` each.

    Returns:
        ``(B, max(l1 + l2), C)`` and the ``(B,)`` total lengths.
    """
    lengths = first_lengths + second_lengths
    time = int(lengths.max())
    position = torch.arange(time, device=first.device)[None, :]  # (1, T)
    in_first = position < first_lengths[:, None]
    index_first = position.clamp(max=first.shape[1] - 1).expand(first.shape[0], -1)
    index_second = (position - first_lengths[:, None]).clamp(min=0, max=second.shape[1] - 1)
    width = first.shape[2]
    from_first = torch.gather(first, 1, index_first[:, :, None].expand(-1, -1, width))
    from_second = torch.gather(second, 1, index_second[:, :, None].expand(-1, -1, width))
    out = torch.where(in_first[:, :, None], from_first, from_second)
    return out * _lengths_mask(lengths, time)[:, :, None].to(out.dtype), lengths


def cut_prompt(
    mel: torch.Tensor, prompt_lengths: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames ``[prompt_lengths[b], lengths[b])`` of each ``(B, C, T)`` sequence, left-aligned, 0-padded."""
    kept = lengths - prompt_lengths
    time = int(kept.max())
    index = (torch.arange(time, device=mel.device)[None, :] + prompt_lengths[:, None]).clamp(
        max=mel.shape[2] - 1
    )
    out = torch.gather(mel, 2, index[:, None, :].expand(-1, mel.shape[1], -1))
    return out * _lengths_mask(kept, time)[:, None, :].to(out.dtype), kept


@dataclass(frozen=True)
class S2MelOutput:
    """Generated mel spectrograms.

    Attributes:
        mel: ``(B, mel_bins, T)`` float32 log-mel, zero past each sequence's length.
        lengths: ``(B,)`` int64 frames per sequence (``int(n_codes * 1.72)``).
    """

    mel: torch.Tensor
    lengths: torch.Tensor


def _default_lengths(
    lengths: torch.Tensor | None, batch: int, time: int, device: torch.device
) -> torch.Tensor:
    if lengths is None:
        return torch.full((batch,), time, dtype=torch.int64, device=device)
    return torch.as_tensor(lengths, device=device).to(torch.int64)


class S2Mel(nn.Module):
    """gpt_layer + length regulator + flow matching, with the official module names.

    ``gpt_dim`` None builds no ``gpt_layer`` (IndexTTS-2.5).
    """

    def __init__(
        self, *, gpt_dim: int | None, semantic_width: int, regulator: LengthRegulator, dit: DiTConfig
    ) -> None:
        super().__init__()
        self.gpt_layer: nn.Sequential | None = None
        if gpt_dim is not None:
            hidden, narrow = GPT_LAYER_WIDTHS
            self.gpt_layer = nn.Sequential(
                nn.Linear(gpt_dim, hidden), nn.Linear(hidden, narrow), nn.Linear(narrow, semantic_width)
            )
        self.length_regulator = regulator
        self.cfm = FlowMatching(DiT(dit))

    @classmethod
    def from_config(cls, config: ModelConfig, *, gpt_layer: bool = True) -> S2Mel:
        """Build with default-initialised weights from a checkpoint's config (``gpt_layer``: IndexTTS-2)."""
        s2mel = config.section("s2mel")
        regulator = LengthRegulator.from_config(config.section("s2mel", "length_regulator"))
        if int(s2mel["length_regulator"]["in_channels"]) != config.semantic_width:
            raise ConfigError(
                "s2mel.length_regulator.in_channels must equal semantic_codec.hidden_size "
                f"({s2mel['length_regulator']['in_channels']} != {config.semantic_width})"
            )
        if int(s2mel["DiT"]["content_dim"]) != int(s2mel["length_regulator"]["channels"]):
            raise ConfigError("s2mel.DiT.content_dim must equal s2mel.length_regulator.channels")
        return cls(
            gpt_dim=config.gpt_dim if gpt_layer else None,
            semantic_width=config.semantic_width,
            regulator=regulator,
            dit=DiTConfig.from_config(s2mel),
        )

    @classmethod
    def dummy(cls, config: ModelConfig, *, gpt_layer: bool = True) -> S2Mel:
        """Seeded random weights (the ``dummy`` load format), in eval mode."""
        with seeded("s2mel"):
            return cls.from_config(config, gpt_layer=gpt_layer).eval()

    @classmethod
    def from_checkpoint(cls, config: ModelConfig, path: str | Path, *, gpt_layer: bool = True) -> S2Mel:
        """Build from ``config`` and load ``s2mel.pth``, in eval mode."""
        model = cls.from_config(config, gpt_layer=gpt_layer)
        model.load_checkpoint(path)
        return model.eval()

    def load_checkpoint(self, path: str | Path) -> None:
        """Load ``s2mel.pth`` strictly (see the module docstring for the named exceptions).

        Raises:
            CheckpointError: unreadable file, missing part, or a key or shape that does not fit.
        """
        parts = read_s2mel_checkpoint(path, gpt_layer=self.gpt_layer is not None)
        if self.gpt_layer is not None:
            load_into(self.gpt_layer, parts["gpt_layer"], source=f"{path} (net.gpt_layer)")
        self.length_regulator.load(parts["length_regulator"], source=path)
        self._load_cfm(parts["cfm"], source=f"{path} (net.cfm)")

    def _load_cfm(self, state_dict: Mapping[str, torch.Tensor], *, source: str) -> None:
        state = fold_weight_norm(state_dict, source=source)
        state = {
            (f"estimator.wavenet.{WaveNet.official_key(k[len('estimator.wavenet.') :])}")
            if k.startswith("estimator.wavenet.")
            else k: v
            for k, v in state.items()
        }
        expected = timestep_frequencies()
        for key in _FREQUENCY_KEYS:
            stored = state.get(key)
            if stored is not None and (
                stored.shape != expected.shape
                or not torch.allclose(stored.float(), expected, rtol=1e-6, atol=0)
            ):
                raise CheckpointError(source, f"key {key} is not the sinusoid table this DiT computes")
        transformer = self.cfm.estimator.transformer
        unused_skips = [
            f"estimator.transformer.layers.{i}.skip_in_linear.*"
            for i in range(len(transformer.layers))
            if i not in transformer.receivers
        ]
        load_into(
            self.cfm,
            state,
            source=source,
            ignore_unexpected=[f"estimator.{k}" for k in UNUSED_CHECKPOINT_KEYS]
            + unused_skips
            + list(_FREQUENCY_KEYS),
        )

    def set_precision(self, precision: str | torch.dtype) -> S2Mel:
        """Run the DiT (nearly all of s2mel's compute) in fp32, bf16 or fp16; the rest stays float32.

        The solver's state and its Euler updates stay float32 whatever the DiT's precision.
        """
        self.cfm.estimator.to(resolve_precision(precision))
        return self

    @property
    def mel_bins(self) -> int:
        return self.cfm.mel_bins

    def content_features(self, latent: torch.Tensor, semantic_embedding: torch.Tensor) -> torch.Tensor:
        """``gpt_layer(latent) + semantic_embedding``: the length regulator's input.

        Args:
            latent: ``(B, N, gpt_dim)`` GPT latent, one vector per code.
            semantic_embedding: ``(B, N, semantic_width)`` the codes' codebook vectors (``vq2emb``,
                transposed to time-major).
        """
        if self.gpt_layer is None:
            raise InvalidInput("this s2mel has no gpt_layer (IndexTTS-2.5): give content features instead")
        if latent.dim() != 3 or semantic_embedding.shape[:2] != latent.shape[:2]:
            raise InvalidInput(
                f"latent {tuple(latent.shape)} and semantic_embedding {tuple(semantic_embedding.shape)} "
                "must both be (batch, codes, width) with the same batch and codes"
            )
        return self.gpt_layer(latent) + semantic_embedding

    def condition(
        self,
        content: torch.Tensor,
        *,
        code_lengths: torch.Tensor,
        prompt_condition: torch.Tensor,
        prompt_lengths: torch.Tensor,
        speed: torch.Tensor | None = None,
        target_lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The flow's condition ``mu``: each voice's prompt condition, then its regulated content.

        ``speed`` ``(B,)`` shortens (> 1) or lengthens (< 1) each row's content; None = 1.
        ``target_lengths`` ``(B,)`` overrides the frames per row (a streamed piece of a segment gets
        the frames its codes cover in the whole segment, see :func:`mel_frames_for_codes`).

        Returns:
            ``mu`` ``(B, T, channels)``, total lengths ``(B,)`` (prompt + target) and target lengths ``(B,)``.
        """
        if bool((code_lengths < 1).any()) or bool((code_lengths > content.shape[1]).any()):
            raise InvalidInput(f"every sequence needs between 1 and {content.shape[1]} codes")
        if target_lengths is None:
            target_lengths = mel_frames_for_codes(code_lengths, speed)
        elif bool((target_lengths < 1).any()):
            raise InvalidInput("every sequence needs at least one mel frame")
        cond = self.length_regulator(content, target_lengths, code_lengths)  # (B, T_target, C)
        mu, lengths = concat_ragged(prompt_condition, prompt_lengths, cond, target_lengths)
        return mu, lengths, target_lengths

    @torch.inference_mode()
    def generate(
        self,
        latent: torch.Tensor,
        semantic_embedding: torch.Tensor,
        *,
        prompt_condition: torch.Tensor,
        prompt_mel: torch.Tensor,
        style: torch.Tensor,
        code_lengths: torch.Tensor | None = None,
        prompt_lengths: torch.Tensor | None = None,
        options: FlowOptions | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        speed: torch.Tensor | None = None,
        target_lengths: torch.Tensor | None = None,
    ) -> S2MelOutput:
        """Generate the mel spectrogram of a batch of utterances.

        Args:
            latent: ``(B, N, gpt_dim)`` GPT latents, padded along codes.
            semantic_embedding: ``(B, N, semantic_width)`` codebook vectors of the codes.
            prompt_condition: ``(B, P, channels)`` the voices' regulated prompt features.
            prompt_mel: ``(B, mel_bins, P)`` the voices' reference mel.
            style: ``(B, style_dim)`` the voices' CAMPPlus style.
            code_lengths: ``(B,)`` codes per utterance (default ``N``).
            prompt_lengths: ``(B,)`` prompt frames per voice (default ``P``).
            options: flow-matching steps and guidance (default 25, 0.7).
            noise: ``(B, mel_bins, max(prompt + target frames))`` initial sample, for reproducibility;
                sequence ``b`` reads its first ``prompt_lengths[b] + int(code_lengths[b] * 1.72)`` frames.
            generator: source of the noise when ``noise`` is omitted.
            speed: ``(B,)`` speaking-rate factors (default 1, the official rate); the target has
                ``int(n_codes * 1.72 / speed)`` frames.
            target_lengths: ``(B,)`` target frames per row, instead of the rule above.

        Returns:
            The generated mel (prompt frames removed) and its lengths.

        Raises:
            InvalidInput: shapes or lengths that do not fit together.
        """
        return self.begin(
            latent,
            semantic_embedding,
            prompt_condition=prompt_condition,
            prompt_mel=prompt_mel,
            style=style,
            code_lengths=code_lengths,
            prompt_lengths=prompt_lengths,
            options=options,
            noise=noise,
            generator=generator,
            speed=speed,
            target_lengths=target_lengths,
        ).run()

    @torch.inference_mode()
    def begin(
        self,
        latent: torch.Tensor,
        semantic_embedding: torch.Tensor,
        *,
        prompt_condition: torch.Tensor,
        prompt_mel: torch.Tensor,
        style: torch.Tensor,
        code_lengths: torch.Tensor | None = None,
        prompt_lengths: torch.Tensor | None = None,
        options: FlowOptions | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        speed: torch.Tensor | None = None,
        target_lengths: torch.Tensor | None = None,
    ) -> S2MelSolve:
        """:meth:`generate` one flow step at a time (see :class:`S2MelSolve`); same arguments."""
        batch, codes = latent.shape[:2]
        code_lengths = _default_lengths(code_lengths, batch, codes, latent.device)
        return self.begin_content(
            self.content_features(latent, semantic_embedding),
            content_lengths=code_lengths,
            prompt_condition=prompt_condition,
            prompt_mel=prompt_mel,
            style=style,
            prompt_lengths=prompt_lengths,
            options=options,
            noise=noise,
            generator=generator,
            speed=speed,
            target_lengths=target_lengths,
        )

    @torch.inference_mode()
    def begin_content(
        self,
        content: torch.Tensor,
        *,
        content_lengths: torch.Tensor,
        prompt_condition: torch.Tensor,
        prompt_mel: torch.Tensor,
        style: torch.Tensor,
        prompt_lengths: torch.Tensor | None = None,
        options: FlowOptions | None = None,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        speed: torch.Tensor | None = None,
        target_lengths: torch.Tensor | None = None,
    ) -> S2MelSolve:
        """:meth:`begin` from the length regulator's input ``(B, T, W)`` (``content_lengths`` frames each).

        IndexTTS-2.5 passes the codec decoder's output with its own ``target_lengths``
        (:func:`mel_frames_for_content`); without them the IndexTTS-2 rule applies.
        """
        batch = content.shape[0]
        device = content.device
        prompt_lengths = _default_lengths(prompt_lengths, batch, prompt_mel.shape[-1], device)
        if prompt_condition.shape[0] != batch or bool((prompt_lengths > prompt_condition.shape[1]).any()):
            raise InvalidInput(
                f"prompt_condition {tuple(prompt_condition.shape)} does not cover the prompt lengths "
                f"{prompt_lengths.tolist()} of a batch of {batch}"
            )
        mu, lengths, _ = self.condition(
            content,
            code_lengths=content_lengths.to(device, torch.int64),
            prompt_condition=prompt_condition,
            prompt_lengths=prompt_lengths,
            speed=speed,
            target_lengths=None if target_lengths is None else target_lengths.to(device, torch.int64),
        )
        flow = self.cfm.begin(
            mu,
            lengths=lengths,
            prompt_mel=prompt_mel,
            prompt_lengths=prompt_lengths,
            style=style,
            options=options,
            noise=noise,
            generator=generator,
        )
        return S2MelSolve(flow=flow, prompt_lengths=prompt_lengths, lengths=lengths)


@dataclass(eq=False)
class S2MelSolve:
    """s2mel in progress: call :meth:`step` (one Euler step of the flow) until :attr:`done`."""

    flow: FlowSolve
    prompt_lengths: torch.Tensor
    lengths: torch.Tensor

    @property
    def done(self) -> bool:
        return self.flow.done

    @property
    def steps_left(self) -> int:
        return self.flow.steps_left

    def step(self) -> None:
        self.flow.step()

    def run(self) -> S2MelOutput:
        """Every remaining step, then :meth:`result`."""
        while not self.done:
            self.step()
        return self.result()

    def result(self) -> S2MelOutput:
        mel, mel_lengths = cut_prompt(self.flow.result(), self.prompt_lengths, self.lengths)
        return S2MelOutput(mel=mel, lengths=mel_lengths)
