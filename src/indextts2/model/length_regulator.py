"""The s2mel length regulator: content features stretched to a target number of mel frames.

IndexTTS2 uses the continuous-input variant of s2mel's ``InterpolateRegulator``: a linear projection
of the w2v-BERT-width features (``content_in_proj``), nearest-neighbour interpolation to the target
length, then ``len(sampling_ratios)`` blocks of Conv1d(k=3) + GroupNorm(1) + Mish and a 1x1 Conv1d
(``model.*``). The state dict keys are the official ones (s2mel.pth's ``length_regulator`` entry).

Batching: each sequence is interpolated to its own length, padded frames are zeroed before every
convolution and left out of the group-norm statistics, so a sequence gives the same result alone or
in a batch with longer ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from indextts2.errors import ConfigError
from indextts2.model.loading import load_into

__all__ = ["LengthRegulator", "nearest_indices"]

GROUP_NORM_EPS = 1e-5  # torch.nn.GroupNorm's default, as the official module uses


def nearest_indices(
    input_lengths: torch.Tensor, output_lengths: torch.Tensor, max_output: int
) -> torch.Tensor:
    """Source index of every output frame for ``F.interpolate(mode='nearest')``, per sequence.

    Reproduces torch's float32 arithmetic: ``min(floor(i * (in / out)), in - 1)``. Returns
    ``(batch, max_output)`` int64; positions past a sequence's own length point at frame 0.
    """
    scale = input_lengths.to(torch.float32) / output_lengths.to(torch.float32)  # (B,)
    positions = torch.arange(max_output, device=input_lengths.device, dtype=torch.float32)
    source = torch.floor(positions[None, :] * scale[:, None]).to(torch.int64)
    source = torch.minimum(source, (input_lengths - 1)[:, None].to(torch.int64))
    valid = positions[None, :] < output_lengths[:, None]
    return torch.where(valid, source, torch.zeros_like(source))


class LengthRegulator(nn.Module):
    """Continuous-input ``InterpolateRegulator`` (the configuration every IndexTTS2 release uses)."""

    def __init__(self, *, in_channels: int, channels: int, num_blocks: int, codebook_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(num_blocks):
            layers += [nn.Conv1d(channels, channels, 3, 1, 1), nn.GroupNorm(1, channels), nn.Mish()]
        layers.append(nn.Conv1d(channels, channels, 1, 1))
        self.model = nn.Sequential(*layers)
        # Present in the checkpoint but unused at inference: the discrete-input code table and the
        # training-time mask token. Kept so the official state dict loads strictly.
        self.embedding = nn.Embedding(codebook_size, channels)
        self.mask_token = nn.Parameter(torch.zeros(1, channels))
        self.content_in_proj = nn.Linear(in_channels, channels)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> LengthRegulator:
        """Build from config.yaml's ``s2mel.length_regulator`` section."""
        unsupported = [
            name
            for name, value in (
                ("is_discrete", section.get("is_discrete", False)),
                ("vector_quantize", section.get("vector_quantize", False)),
                ("f0_condition", section.get("f0_condition", False)),
                ("n_codebooks > 1", int(section.get("n_codebooks", 1)) > 1),
            )
            if value
        ]
        if unsupported:
            raise ConfigError(
                "s2mel.length_regulator: only the continuous-input regulator of IndexTTS2 is supported; "
                f"this config sets {', '.join(unsupported)}"
            )
        return cls(
            in_channels=int(section["in_channels"]),
            channels=int(section["channels"]),
            num_blocks=len(section["sampling_ratios"]),
            codebook_size=int(section["content_codebook_size"]),
        )

    def load(self, state_dict: Mapping[str, torch.Tensor], *, source: str | Path) -> None:
        load_into(self, state_dict, source=f"{source} (net.length_regulator)")

    def forward(
        self,
        features: torch.Tensor,
        target_lengths: torch.Tensor,
        input_lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Stretch ``(B, T_in, in_channels)`` features to ``(B, max(target_lengths), channels)``.

        Args:
            features: content features, padded along time.
            target_lengths: ``(B,)`` int, mel frames wanted per sequence.
            input_lengths: ``(B,)`` int, valid input frames per sequence (default: all ``T_in``).

        Returns:
            The regulated features, zero beyond each sequence's target length.
        """
        batch, time_in, _ = features.shape
        if input_lengths is None:
            input_lengths = torch.full((batch,), time_in, dtype=torch.int64, device=features.device)
        target_lengths = target_lengths.to(device=features.device, dtype=torch.int64)
        max_out = int(target_lengths.max())

        x = self.content_in_proj(features)  # (B, T_in, C)
        index = nearest_indices(input_lengths.to(features.device), target_lengths, max_out)
        x = torch.gather(x, 1, index[:, :, None].expand(-1, -1, x.shape[-1])).transpose(1, 2)  # (B, C, T)
        mask = (torch.arange(max_out, device=x.device)[None, :] < target_lengths[:, None]).unsqueeze(1)
        mask = mask.to(x.dtype)  # (B, 1, T)
        padded = bool((target_lengths != max_out).any())

        for layer in self.model:
            if isinstance(layer, nn.Conv1d):
                x = layer(x * mask) if padded else layer(x)
            elif isinstance(layer, nn.GroupNorm) and padded:
                x = _masked_group_norm(x, mask, layer)
            else:
                x = layer(x)
        return (x * mask).transpose(1, 2)


def _masked_group_norm(x: torch.Tensor, mask: torch.Tensor, norm: nn.GroupNorm) -> torch.Tensor:
    """GroupNorm with one group whose statistics cover only the valid frames of each sequence."""
    count = mask.sum(dim=(1, 2), keepdim=True) * x.shape[1]
    mean = (x * mask).sum(dim=(1, 2), keepdim=True) / count
    var = (((x - mean) * mask) ** 2).sum(dim=(1, 2), keepdim=True) / count
    normed = (x - mean) / torch.sqrt(var + norm.eps)
    return normed * norm.weight[None, :, None] + norm.bias[None, :, None]
