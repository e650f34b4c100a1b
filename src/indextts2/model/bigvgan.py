"""BigVGAN v2 generator: 80-band log-mel at 22.05 kHz (hop 256) to a waveform in [-1, 1].

The release vocoder is nvidia/bigvgan_v2_22khz_80band_256x: ``config.json`` plus
``bigvgan_generator.pt`` = ``{'generator': state_dict}`` with weight norm (``weight_g``/``weight_v``),
which we fold into plain weights at load (the official code calls ``remove_weight_norm()``).
Architecture: a 7-tap input convolution, then per upsampling stage a transposed convolution and the
average of one AMP residual block per kernel size (anti-aliased snake-beta activations around
dilated convolutions), a final anti-aliased activation, a 7-tap output convolution and a clamp (or
tanh) to [-1, 1]. Supported: ``resblock: "1"`` with ``activation: snakebeta`` (every v2 release).

Batching: mels of different lengths can share a batch. Every zero-padded convolution sees zeros past
a sequence's end and every replicate-padded resampler sees the sequence's last sample repeated
(``alias_free.hold_last``), so each item's samples are those it gets alone, up to float rounding;
samples past ``frames * hop`` are zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from indextts2.errors import CheckpointError, ConfigError, InvalidInput
from indextts2.model.alias_free import (
    FILTER_TAPS,
    RESAMPLE_RATIO,
    AntiAliasedActivation,
    kaiser_sinc_filter,
)
from indextts2.model.config import ModelConfig
from indextts2.model.dummy import seeded
from indextts2.model.loading import load_into, read_torch_file
from indextts2.model.precision import resolve_precision
from indextts2.model.weight_norm import fold_weight_norm

__all__ = ["PCM_PEAK", "BigVGAN", "BigVGANConfig", "official_pcm"]

PCM_PEAK = 32767  # infer_v2.py: wav = clamp(32767 * wav, -32767, 32767)
PRE_POST_KERNEL = 7  # conv_pre / conv_post: Conv1d(..., 7, 1, padding=3)
INIT_STD = 0.01  # BigVGAN's init_weights: N(0, 0.01) for the upsampling, residual and output convolutions
DUMMY_GAIN = 0.5  # dummy weights: std 0.5 / sqrt(fan_in) keeps the signal alive, unclipped (see dummy())
_FILTER_SUFFIXES = (".upsample.filter", ".downsample.lowpass.filter")


def official_pcm(wave: torch.Tensor) -> torch.Tensor:
    """The official output scaling (quirk Q10): ``clamp(32767 * wave, -32767, 32767)``, still float."""
    return torch.clamp(PCM_PEAK * wave, -float(PCM_PEAK), float(PCM_PEAK))


@dataclass(frozen=True)
class BigVGANConfig:
    """The generator's hyper-parameters (the fields of BigVGAN's ``config.json`` that shape it)."""

    num_mels: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    snake_logscale: bool
    use_tanh_at_final: bool
    use_bias_at_final: bool
    hop_size: int
    sampling_rate: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BigVGANConfig:
        """Read BigVGAN's ``config.json``; refuse variants the IndexTTS2 vocoder does not use."""
        try:
            config = cls(
                num_mels=int(data["num_mels"]),
                upsample_rates=tuple(int(r) for r in data["upsample_rates"]),
                upsample_kernel_sizes=tuple(int(k) for k in data["upsample_kernel_sizes"]),
                upsample_initial_channel=int(data["upsample_initial_channel"]),
                resblock_kernel_sizes=tuple(int(k) for k in data["resblock_kernel_sizes"]),
                resblock_dilation_sizes=tuple(
                    tuple(int(d) for d in ds) for ds in data["resblock_dilation_sizes"]
                ),
                snake_logscale=bool(data.get("snake_logscale", True)),
                # Defaults of the official generator when the key is absent.
                use_tanh_at_final=bool(data.get("use_tanh_at_final", True)),
                use_bias_at_final=bool(data.get("use_bias_at_final", True)),
                hop_size=int(data["hop_size"]),
                sampling_rate=int(data["sampling_rate"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"BigVGAN config.json is missing or has a malformed field: {exc}") from exc
        wrong = []
        if str(data.get("resblock")) != "1":
            wrong.append(f"resblock={data.get('resblock')!r} (needs '1')")
        if data.get("activation") != "snakebeta":
            wrong.append(f"activation={data.get('activation')!r} (needs 'snakebeta')")
        if len(config.upsample_rates) != len(config.upsample_kernel_sizes):
            wrong.append("upsample_rates and upsample_kernel_sizes differ in length")
        if len(config.resblock_kernel_sizes) != len(config.resblock_dilation_sizes):
            wrong.append("resblock_kernel_sizes and resblock_dilation_sizes differ in length")
        if any(
            (k - r) % 2 for r, k in zip(config.upsample_rates, config.upsample_kernel_sizes, strict=False)
        ):
            wrong.append("an upsampling kernel minus its rate is odd (the output would not be rate x input)")
        # Each stage halves the channels with floor division, as the official generator does.
        if config.upsample_initial_channel < 2 ** len(config.upsample_rates):
            wrong.append("upsample_initial_channel < 2 ** stages (a stage would get no channel)")
        hop = 1
        for rate in config.upsample_rates:
            hop *= rate
        if hop != config.hop_size:
            wrong.append(f"the upsampling rates multiply to {hop}, not hop_size {config.hop_size}")
        if wrong:
            raise ConfigError(f"unsupported BigVGAN configuration: {'; '.join(wrong)}")
        return config


def _zero_past(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    if lengths is None:
        return x
    valid = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
    return x * valid[:, None, :].to(x.dtype)


def _same_padding(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


class AMPBlock(nn.Module):
    """BigVGAN's ``AMPBlock1``: per dilation, act -> dilated conv -> act -> conv, plus the input."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int], *, logscale: bool) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size, 1))
            for _ in dilations
        )
        # Official order: activations[2i] precedes convs1[i], activations[2i + 1] precedes convs2[i].
        self.activations = nn.ModuleList(
            AntiAliasedActivation(channels, logscale=logscale) for _ in range(2 * len(dilations))
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        for i, (conv1, conv2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            xt = conv1(_zero_past(self.activations[2 * i](x, lengths), lengths))
            xt = conv2(_zero_past(self.activations[2 * i + 1](xt, lengths), lengths))
            x = xt + x
        return x


class BigVGAN(nn.Module):
    """The BigVGAN v2 generator with the official module names."""

    def __init__(self, config: BigVGANConfig) -> None:
        super().__init__()
        self.config = config
        initial = config.upsample_initial_channel
        pad = PRE_POST_KERNEL // 2
        self.conv_pre = nn.Conv1d(config.num_mels, initial, PRE_POST_KERNEL, padding=pad)
        self.ups = nn.ModuleList(
            nn.ModuleList(
                [nn.ConvTranspose1d(initial // 2**i, initial // 2 ** (i + 1), k, r, padding=(k - r) // 2)]
            )
            for i, (r, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True))
        )
        self.resblocks = nn.ModuleList(
            AMPBlock(initial // 2 ** (i + 1), k, d, logscale=config.snake_logscale)
            for i in range(len(self.ups))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True)
        )
        final = initial // 2 ** len(self.ups)
        self.activation_post = AntiAliasedActivation(final, logscale=config.snake_logscale)
        self.conv_post = nn.Conv1d(final, 1, PRE_POST_KERNEL, padding=pad, bias=config.use_bias_at_final)
        with torch.no_grad():  # the official initialisation (used by the dummy load format)
            for module in self.modules():
                if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)) and module is not self.conv_pre:
                    module.weight.normal_(0.0, INIT_STD)

    @classmethod
    def from_config(cls, config: ModelConfig | Mapping[str, Any]) -> BigVGAN:
        """Build from a ``ModelConfig`` (its ``bigvgan`` part) or BigVGAN's ``config.json`` dict."""
        data = config.bigvgan if isinstance(config, ModelConfig) else config
        return cls(BigVGANConfig.from_dict(data))

    @classmethod
    def dummy(cls, config: ModelConfig | Mapping[str, Any]) -> BigVGAN:
        """Seeded random weights (the ``dummy`` load format), in eval mode.

        Not the official N(0, 0.01) initialisation: through six upsampling stages it shrinks the
        signal so much that the output no longer depends on the mel at all (only the biases are
        left). Weights drawn with a standard deviation of ``DUMMY_GAIN / sqrt(fan_in)`` keep the
        waveform a function of the mel at every size, without clipping.
        """
        with seeded("bigvgan"):
            model = cls.from_config(config)
            with torch.no_grad():
                for module in model.modules():
                    if isinstance(module, nn.ConvTranspose1d):  # weight (in, out, k); stride r
                        fan_in = module.weight.shape[0] * module.weight.shape[2] / module.stride[0]
                        module.weight.normal_(0.0, DUMMY_GAIN / math.sqrt(fan_in))
                    elif isinstance(module, nn.Conv1d):  # weight (out, in, k)
                        fan_in = module.weight.shape[1] * module.weight.shape[2]
                        module.weight.normal_(0.0, DUMMY_GAIN / math.sqrt(fan_in))
        return model.eval()

    @classmethod
    def from_checkpoint(cls, config: ModelConfig | Mapping[str, Any], path: str | Path) -> BigVGAN:
        """Build from the config and load ``bigvgan_generator.pt``, in eval mode."""
        model = cls.from_config(config)
        model.load_checkpoint(path)
        return model.eval()

    def load_checkpoint(self, path: str | Path) -> None:
        """Load ``{'generator': state_dict}`` strictly, folding weight norm.

        The anti-aliasing filters stored in the file are not loaded: they must equal the ones this
        module computes (a different filter would be a different vocoder).

        Raises:
            CheckpointError: unreadable file, missing ``generator``, wrong keys or shapes, other filters.
        """
        data = read_torch_file(path)
        generator = data.get("generator") if isinstance(data, dict) else None
        if not isinstance(generator, dict):
            raise CheckpointError(path, "expected a dict with a 'generator' entry (BigVGAN's layout)")
        reference = kaiser_sinc_filter(0.5 / RESAMPLE_RATIO, 0.6 / RESAMPLE_RATIO, FILTER_TAPS)
        for key, value in generator.items():
            if key.endswith(_FILTER_SUFFIXES) and (
                value.shape != reference.shape
                or not torch.allclose(value.float(), reference, atol=1e-7, rtol=0)
            ):
                raise CheckpointError(path, f"key {key} is not BigVGAN v2's anti-aliasing filter")
        state = fold_weight_norm(generator, source=path)
        load_into(self, state, source=path, ignore_unexpected=[f"*{s}" for s in _FILTER_SUFFIXES])

    def set_precision(self, precision: str | torch.dtype) -> BigVGAN:
        """Run in fp32 (default, as official), bf16 or fp16; the output is float32 either way."""
        self.to(resolve_precision(precision))
        return self

    @property
    def hop_size(self) -> int:
        return self.config.hop_size

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Render mel spectrograms.

        Args:
            mel: ``(B, num_mels, T)`` log-mel, padded along time.
            lengths: ``(B,)`` valid frames per item; None when every item has ``T`` frames.

        Returns:
            ``(B, T * hop_size)`` float32 waveform in [-1, 1]; item ``b`` has ``lengths[b] * hop_size``
            samples, zero after them.
        """
        if mel.dim() != 3 or mel.shape[1] != self.config.num_mels:
            raise InvalidInput(f"mel must be (batch, {self.config.num_mels}, frames), got {tuple(mel.shape)}")
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=mel.device).to(torch.int64)
            if lengths.shape != (mel.shape[0],) or bool((lengths < 1).any() | (lengths > mel.shape[2]).any()):
                raise InvalidInput(f"lengths must be ({mel.shape[0]},) values in [1, {mel.shape[2]}]")
            if bool((lengths == mel.shape[2]).all()):
                lengths = None  # nothing padded: the plain official graph
        dtype = self.conv_pre.weight.dtype
        x = self.conv_pre(_zero_past(mel.to(dtype), lengths))
        kernels = len(self.config.resblock_kernel_sizes)
        for i, stage in enumerate(self.ups):
            x = stage[0](_zero_past(x, lengths))  # type: ignore[index]
            if lengths is not None:
                lengths = lengths * self.config.upsample_rates[i]
            total = self.resblocks[i * kernels](x, lengths)
            for j in range(1, kernels):
                total = total + self.resblocks[i * kernels + j](x, lengths)
            x = total / kernels
        x = self.conv_post(_zero_past(self.activation_post(x, lengths), lengths))
        x = torch.tanh(x) if self.config.use_tanh_at_final else torch.clamp(x, -1.0, 1.0)
        return _zero_past(x, lengths)[:, 0].float()
