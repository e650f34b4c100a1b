"""s2mel's diffusion transformer: the velocity estimator of the flow-matching decoder.

Per frame, the noisy mel ``x``, the prompt mel, the content condition ``mu`` (projected) and the
speaker style are concatenated and merged by a linear layer; a stack of pre-norm transformer blocks
(RoPE self-attention, SwiGLU feed-forward, RMS norms whose scale and shift come from the timestep
embedding, U-ViT skips from the first half of the blocks to the second) runs over the sequence; a long
skip re-injects ``x``; a WaveNet stack conditioned on a second timestep embedding and a final
adaptive layer norm produce the velocity, ``(B, mel_bins, T)``.

This is the configuration every IndexTTS2 release uses (``final_layer_type: wavenet``, style as a
per-frame input, no time/style tokens, non-causal); ``DiTConfig.from_config`` refuses the others.
State-dict keys are the official ones (``s2mel.pth``'s ``net.cfm`` entry without ``estimator.``),
with weight norm folded and the unused entries named in ``UNUSED_CHECKPOINT_KEYS``.

Batching: attention sees only each sequence's own frames (key padding mask), positions start at 0
for every sequence, and the WaveNet pads and masks per sequence (see ``model.wavenet``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from indextts2.errors import ConfigError
from indextts2.model.wavenet import WaveNet

__all__ = ["UNUSED_CHECKPOINT_KEYS", "DiT", "DiTConfig", "timestep_frequencies"]

# Constants of the official modules (s2mel diffusion_transformer.py and gpt_fast/model.py).
TIMESTEP_FREQUENCY_DIM = 256  # TimestepEmbedder(frequency_embedding_size=256)
TIMESTEP_MAX_PERIOD = 10_000
TIMESTEP_SCALE = 1000  # t in [0, 1] is scaled by 1000 before the sinusoids
ROPE_BASE = 10_000.0  # ModelArgs.rope_base
RMS_NORM_EPS = 1e-5  # ModelArgs.norm_eps
FINAL_NORM_EPS = 1e-6  # FinalLayer's LayerNorm
FFN_MULTIPLE = 256  # SwiGLU width: 2/3 of 4 * dim, rounded up to a multiple of 256

# Checkpoint entries the official DiT holds but never uses at inference: the discrete-content table,
# the training-time content mask, a weight-normed input embedder no forward path calls, and the
# position buffer (positions are computed per call). The timestep frequency buffers are recomputed
# and compared with the stored ones at load instead of being loaded.
UNUSED_CHECKPOINT_KEYS: tuple[str, ...] = (
    "cond_embedder.weight",
    "content_mask_embedder.weight",
    "x_embedder.weight",
    "x_embedder.bias",
    "input_pos",
)

_REQUIRED_SETTINGS: dict[str, Any] = {
    "final_layer_type": "wavenet",
    "style_condition": True,
    "time_as_token": False,
    "style_as_token": False,
    "uvit_skip_connection": True,
    "long_skip_connection": True,
    "is_causal": False,
    "zero_prompt_speech_token": False,
}


@dataclass(frozen=True)
class DiTConfig:
    """Sizes of the DiT, from config.yaml's ``s2mel`` section (``DiT``, ``wavenet``, ``style_encoder``)."""

    hidden_dim: int
    num_heads: int
    depth: int
    mel_bins: int
    content_dim: int
    style_dim: int
    wavenet_layers: int
    wavenet_kernel_size: int
    wavenet_dilation_rate: int

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    @property
    def ffn_dim(self) -> int:
        width = int(2 * (4 * self.hidden_dim) / 3)
        return -(-width // FFN_MULTIPLE) * FFN_MULTIPLE

    @classmethod
    def from_config(cls, s2mel: Mapping[str, Any]) -> DiTConfig:
        """Read config.yaml's ``s2mel`` section; refuse DiT variants IndexTTS2 does not use."""
        dit, wavenet = s2mel["DiT"], s2mel["wavenet"]
        wrong = [
            f"DiT.{name}={dit.get(name)!r} (needs {value!r})"
            for name, value in _REQUIRED_SETTINGS.items()
            if dit.get(name, False if isinstance(value, bool) else None) != value
        ]
        if s2mel.get("dit_type", "DiT") != "DiT":
            wrong.append(f"dit_type={s2mel.get('dit_type')!r}")
        if bool(wavenet.get("style_condition", True)) != bool(dit.get("style_condition")):
            wrong.append("wavenet.style_condition differs from DiT.style_condition")
        if int(wavenet["hidden_dim"]) != int(dit["hidden_dim"]):
            # The official final layer applies a wavenet-width projection to the DiT-width timestep
            # embedding, which only works when the two widths are equal.
            wrong.append("wavenet.hidden_dim differs from DiT.hidden_dim")
        if int(dit["hidden_dim"]) % int(dit["num_heads"]):
            wrong.append("DiT.hidden_dim is not a multiple of DiT.num_heads")
        if int(wavenet["kernel_size"]) % 2 == 0:
            wrong.append("wavenet.kernel_size is even")
        if wrong:
            raise ConfigError(f"s2mel: unsupported DiT configuration: {'; '.join(wrong)}")
        return cls(
            hidden_dim=int(dit["hidden_dim"]),
            num_heads=int(dit["num_heads"]),
            depth=int(dit["depth"]),
            mel_bins=int(dit["in_channels"]),
            content_dim=int(dit["content_dim"]),
            style_dim=int(s2mel["style_encoder"]["dim"]),
            wavenet_layers=int(wavenet["num_layers"]),
            wavenet_kernel_size=int(wavenet["kernel_size"]),
            wavenet_dilation_rate=int(wavenet["dilation_rate"]),
        )


def timestep_frequencies(device: torch.device | None = None) -> torch.Tensor:
    """The sinusoid frequencies of the timestep embedders, ``(TIMESTEP_FREQUENCY_DIM // 2,)`` float32."""
    half = TIMESTEP_FREQUENCY_DIM // 2
    exponent = torch.arange(half, dtype=torch.float32, device=device) / half
    return torch.exp(-math.log(TIMESTEP_MAX_PERIOD) * exponent)


class TimestepEmbedder(nn.Module):
    """Sinusoidal embedding of t (cos half, then sin half) followed by an MLP."""

    def __init__(self, hidden_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(TIMESTEP_FREQUENCY_DIM, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # Sinusoids in float32 whatever the weights' precision: t * 1000 * f needs the mantissa.
        angles = TIMESTEP_SCALE * t[:, None].float() * timestep_frequencies(t.device)[None]
        embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # (B, 256)
        return self.mlp(embedding.to(self.dtype))  # (B, hidden)

    @property
    def dtype(self) -> torch.dtype:
        first: nn.Linear = self.mlp[0]  # type: ignore[assignment]
        return first.weight.dtype


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = RMS_NORM_EPS) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(torch.mean(x32 * x32, dim=-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class AdaptiveRMSNorm(nn.Module):
    """RMS norm whose per-channel scale and shift are projected from the timestep embedding."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project_layer = nn.Linear(dim, 2 * dim)
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.project_layer(condition).chunk(2, dim=-1)  # (B, 1, D) each
        return scale * self.norm(x) + shift


def rotary_tables(length: int, head_dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the RoPE angles for positions 0..length-1, ``(length, head_dim // 2)`` float32."""
    pairs = torch.arange(0, head_dim, 2, device=device)[: head_dim // 2].float() / head_dim
    inverse = 1.0 / (ROPE_BASE**pairs)
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inverse)
    return torch.cos(angles), torch.sin(angles)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs (gpt-fast layout) of ``(B, T, H, head_dim)``, in float32."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    real, imag = pairs[..., 0], pairs[..., 1]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    rotated = torch.stack([real * cos - imag * sin, imag * cos + real * sin], dim=-1)
    return rotated.flatten(3).type_as(x)


class Attention(nn.Module):
    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.wqkv = nn.Linear(config.hidden_dim, 3 * config.hidden_dim, bias=False)
        self.wo = nn.Linear(config.hidden_dim, config.hidden_dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        key_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        batch, time, width = x.shape
        q, k, v = self.wqkv(x).split(width, dim=-1)
        q = apply_rotary(q.view(batch, time, self.num_heads, self.head_dim), *rotary)
        k = apply_rotary(k.view(batch, time, self.num_heads, self.head_dim), *rotary)
        v = v.view(batch, time, self.num_heads, self.head_dim)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=key_mask
        )  # (B, H, T, head_dim)
        return self.wo(y.transpose(1, 2).reshape(batch, time, width))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.hidden_dim, config.ffn_dim, bias=False)
        self.w3 = nn.Linear(config.hidden_dim, config.ffn_dim, bias=False)
        self.w2 = nn.Linear(config.ffn_dim, config.hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, config: DiTConfig, *, receives_skip: bool) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.feed_forward = FeedForward(config)
        self.attention_norm = AdaptiveRMSNorm(config.hidden_dim)
        self.ffn_norm = AdaptiveRMSNorm(config.hidden_dim)
        # Every official block has this layer; only those in the second half use it (see Transformer).
        self.skip_in_linear = nn.Linear(2 * config.hidden_dim, config.hidden_dim) if receives_skip else None

    def forward(
        self,
        x: torch.Tensor,
        condition: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        key_mask: torch.Tensor | None,
        skip: torch.Tensor | None,
    ) -> torch.Tensor:
        if self.skip_in_linear is not None and skip is not None:
            x = self.skip_in_linear(torch.cat([x, skip], dim=-1))
        h = x + self.attention(self.attention_norm(x, condition), rotary, key_mask)
        return h + self.feed_forward(self.ffn_norm(h, condition))


class Transformer(nn.Module):
    """U-ViT stack: blocks ``i < depth // 2`` push their output, blocks ``i > depth // 2`` pop one."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.emitters = set(range(config.depth // 2))
        self.receivers = {i for i in range(config.depth) if i > config.depth // 2}
        self.head_dim = config.head_dim
        self.layers = nn.ModuleList(
            TransformerBlock(config, receives_skip=i in self.receivers) for i in range(config.depth)
        )
        self.norm = AdaptiveRMSNorm(config.hidden_dim)

    def forward(
        self, x: torch.Tensor, condition: torch.Tensor, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        rotary = rotary_tables(x.shape[1], self.head_dim, x.device)
        skips: list[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            skip = skips.pop() if i in self.receivers else None
            x = layer(x, condition, rotary, key_mask, skip)
            if i in self.emitters:
                skips.append(x)
        return self.norm(x, condition)


class FinalLayer(nn.Module):
    """Layer norm modulated by the timestep embedding (shift, scale), then a linear layer."""

    def __init__(self, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_dim, elementwise_affine=False, eps=FINAL_NORM_EPS)
        self.linear = nn.Linear(hidden_dim, out_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_dim, 2 * hidden_dim))

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(condition).chunk(2, dim=1)  # (B, D) each
        return self.linear(self.norm_final(x) * (1 + scale[:, None]) + shift[:, None])


class DiT(nn.Module):
    """The velocity estimator ``v(x, t | prompt, style, mu)``."""

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        hidden, mels = config.hidden_dim, config.mel_bins
        self.transformer = Transformer(config)
        self.cond_projection = nn.Linear(config.content_dim, hidden)
        self.t_embedder = TimestepEmbedder(hidden)
        self.t_embedder2 = TimestepEmbedder(hidden)
        self.cond_x_merge_linear = nn.Linear(hidden + 2 * mels + config.style_dim, hidden)
        self.skip_linear = nn.Linear(hidden + mels, hidden)
        self.conv1 = nn.Linear(hidden, hidden)
        self.wavenet = WaveNet(
            hidden_channels=hidden,
            kernel_size=config.wavenet_kernel_size,
            dilation_rate=config.wavenet_dilation_rate,
            num_layers=config.wavenet_layers,
            condition_channels=hidden,
        )
        self.res_projection = nn.Linear(hidden, hidden)
        self.final_layer = FinalLayer(hidden, hidden)
        self.conv2 = nn.Conv1d(hidden, mels, 1)

    def forward(
        self,
        x: torch.Tensor,
        prompt_x: torch.Tensor,
        t: torch.Tensor,
        style: torch.Tensor,
        mu: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        padded: bool | None = None,
    ) -> torch.Tensor:
        """Estimate the velocity field.

        Args:
            x: ``(B, mel_bins, T)`` current sample.
            prompt_x: ``(B, mel_bins, T)`` prompt mel in the prompt frames, zero elsewhere.
            t: ``(B,)`` time in [0, 1].
            style: ``(B, style_dim)`` speaker style.
            mu: ``(B, T, content_dim)`` content condition.
            lengths: ``(B,)`` valid frames per sequence; None means all ``T``.
            padded: whether some sequence is shorter than ``T``; None: found from ``lengths`` (a
                device read: a solver that knows it passes it, once per step saved).

        Returns:
            ``(B, mel_bins, T)``; frames past a sequence's length hold no meaning.
        """
        batch, _, time = x.shape
        if lengths is None:
            lengths = torch.full((batch,), time, dtype=torch.int64, device=x.device)
        lengths = lengths.to(device=x.device, dtype=torch.int64)
        valid = torch.arange(time, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        # No mask when nothing is padded: the same numbers, and the fast attention kernels.
        if padded is None:
            padded = not bool(valid.all())
        key_mask = valid[:, None, None, :] if padded else None

        time_embedding = self.t_embedder(t)  # (B, D)
        frames = x.transpose(1, 2)  # (B, T, mel_bins)
        merged = torch.cat(
            [
                frames,
                prompt_x.transpose(1, 2),
                self.cond_projection(mu),
                style[:, None, :].expand(-1, time, -1),
            ],
            dim=-1,
        )
        h = self.transformer(self.cond_x_merge_linear(merged), time_embedding[:, None, :], key_mask)
        h = self.skip_linear(torch.cat([h, frames], dim=-1))  # long skip: (B, T, D)
        w = self.wavenet(self.conv1(h).transpose(1, 2), lengths, self.t_embedder2(t))  # (B, D, T)
        w = w.transpose(1, 2) + self.res_projection(h)
        w = self.final_layer(w, time_embedding).transpose(1, 2)  # (B, D, T)
        return self.conv2(w)
