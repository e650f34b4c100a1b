"""The perceiver resampler: a fixed number of learnt latents that read a variable-length sequence.

As the official ``PerceiverResampler`` (after lucidrains' naturalspeech2): the context is projected
to the latent width, then ``depth`` rounds of cross-attention (keys/values over the latents followed
by the context) and a GEGLU feed-forward, both residual, then an RMS norm. Key names are the
official ones (``layers.{i}.0`` attention, ``layers.{i}.1`` feed-forward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PerceiverResampler"]

# Fixed by the official module (its defaults; config.yaml sets only heads and ff_mult).
DEPTH = 2
HEAD_DIM = 64


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        inner = HEAD_DIM * heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, HEAD_DIM).transpose(1, 2)  # (B, H, N, Dh)

    def forward(
        self, latents: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """latents: (B, N, C); context: (B, T, C); key_mask: (B, N + T) True for keys to attend."""
        keys_values = torch.cat((latents, context), dim=-2)  # the latents attend to themselves too
        q = self._split(self.to_q(latents))
        k, v = (self._split(t) for t in self.to_kv(keys_values).chunk(2, dim=-1))
        scores = (q @ k.transpose(-2, -1)) * HEAD_DIM**-0.5  # (B, H, N, N + T)
        if key_mask is not None:
            # The official code fills with the most negative finite float, not -inf.
            scores = scores.masked_fill(~key_mask[:, None, None, :], -torch.finfo(scores.dtype).max)
        out = scores.softmax(dim=-1) @ v
        out = out.transpose(1, 2).reshape(latents.shape[0], latents.shape[1], -1)
        return self.to_out(out)


class _GEGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return F.gelu(gate) * x


def _feed_forward(dim: int, mult: float) -> nn.Sequential:
    inner = int(dim * mult * 2 / 3)
    return nn.Sequential(nn.Linear(dim, inner * 2), _GEGLU(), nn.Linear(inner, dim))


class _RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class PerceiverResampler(nn.Module):
    """``num_latents`` latents of width ``dim`` summarising a ``(B, T, dim_context)`` sequence.

    Args:
        dim: latent (output) width.
        dim_context: width of the sequence read; projected to ``dim`` when different.
        num_latents: number of output vectors.
        heads: attention heads (64 dimensions each).
        ff_mult: feed-forward expansion.
    """

    def __init__(self, *, dim: int, dim_context: int, num_latents: int, heads: int, ff_mult: float) -> None:
        super().__init__()
        self.proj_context: nn.Module = nn.Linear(dim_context, dim) if dim_context != dim else nn.Identity()
        self.latents = nn.Parameter(torch.empty(num_latents, dim))
        nn.init.normal_(self.latents, std=0.02)
        self.layers = nn.ModuleList(
            nn.ModuleList([_Attention(dim, heads), _feed_forward(dim, ff_mult)]) for _ in range(DEPTH)
        )
        self.norm = _RMSNorm(dim)

    @property
    def num_latents(self) -> int:
        return int(self.latents.shape[0])

    def forward(self, context: torch.Tensor, frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Resample ``context`` ``(B, T, dim_context)`` to ``(B, num_latents, dim)``.

        Args:
            frame_mask: ``(B, T)`` True for valid context frames (None: all valid).
        """
        context = self.proj_context(context)
        batch = context.shape[0]
        latents = self.latents.unsqueeze(0).expand(batch, -1, -1)
        key_mask = None
        if frame_mask is not None:
            always = torch.ones(batch, self.num_latents, dtype=torch.bool, device=frame_mask.device)
            key_mask = torch.cat((always, frame_mask), dim=1)
        for layer in self.layers:
            attention, feed_forward = layer[0], layer[1]  # type: ignore[index]
            latents = attention(latents, context, key_mask) + latents
            latents = feed_forward(latents) + latents
        return self.norm(latents)
