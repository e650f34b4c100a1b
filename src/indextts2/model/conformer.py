"""The conformer encoder of IndexTTS2's conditioning paths (speaker and emotion).

A WeNet-style conformer as the official ``ConformerEncoder`` configures it: 2x convolutional
subsampling (``conv2d2``), "relative" position attention whose position term uses the absolute
sinusoidal table directly (the official code leaves out the Transformer-XL relative shift), a
convolution module (GLU, depthwise conv, LayerNorm, SiLU) and a SiLU feed-forward, every sub-block
pre-normed, each layer closed by a LayerNorm. State-dict keys are the official ones.

Masks: frames at or past a sequence's length are left out of attention and zeroed in the
convolution module; with ``as_cut`` also after its GLU, so that padded batches give each sequence
exactly the result of its clip alone (the official module does not, see ``_ConvolutionModule``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from indextts2.errors import ConfigError, InvalidInput

__all__ = ["ConformerEncoder", "sinusoidal_table"]

# Fixed by the official ConformerEncoder (not in config.yaml).
CONV_KERNEL_SIZE = 15
POSITION_TABLE_LENGTH = 5000  # rows of the sinusoidal table stored in the checkpoint ("pe")
LAYER_NORM_EPS = 1e-5
SUPPORTED_INPUT_LAYER = "conv2d2"
MIN_FRAMES = 3  # the subsampling convolution's kernel


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """The (1, length, dim) sin/cos position table (even columns sin, odd columns cos)."""
    table = torch.zeros(length, dim)
    position = torch.arange(0, length).unsqueeze(1)
    frequencies = torch.exp(torch.arange(0, dim, 2) * -(math.log(10000.0) / dim))
    table[:, 0::2] = torch.sin(position * frequencies)
    table[:, 1::2] = torch.cos(position * frequencies)
    return table.unsqueeze(0)


class _Subsampling2(nn.Module):
    """Conv2d(1, C, 3, stride 2) + ReLU over (time, features), then a Linear to C; scales by sqrt(C)."""

    def __init__(self, input_size: int, output_size: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, output_size, 3, 2), nn.ReLU())
        self.out = nn.Sequential(nn.Linear(output_size * ((input_size - 1) // 2), output_size))
        self.pos_enc = _PositionTable(output_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        batch, channels, time, freq = x.shape
        x = self.out(x.transpose(1, 2).contiguous().view(batch, time, channels * freq))  # (B, T', C)
        x, position = self.pos_enc(x)
        # Output frame t covers input frames 2t..2t+2; it is valid when its last input frame is.
        return x, position, mask[:, :, 2::2]


class _PositionTable(nn.Module):
    """Holds the sinusoidal table (``pe``, stored in the official checkpoint and loaded from it)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.xscale = math.sqrt(dim)
        self.register_buffer("pe", sinusoidal_table(POSITION_TABLE_LENGTH, dim))

    pe: torch.Tensor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        time = x.shape[1]
        if time >= self.pe.shape[1]:
            raise InvalidInput(
                f"conditioning clip too long: {time} frames after subsampling, the model takes fewer than "
                f"{self.pe.shape[1]}; cut the reference audio"
            )
        return x * self.xscale, self.pe[:, :time]


class _RelPositionAttention(nn.Module):
    """Multi-head attention with learnt biases u, v and a projected position term (no relative shift)."""

    def __init__(self, heads: int, dim: int) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"conformer width {dim} is not divisible by {heads} attention heads")
        self.heads = heads
        self.head_dim = dim // heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.head_dim))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.head_dim))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, self.heads, self.head_dim)  # (B, T, H, Dh)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C); key_mask: (B, 1, T) True for valid frames; position: (1, T, C)."""
        batch = x.shape[0]
        q = self._heads(self.linear_q(x))
        k = self._heads(self.linear_k(x)).transpose(1, 2)  # (B, H, T, Dh)
        v = self._heads(self.linear_v(x)).transpose(1, 2)
        p = self._heads(self.linear_pos(position)).transpose(1, 2)  # (1, H, T, Dh)
        q_u = (q + self.pos_bias_u).transpose(1, 2)
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        scores = (q_u @ k.transpose(-2, -1) + q_v @ p.transpose(-2, -1)) / math.sqrt(self.head_dim)
        masked = ~key_mask.unsqueeze(1)  # (B, 1, 1, T)
        scores = scores.masked_fill(masked, -math.inf)
        # A sequence with no valid frame would give NaN rows; the official code zeroes them.
        weights = torch.softmax(scores, dim=-1).masked_fill(masked, 0.0)
        out = (weights @ v).transpose(1, 2).reshape(batch, -1, self.heads * self.head_dim)
        return self.linear_out(out)


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(dim, hidden)
        self.w_2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(F.silu(self.w_1(x)))


class _ConvolutionModule(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, 1)
        self.depthwise_conv = nn.Conv1d(
            channels, channels, CONV_KERNEL_SIZE, padding=(CONV_KERNEL_SIZE - 1) // 2, groups=channels
        )
        self.norm = nn.LayerNorm(channels)
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, frame_mask: torch.Tensor, *, as_cut: bool) -> torch.Tensor:
        """x: (B, T, C); frame_mask: (B, 1, T) True for valid frames.

        The official module zeroes masked frames only before the first pointwise convolution, so the
        GLU of its bias leaks from masked frames into the depthwise convolution. ``as_cut`` zeroes them
        after the GLU too: a masked frame then acts like the zero padding past a clip's end.
        """
        x = x.transpose(1, 2).masked_fill(~frame_mask, 0.0)  # (B, C, T)
        x = F.glu(self.pointwise_conv1(x), dim=1)
        if as_cut:
            x = x.masked_fill(~frame_mask, 0.0)
        x = self.depthwise_conv(x)
        x = F.silu(self.norm(x.transpose(1, 2))).transpose(1, 2)
        x = self.pointwise_conv2(x).masked_fill(~frame_mask, 0.0)
        return x.transpose(1, 2)


class _ConformerLayer(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.self_attn = _RelPositionAttention(heads, dim)
        self.feed_forward = _FeedForward(dim, hidden)
        self.conv_module = _ConvolutionModule(dim)
        self.norm_ff = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm_mha = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm_conv = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm_final = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, position: torch.Tensor, *, as_cut: bool
    ) -> torch.Tensor:
        x = x + self.self_attn(self.norm_mha(x), mask, position)
        x = x + self.conv_module(self.norm_conv(x), mask, as_cut=as_cut)
        x = x + self.feed_forward(self.norm_ff(x))
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    """Conformer over w2v-BERT features: ``(B, T, input_size)`` -> ``(B, ~T/2, output_size)`` and a mask.

    Args:
        input_size: feature width (the w2v-BERT width; 1024 in the release).
        output_size: attention width.
        linear_units: feed-forward hidden width.
        attention_heads: heads of the self-attention.
        num_blocks: conformer layers.
        input_layer: only ``conv2d2`` (what IndexTTS2 uses).
    """

    def __init__(
        self,
        *,
        input_size: int,
        output_size: int,
        linear_units: int,
        attention_heads: int,
        num_blocks: int,
        input_layer: str = SUPPORTED_INPUT_LAYER,
    ) -> None:
        super().__init__()
        if input_layer != SUPPORTED_INPUT_LAYER:
            raise ConfigError(
                f"conformer input_layer {input_layer!r} is not supported; "
                f"IndexTTS2 uses {SUPPORTED_INPUT_LAYER}"
            )
        self.embed = _Subsampling2(input_size, output_size)
        self.encoders = nn.ModuleList(
            _ConformerLayer(output_size, attention_heads, linear_units) for _ in range(num_blocks)
        )
        self.after_norm = nn.LayerNorm(output_size, eps=LAYER_NORM_EPS)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor, *, as_cut: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode features.

        Args:
            features: ``(B, T, input_size)``, padded along time.
            lengths: ``(B,)`` frames to treat as valid; frames at index >= length are masked.
            as_cut: make the masked frames act exactly like absent ones, so that each row's result
                equals that of its clip cut at its length (batches with padding need this). False is
                the official arithmetic, where masked frames still leak into the convolution module.

        Returns:
            ``(B, T', output_size)`` encodings and the ``(B, 1, T')`` bool mask of valid frames.
        """
        time = features.shape[1]
        if time < MIN_FRAMES:
            raise InvalidInput(
                f"conditioning clip too short: {time} feature frame(s), "
                f"the encoder needs at least {MIN_FRAMES}"
            )
        frames = torch.arange(time, device=features.device)
        mask = (frames[None, :] < lengths.to(features.device)[:, None]).unsqueeze(1)  # (B, 1, T)
        x, position, mask = self.embed(features, mask)
        for layer in self.encoders:
            x = layer(x, mask, position, as_cut=as_cut)
        return self.after_norm(x), mask
