"""BigVGAN's anti-aliased periodic activation: upsample x2, snake-beta, low-pass and downsample x2.

Facts from the BigVGAN v2 torch implementation (``alias_free_activation/torch``): both resamplers use
one 12-tap Kaiser-windowed sinc low-pass filter (cutoff 0.25, half-width 0.3 of the sample rate after
upsampling), replicate padding at the edges, and the upsampler multiplies by the ratio. Snake-beta is
``x + sin(alpha x)^2 / (beta + 1e-9)`` with ``alpha``, ``beta`` stored as logarithms in v2.

Batching: the replicate padding reads each sequence's last sample, so in a padded batch the samples
past a sequence's end are overwritten with its last valid one before each resampler
(``hold_last``); the valid samples are then exactly those of the sequence alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AntiAliasedActivation", "SnakeBeta", "hold_last", "kaiser_sinc_filter"]

RESAMPLE_RATIO = 2  # Activation1d(up_ratio=2, down_ratio=2)
FILTER_TAPS = 12  # Activation1d(up_kernel_size=12, down_kernel_size=12)
SNAKE_EPS = 1e-9  # SnakeBeta.no_div_by_zero


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> torch.Tensor:
    """Kaiser-windowed sinc low-pass filter normalised to unit DC gain, ``(1, 1, kernel_size)`` float32.

    ``cutoff`` and ``half_width`` are fractions of the sample rate; the Kaiser ``beta`` follows the
    standard attenuation formula for a transition band of ``4 * half_width``.
    """
    half = kernel_size // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(kernel_size, beta=beta, periodic=False)
    if kernel_size % 2 == 0:
        time = torch.arange(-half, half) + 0.5
    else:
        time = (torch.arange(kernel_size) - half).to(torch.float32)
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (taps / taps.sum()).view(1, 1, kernel_size)


def hold_last(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, C, T)`` with every sample at or past ``lengths[b]`` replaced by sample ``lengths[b] - 1``."""
    time = x.shape[2]
    index = torch.arange(time, device=x.device)[None, :].clamp(max=(lengths - 1)[:, None])  # (B, T)
    return torch.gather(x, 2, index[:, None, :].expand(-1, x.shape[1], -1))


class SnakeBeta(nn.Module):
    """``x + sin(alpha x)^2 / beta`` per channel; ``alpha``, ``beta`` stored as logs when ``logscale``."""

    def __init__(self, channels: int, *, logscale: bool) -> None:
        super().__init__()
        self.logscale = logscale
        initial = torch.zeros(channels) if logscale else torch.ones(channels)
        self.alpha = nn.Parameter(initial.clone())
        self.beta = nn.Parameter(initial.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha, beta = self.alpha[None, :, None], self.beta[None, :, None]
        if self.logscale:
            alpha, beta = torch.exp(alpha), torch.exp(beta)
        return x + (1.0 / (beta + SNAKE_EPS)) * torch.sin(x * alpha).pow(2)


class AntiAliasedActivation(nn.Module):
    """Snake-beta evaluated at twice the sample rate (BigVGAN's ``Activation1d``)."""

    def __init__(self, channels: int, *, logscale: bool) -> None:
        super().__init__()
        self.act = SnakeBeta(channels, logscale=logscale)
        ratio = RESAMPLE_RATIO
        # Not in the state dict: a fixed function of the constants above (see BigVGAN.load_checkpoint).
        self.register_buffer(
            "filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, FILTER_TAPS), persistent=False
        )
        self.up_pad = FILTER_TAPS // ratio - 1
        self.up_crop_left = self.up_pad * ratio + (FILTER_TAPS - ratio) // 2
        self.up_crop_right = self.up_pad * ratio + (FILTER_TAPS - ratio + 1) // 2
        self.down_pad_left = FILTER_TAPS // 2 - 1
        self.down_pad_right = FILTER_TAPS // 2

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, C, T) -> (B, C, T)``; with ``lengths``, padded samples do not reach valid ones."""
        channels = x.shape[1]
        ratio = RESAMPLE_RATIO
        taps: torch.Tensor = self.filter  # type: ignore[assignment]
        weight = taps.to(x.dtype).expand(channels, -1, -1)
        if lengths is not None:
            x = hold_last(x, lengths)
        x = F.pad(x, (self.up_pad, self.up_pad), mode="replicate")
        x = ratio * F.conv_transpose1d(x, weight, stride=ratio, groups=channels)
        x = x[..., self.up_crop_left : -self.up_crop_right]  # (B, C, 2T)
        x = self.act(x)
        if lengths is not None:
            x = hold_last(x, lengths * ratio)
        x = F.pad(x, (self.down_pad_left, self.down_pad_right), mode="replicate")
        return F.conv1d(x, weight, stride=ratio, groups=channels)  # (B, C, T)
