"""The WaveNet stack that ends s2mel's DiT (the official ``WN`` with ``SConv1d`` layers).

Each layer is a dilated non-causal convolution whose output is split into a tanh and a sigmoid gate,
conditioned on a per-sequence vector (the DiT's second timestep embedding), followed by a 1x1
convolution that feeds the residual path and the skip sum. The official convolutions pad by
*reflection* (``SConv1d``'s default ``pad_mode='reflect'``; the ``padding`` argument it is given is
ignored), including its quirk for inputs shorter than the padding: zeros are appended first.

Batching: reflection happens at each sequence's own end (``reflect_indices``) and the residual path is
zeroed beyond it, so a sequence gives the same result alone or padded in a batch.

State-dict keys are the official ones after weight-norm folding, minus the ``conv.conv.`` nesting of
``SConv1d``/``NormConv1d`` (see ``WaveNet.official_key``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["WaveNet", "reflect_indices"]


def reflect_indices(lengths: torch.Tensor, *, left: int, right: int, max_length: int) -> torch.Tensor:
    """Source frame of every padded position for per-sequence reflect padding.

    Position ``p`` of the padded sequence ``b`` reads frame ``r(p - left)`` where ``r`` reflects at 0
    and at ``lengths[b] - 1``. Like the official ``pad1d``, a sequence no longer than the padding is
    first extended with zeros to ``max(left, right) + 1`` frames: such positions get index -1 (read as
    zero by the caller).

    Returns:
        ``(B, max_length + left + right)`` int64 indices into ``[-1, max_length)``.
    """
    lengths = lengths.to(torch.int64)
    virtual = torch.clamp(lengths, min=max(left, right) + 1)  # (B,) length after the zero extension
    positions = torch.arange(max_length + left + right, device=lengths.device) - left  # (P,)
    source = positions.abs()[None, :].expand(lengths.shape[0], -1)
    last = (virtual - 1)[:, None]
    source = torch.where(source > last, 2 * last - source, source)
    # Past a sequence's own padded end the values are never read for a valid output: any index will do.
    source = source.clamp(min=0)
    return torch.where(source < lengths[:, None], source, torch.full_like(source, -1))


def _gather_time(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, :, index[b, p]]`` with index -1 read as zero. ``x`` is (B, C, T), index (B, P)."""
    safe = index.clamp(min=0)
    gathered = torch.gather(x, 2, safe[:, None, :].expand(-1, x.shape[1], -1))
    return gathered * (index >= 0)[:, None, :].to(x.dtype)


class WaveNet(nn.Module):
    """Gated dilated convolutions with a global condition, non-causal, reflect-padded."""

    def __init__(
        self,
        *,
        hidden_channels: int,
        kernel_size: int,
        dilation_rate: int,
        num_layers: int,
        condition_channels: int,
    ) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.dilations = [dilation_rate**i for i in range(num_layers)]
        self.cond_layer = nn.Conv1d(condition_channels, 2 * hidden_channels * num_layers, 1)
        self.in_layers = nn.ModuleList(
            nn.Conv1d(hidden_channels, 2 * hidden_channels, kernel_size, dilation=d) for d in self.dilations
        )
        # The last layer only feeds the skip sum, so it has half the outputs.
        self.res_skip_layers = nn.ModuleList(
            nn.Conv1d(hidden_channels, 2 * hidden_channels if i < num_layers - 1 else hidden_channels, 1)
            for i in range(num_layers)
        )

    @staticmethod
    def official_key(key: str) -> str:
        """Our key for an official one: ``in_layers.0.conv.conv.weight`` -> ``in_layers.0.weight``."""
        return key.replace(".conv.conv.", ".")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Run the stack.

        Args:
            x: ``(B, hidden, T)`` input, padded along time.
            lengths: ``(B,)`` valid frames per sequence.
            condition: ``(B, condition_channels)`` global condition (one vector per sequence).

        Returns:
            ``(B, hidden, T)`` skip sum, zero beyond each sequence's length.
        """
        _, channels, time = x.shape
        mask = (torch.arange(time, device=x.device)[None, :] < lengths[:, None])[:, None, :].to(x.dtype)
        cond = self.cond_layer(condition[:, :, None])  # (B, 2 * hidden * layers, 1)
        output = torch.zeros_like(x)
        indices: dict[int, torch.Tensor] = {}
        for i, (dilation, in_layer, res_skip) in enumerate(
            zip(self.dilations, self.in_layers, self.res_skip_layers, strict=True)
        ):
            if dilation not in indices:
                total = (self.kernel_size - 1) * dilation
                indices[dilation] = reflect_indices(
                    lengths, left=total - total // 2, right=total // 2, max_length=time
                )
            x_in = in_layer(_gather_time(x, indices[dilation]))  # (B, 2 * hidden, T)
            offset = i * 2 * channels
            gates = x_in + cond[:, offset : offset + 2 * channels, :]
            acts = torch.tanh(gates[:, :channels]) * torch.sigmoid(gates[:, channels:])
            res_skip_acts = res_skip(acts)
            if i < len(self.dilations) - 1:
                x = (x + res_skip_acts[:, :channels]) * mask
                output = output + res_skip_acts[:, channels:]
            else:
                output = output + res_skip_acts
        return output * mask
