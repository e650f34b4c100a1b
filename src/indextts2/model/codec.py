"""The semantic codecs: MaskGCT's RepCodec (IndexTTS-2) and IndexTTS-2.5's ``EnhancedCodec`` decoder.

IndexTTS2 quantises the normalised w2v-BERT features with amphion's RepCodec
(``semantic_codec/model.safetensors``): a Vocos ConvNeXt backbone and a Linear back to the feature
width (``encoder.*``), then one factorised VQ (``quantizer.quantizers.0.*``): a weight-normed 1x1
projection to the code dimension, the nearest code by cosine similarity, and a weight-normed 1x1
projection back. Only the encoder and quantiser are built; the checkpoint's decoder is not read.

Batching: padded frames are zeroed before every convolution, so a clip gives the same codes and
embeddings alone or in a batch with longer clips.

IndexTTS-2.5 (:class:`CodecDecoder`, ``codec.pth``): the same factorised VQ and Vocos backbone, but
at half the frame rate (25 Hz codes). Its decoder turns codes into s2mel's content features: the
codebook rows through the VQ's ``out_project``, a Vocos backbone and a Linear back to the feature
width, nearest-neighbour upsampling by 2 (one code -> two 50 Hz frames) and a Conv1d(k=3) ``up``.
The encoder half (``down``, ``encoder``) and the VQ's ``in_project`` are in the file but unused at
inference; they are named and not loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from indextts2.errors import CheckpointError, ConfigError, InvalidInput
from indextts2.model.loading import load_into, read_safetensors, read_torch_file

__all__ = ["CodecDecoder", "SemanticCodec"]

# amphion ConvNeXtBlock / VocosBackbone constants (MaskGCT RepCodec): depthwise and input
# convolutions of width 7, LayerNorm epsilon 1e-6, layer scale initialised to 1 / num_layers.
_KERNEL = 7
_LAYER_NORM_EPS = 1e-6
# The decoder half of RepCodec ships in the same file; it is never used at inference.
_UNUSED_KEYS = ("decoder.*",)


class _ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate_dim: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, _KERNEL, padding=_KERNEL // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=_LAYER_NORM_EPS)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # x: (B, C, T)
        y = self.dwconv(x if mask is None else x * mask).transpose(1, 2)  # (B, T, C)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + y.transpose(1, 2)


class _VocosBackbone(nn.Module):
    """ConvNeXt backbone without adaptive norm: ``(B, C_in, T) -> (B, T, dim)``."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int) -> None:
        super().__init__()
        self.embed = nn.Conv1d(input_channels, dim, _KERNEL, padding=_KERNEL // 2)
        self.norm = nn.LayerNorm(dim, eps=_LAYER_NORM_EPS)
        self.convnext = nn.ModuleList(
            [_ConvNeXtBlock(dim, intermediate_dim, 1.0 / num_layers) for _ in range(num_layers)]
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=_LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.embed(x if mask is None else x * mask)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.convnext:
            x = block(x, mask)
        return self.final_layer_norm(x.transpose(1, 2))


class _WeightNormConv1x1(nn.Module):
    """A 1x1 Conv1d stored with weight norm (``weight_g``, ``weight_v``, ``bias``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        weight = nn.Conv1d(in_channels, out_channels, 1).weight.detach()
        self.weight_v = nn.Parameter(weight.clone())
        self.weight_g = nn.Parameter(weight.norm(dim=(1, 2), keepdim=True))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-(in_channels**-0.5), in_channels**-0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch._weight_norm(self.weight_v, self.weight_g, 0)
        return F.conv1d(x, weight, self.bias)


class _FactorizedVQ(nn.Module):
    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        if input_dim == codebook_dim:
            raise ConfigError("semantic_codec: codebook_dim equal to hidden_size is not supported")
        self.in_project = _WeightNormConv1x1(input_dim, codebook_dim)
        self.out_project = _WeightNormConv1x1(codebook_dim, input_dim)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def nearest_codes(self, latents: torch.Tensor) -> torch.Tensor:
        """Index of the nearest L2-normalised code for each frame: ``(B, D, T) -> (B, T)``.

        The squared distance is written out exactly as amphion does, so near-ties resolve the same.
        """
        batch = latents.shape[0]
        encodings = F.normalize(latents.transpose(1, 2).reshape(-1, latents.shape[1]))
        codebook = F.normalize(self.codebook.weight)
        distance = (
            encodings.pow(2).sum(1, keepdim=True)
            - 2 * encodings @ codebook.t()
            + codebook.pow(2).sum(1, keepdim=True).t()
        )
        return (-distance).max(1)[1].reshape(batch, -1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, T) -> (embedding (B, C, T), codes (B, T))``."""
        z_e = self.in_project(z)  # (B, D, T)
        codes = self.nearest_codes(z_e)
        z_q = self.codebook(codes).transpose(1, 2)  # (B, D, T)
        # The straight-through form of training; not bit-identical to z_q, so kept.
        z_q = z_e + (z_q - z_e)
        return self.out_project(z_q), codes

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, T) codes -> (B, C, T)``."""
        return self.out_project(self.codebook(codes).transpose(1, 2))


class _Quantizer(nn.Module):
    """Holds the VQ under the official key path ``quantizer.quantizers.0``."""

    def __init__(self, vq: _FactorizedVQ) -> None:
        super().__init__()
        self.quantizers = nn.ModuleList([vq])


class SemanticCodec(nn.Module):
    """RepCodec's encoder and factorised VQ, with the official state-dict keys."""

    def __init__(
        self,
        *,
        hidden_size: int,
        codebook_size: int,
        codebook_dim: int,
        vocos_dim: int,
        vocos_intermediate_dim: int,
        vocos_num_layers: int,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.codebook_size = codebook_size
        self.encoder = nn.Sequential(
            _VocosBackbone(hidden_size, vocos_dim, vocos_intermediate_dim, vocos_num_layers),
            nn.Linear(vocos_dim, hidden_size),
        )
        self.quantizer = _Quantizer(_FactorizedVQ(hidden_size, codebook_size, codebook_dim))
        # RepCodec's initialisation (what a dummy build gets; a checkpoint overwrites it).
        for module in self.encoder.modules():
            if isinstance(module, nn.Conv1d | nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> SemanticCodec:
        """Build from config.yaml's ``semantic_codec`` section (defaults: the RepCodec ones)."""
        if int(section.get("num_quantizers", 1)) != 1:
            raise ConfigError("semantic_codec: only one quantizer is supported (IndexTTS2 uses one)")
        if int(section.get("downsample_scale", 1) or 1) > 1:
            raise ConfigError("semantic_codec: downsample_scale > 1 is not supported (IndexTTS2 uses 1)")
        return cls(
            hidden_size=int(section.get("hidden_size", 1024)),
            codebook_size=int(section.get("codebook_size", 8192)),
            codebook_dim=int(section.get("codebook_dim", 8)),
            vocos_dim=int(section.get("vocos_dim", 384)),
            vocos_intermediate_dim=int(section.get("vocos_intermediate_dim", 2048)),
            vocos_num_layers=int(section.get("vocos_num_layers", 12)),
        )

    def load(self, path: str | Path, *, assign: bool = False) -> None:
        """Load ``semantic_codec/model.safetensors``; the decoder's tensors are not read."""
        state = read_safetensors(path, skip=_UNUSED_KEYS)
        load_into(self, state, source=path, ignore_unexpected=_UNUSED_KEYS, assign=assign)

    @property
    def _vq(self) -> _FactorizedVQ:
        return cast(_FactorizedVQ, self.quantizer.quantizers[0])

    def quantize(
        self, features: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RepCodec.quantize: ``(B, T, W)`` features -> (``S_ref`` ``(B, T, W)``, codes ``(B, T)`` int64).

        Args:
            features: normalised w2v-BERT features (``spk_cond_emb``), padded along time.
            lengths: ``(B,)`` valid frames per clip (default: all). Padded frames of the outputs
                are not meaningful.
        """
        frames = features.shape[1]
        mask = None
        if lengths is not None and bool((lengths < frames).any()):
            positions = torch.arange(frames, device=features.device)
            mask = (positions[None, :] < lengths.to(features.device)[:, None]).unsqueeze(1)
            mask = mask.to(features.dtype)  # (B, 1, T)
        encoded = self.encoder[0](features.transpose(1, 2), mask)  # (B, T, vocos_dim)
        encoded = self.encoder[1](encoded).transpose(1, 2)  # (B, W, T)
        embedding, codes = self._vq(encoded)
        return embedding.transpose(1, 2), codes

    def vq2emb(self, codes: torch.Tensor) -> torch.Tensor:
        """Embeddings of semantic codes: ``(B, T)`` int -> ``(B, T, W)`` (channels LAST).

        The official ``quantizer.vq2emb(codes.unsqueeze(1))`` returns ``(B, W, T)`` and only works
        for a batch of one (quirk Q8); this gives the same numbers for every row of a batch,
        transposed to ``(B, T, W)``.
        """
        if codes.dim() != 2:
            raise InvalidInput(f"vq2emb expects codes of shape (batch, frames), got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise InvalidInput(
                f"semantic codes must lie in [0, {self.codebook_size}); got out-of-range codes"
            )
        return self._vq.embed(codes.long()).transpose(1, 2)


# codec.pth entries the decoder does not use: the encoder half (25 Hz features from 50 Hz ones).
_DECODER_UNUSED_KEYS = ("down.*", "encoder.*")


class CodecDecoder(nn.Module):
    """IndexTTS-2.5's ``EnhancedCodec`` decoder: 25 Hz codes -> 50 Hz content features for s2mel.

    ``decode(codes)`` is the official ``EnhancedCodec.decode``: ``vq2emb`` (codebook rows, not
    L2-normalised, through the weight-normed ``out_project``), the Vocos backbone and a Linear
    (``decoder.*``), nearest-neighbour upsampling by ``frames_per_code`` and the ``up`` Conv1d.
    """

    def __init__(
        self,
        *,
        hidden_size: int,
        codebook_size: int,
        codebook_dim: int,
        vocos_dim: int,
        vocos_intermediate_dim: int,
        vocos_num_layers: int,
        frames_per_code: int = 2,
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.codebook_size = codebook_size
        self.frames_per_code = frames_per_code
        self.quantizer = _Quantizer(_FactorizedVQ(hidden_size, codebook_size, codebook_dim))
        self.decoder = nn.Sequential(
            _VocosBackbone(hidden_size, vocos_dim, vocos_intermediate_dim, vocos_num_layers),
            nn.Linear(vocos_dim, hidden_size),
        )
        self.up = nn.Conv1d(hidden_size, hidden_size, kernel_size=3, stride=1, padding=1)
        for module in self.decoder.modules():
            if isinstance(module, nn.Conv1d | nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> CodecDecoder:
        """Build from config.yaml's ``semantic_codec`` section (defaults: ``EnhancedCodec``'s)."""
        if int(section.get("num_quantizers", 1)) != 1:
            raise ConfigError("semantic_codec: only one quantizer is supported (IndexTTS-2.5 uses one)")
        scale = int(section.get("downsample_scale", 2) or 1)
        if scale != 2:
            raise ConfigError(
                f"semantic_codec: downsample_scale {scale} is not supported (IndexTTS-2.5's codec halves "
                "the frame rate: 2)"
            )
        return cls(
            hidden_size=int(section.get("hidden_size", 1024)),
            codebook_size=int(section.get("codebook_size", 8192)),
            codebook_dim=int(section.get("codebook_dim", 8)),
            vocos_dim=int(section.get("vocos_dim", 384)),
            vocos_intermediate_dim=int(section.get("vocos_intermediate_dim", 2048)),
            vocos_num_layers=int(section.get("vocos_num_layers", 12)),
            frames_per_code=scale,
        )

    def load(self, path: str | Path, *, assign: bool = False) -> None:
        """Load ``codec.pth`` (``{'model': state dict}``) strictly; the encoder half is named and skipped.

        Raises:
            CheckpointError: unreadable file, no ``model`` entry, or a key or shape that does not fit.
        """
        data = read_torch_file(path)
        state = data.get("model") if isinstance(data, dict) else None
        if not isinstance(state, dict):
            raise CheckpointError(path, "expected a dict with a 'model' state dict (the codec.pth layout)")
        load_into(self, state, source=path, ignore_unexpected=_DECODER_UNUSED_KEYS, assign=assign)

    @property
    def _vq(self) -> _FactorizedVQ:
        return cast(_FactorizedVQ, self.quantizer.quantizers[0])

    def vq2emb(self, codes: torch.Tensor) -> torch.Tensor:
        """``(B, N)`` codes -> ``(B, W, N)`` embeddings (official ``quantizer.vq2emb``, channels first)."""
        if codes.dim() != 2:
            raise InvalidInput(f"codes must have shape (batch, codes), got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise InvalidInput(
                f"semantic codes must lie in [0, {self.codebook_size}), got out-of-range codes"
            )
        return self._vq.embed(codes.long())

    def decoded(self, embedding: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The Vocos decoder and its Linear: ``(B, W, N) -> (B, N, W)`` (``decoder_out``)."""
        hidden = self.decoder[0](embedding, mask)  # (B, N, vocos_dim)
        out: torch.Tensor = self.decoder[1](hidden)
        return out

    def decode(self, codes: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``EnhancedCodec.decode``: ``(B, N)`` codes -> ``(B, frames_per_code * N, W)`` content features.

        Args:
            codes: int codes, padded along time.
            lengths: ``(B,)`` valid codes per row (default: all). Each row then equals its own
                decode alone; frames past ``frames_per_code * lengths[b]`` are zero.
        """
        count = codes.shape[1]
        mask = None
        if lengths is not None and bool((lengths < count).any()):
            lengths = lengths.to(codes.device)
            mask = (torch.arange(count, device=codes.device)[None, :] < lengths[:, None]).unsqueeze(1)
        embedding = self.vq2emb(codes)  # (B, W, N)
        dtype = embedding.dtype
        decoded = self.decoded(embedding, None if mask is None else mask.to(dtype))  # (B, N, W)
        upsampled = F.interpolate(decoded.transpose(1, 2), scale_factor=self.frames_per_code, mode="nearest")
        if mask is not None:
            wide = mask.repeat_interleave(self.frames_per_code, dim=2).to(dtype)  # (B, 1, 2N)
            upsampled = upsampled * wide
            out: torch.Tensor = (self.up(upsampled) * wide).transpose(1, 2)
            return out
        return self.up(upsampled).transpose(1, 2)
