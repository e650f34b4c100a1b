"""CAM++ (3D-Speaker's CAMPPlus): the 192-dim speaker style of s2mel, from an 80-bin kaldi fbank.

The official pipeline builds ``CAMPPlus(feat_dim=80, embedding_size=192)`` and loads funasr's
``campplus_cn_common.bin``; growth rate, bottleneck size and initial channels are the constructor's
defaults (32, 4, 128). A checkpoint with other sizes (the golden one) is read by taking them from its
tensor shapes (:meth:`CAMPPlusDims.from_state_dict`). State-dict keys are the official ones.

The network pools over the whole clip (segment means, statistics pooling), so clips of different
lengths are run one at a time (``VoiceEncoder`` does that); ``forward`` takes a batch of equal length.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from indextts2.errors import CheckpointError
from indextts2.model.loading import load_into, read_torch_file

__all__ = ["CAMPPlus", "CAMPPlusDims"]

# 3D-Speaker CAMPPlus / FCM constants (not configurable in the official constructor call).
_FCM_CHANNELS = 32  # FCM m_channels
_FCM_BLOCKS = (2, 2)  # residual blocks per FCM stage
_DENSE_BLOCKS = ((12, 3, 1), (24, 3, 2), (16, 3, 2))  # (layers, kernel size, dilation) per CAM block
_TDNN_KERNEL = 5
_CAM_REDUCTION = 2
_CAM_SEGMENT = 100  # frames per segment in CAMLayer's segment pooling


@dataclass(frozen=True)
class CAMPPlusDims:
    """The sizes of a CAMPPlus network. Defaults: the release (funasr campplus_cn_common)."""

    feat_dim: int = 80
    embedding_size: int = 192
    growth_rate: int = 32
    bn_size: int = 4
    init_channels: int = 128

    @classmethod
    def from_state_dict(
        cls, state: Mapping[str, Any], *, source: str | Path, feat_dim: int = 80, embedding_size: int = 192
    ) -> CAMPPlusDims:
        """Read growth rate, bottleneck size and initial channels from the tensors' shapes."""

        def dim0(key: str) -> int:
            tensor = state.get(key)
            if not isinstance(tensor, torch.Tensor) or tensor.dim() == 0:
                raise CheckpointError(source, f"missing key {key}")
            return int(tensor.shape[0])

        growth_rate = dim0("xvector.block1.tdnnd1.cam_layer.linear_local.weight")
        return cls(
            feat_dim=feat_dim,
            embedding_size=embedding_size,
            growth_rate=growth_rate,
            bn_size=max(1, dim0("xvector.block1.tdnnd1.linear1.weight") // growth_rate),
            init_channels=dim0("xvector.tdnn.linear.weight"),
        )


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(channels), relu=nn.ReLU()))


class _ResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return F.relu(out)


class _FCM(nn.Module):
    """2-D convolutional front end: ``(B, F, T) -> (B, channels * F / 8, T)``."""

    def __init__(self, feat_dim: int, channels: int = _FCM_CHANNELS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        first, second = _FCM_BLOCKS
        self.layer1 = nn.Sequential(*[_ResBlock(channels, channels, 1 + (i == 0)) for i in range(first)])
        self.layer2 = nn.Sequential(*[_ResBlock(channels, channels, 1 + (i == 0)) for i in range(second)])
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))  # (B, C, F, T)
        out = self.layer2(self.layer1(out))
        out = F.relu(self.bn2(self.conv2(out)))  # (B, C, F / 8, T)
        return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])


class _TDNN(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(
            in_channels, out_channels, _TDNN_KERNEL, stride=2, padding=_TDNN_KERNEL // 2, bias=False
        )
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class _CAMLayer(nn.Module):
    """Context-aware masking: a local conv gated by utterance- and segment-level context."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(
            bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False
        )
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // _CAM_REDUCTION, 1)
        self.linear2 = nn.Conv1d(bn_channels // _CAM_REDUCTION, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local = self.linear_local(x)
        frames = x.shape[-1]
        segments = F.avg_pool1d(x, kernel_size=_CAM_SEGMENT, stride=_CAM_SEGMENT, ceil_mode=True)
        # every frame gets the mean of its segment
        segments = segments.repeat_interleave(_CAM_SEGMENT, dim=-1)[..., :frames]
        context = x.mean(-1, keepdim=True) + segments
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return local * gate


class _DenseLayer(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: int, bn_channels: int, kernel_size: int, dilation: int
    ) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_channels)
        self.cam_layer = _CAMLayer(bn_channels, out_channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class _DenseBlock(nn.Module):
    """Densely connected CAM layers, named ``tdnnd1..N`` as in the checkpoint."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_channels: int, **conv: int):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(in_channels + i * growth_rate, growth_rate, bn_channels, **conv)
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _Transit(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class _StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, correction=1)], dim=-1)


class _Embedding(nn.Module):
    """Final 1x1 projection with a non-affine BatchNorm (keys ``dense.linear``, ``dense.nonlinear``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict(batchnorm=nn.BatchNorm1d(out_channels, affine=False)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class CAMPPlus(nn.Module):
    """CAM++ speaker embedding: ``(B, T, feat_dim)`` mean-subtracted fbank -> ``(B, embedding_size)``."""

    def __init__(self, dims: CAMPPlusDims | None = None) -> None:
        super().__init__()
        dims = dims or CAMPPlusDims()
        self.dims = dims
        self.head = _FCM(dims.feat_dim)
        xvector: OrderedDict[str, nn.Module] = OrderedDict(
            tdnn=_TDNN(self.head.out_channels, dims.init_channels)
        )
        channels = dims.init_channels
        for index, (num_layers, kernel_size, dilation) in enumerate(_DENSE_BLOCKS, start=1):
            xvector[f"block{index}"] = _DenseBlock(
                num_layers,
                channels,
                dims.growth_rate,
                dims.bn_size * dims.growth_rate,
                kernel_size=kernel_size,
                dilation=dilation,
            )
            channels += num_layers * dims.growth_rate
            xvector[f"transit{index}"] = _Transit(channels, channels // 2)
            channels //= 2
        xvector["out_nonlinear"] = _bn_relu(channels)
        xvector["stats"] = _StatsPool()
        xvector["dense"] = _Embedding(channels * 2, dims.embedding_size)
        self.xvector = nn.Sequential(xvector)
        # The 3D-Speaker initialisation (what a dummy build gets; a checkpoint overwrites it).
        for module in self.modules():
            if isinstance(module, nn.Conv1d | nn.Linear):
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, feat_dim: int = 80, embedding_size: int = 192) -> CAMPPlus:
        """Build with the sizes found in ``campplus_cn_common.bin`` and load it strictly."""
        state = read_torch_file(path)
        if not isinstance(state, dict):
            raise CheckpointError(path, "expected a CAMPPlus state dict")
        dims = CAMPPlusDims.from_state_dict(
            state, source=path, feat_dim=feat_dim, embedding_size=embedding_size
        )
        model = cls(dims)
        load_into(model, state, source=path)
        return model

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        x = self.head(fbank.transpose(1, 2))  # (B, T, F) -> (B, F, T) -> (B, C, T)
        style: torch.Tensor = self.xvector(x)
        return style
