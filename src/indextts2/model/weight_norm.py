"""Folding weight normalisation into plain weights when a checkpoint is loaded.

Several official modules are wrapped in ``torch.nn.utils.weight_norm`` (s2mel's DiT and WaveNet layers,
every BigVGAN convolution), so their checkpoints store a direction ``<name>.weight_v`` and a magnitude
``<name>.weight_g`` instead of ``<name>.weight``. At inference the weight is a constant: we compute
``weight = weight_v * (weight_g / ||weight_v||)`` once at load (what ``remove_weight_norm`` does, with
the norm over every dimension but the first) and build our modules from plain layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from indextts2.errors import CheckpointError

__all__ = ["fold_weight_norm"]

_MAGNITUDE = ".weight_g"
_DIRECTION = ".weight_v"


def _fold(direction: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    # torch's weight_norm(dim=0): the L2 norm of each output slice, kept broadcastable.
    norm = direction.flatten(1).norm(dim=1).view(-1, *([1] * (direction.dim() - 1)))
    return direction * (magnitude / norm)


def fold_weight_norm(
    state_dict: Mapping[str, torch.Tensor], *, source: str | Path
) -> dict[str, torch.Tensor]:
    """Replace every ``weight_g`` / ``weight_v`` pair by the ``weight`` it stands for.

    Other entries pass through unchanged. The folded weights are computed in float32 (or the stored
    dtype if wider) and returned in the stored dtype.

    Raises:
        CheckpointError: a magnitude without its direction (or the reverse), or mismatched shapes.
    """
    result: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if key.endswith(_MAGNITUDE) or key.endswith(_DIRECTION):
            continue
        result[key] = tensor
    for key, magnitude in state_dict.items():
        if not key.endswith(_MAGNITUDE):
            continue
        stem = key[: -len(_MAGNITUDE)]
        direction = state_dict.get(stem + _DIRECTION)
        if direction is None:
            raise CheckpointError(source, f"key {key} has no matching {stem + _DIRECTION}")
        expected = (direction.shape[0],) + (1,) * (direction.dim() - 1)
        if tuple(magnitude.shape) != expected:
            raise CheckpointError(
                source, f"key {key} has shape {tuple(magnitude.shape)}, expected {expected} for {stem}"
            )
        if stem + ".weight" in state_dict:
            raise CheckpointError(source, f"key {stem}.weight is stored beside its weight-norm factors")
        compute = torch.promote_types(direction.dtype, torch.float32)
        folded = _fold(direction.to(compute), magnitude.to(compute))
        result[stem + ".weight"] = folded.to(direction.dtype)
    for key in state_dict:
        if key.endswith(_DIRECTION) and key[: -len(_DIRECTION)] + _MAGNITUDE not in state_dict:
            raise CheckpointError(source, f"key {key} has no matching weight_g")
    return result
