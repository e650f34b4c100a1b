"""Semantic features: SeamlessM4T input features, w2v-BERT 2.0 up to layer 17, and their normalisation.

IndexTTS2 describes speech by the hidden state after the 17th conformer layer of w2v-BERT 2.0
(``hidden_states[17]``; index 0 is the feature projection), normalised with the mean and variance
stored in ``wav2vec2bert_stats.pt``: ``(x - mean) / sqrt(var)``. The network is transformers'
``Wav2Vec2BertModel`` built with only the 17 layers that are used; the later layers of the
checkpoint are never read. The model has no final norm or adapter in this configuration, so the
last hidden state of the 17-layer model is exactly ``hidden_states[17]`` of the full one.

The input features are our own torch version of transformers' ``SeamlessM4TFeatureExtractor``
(which is numpy): a kaldi fbank of the waveform scaled to 16-bit range, per-bin normalisation,
frames padded to an even count with ``padding_value`` and stacked by two.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from indextts2.audio import kaldi_fbank
from indextts2.errors import CheckpointError, ConfigError, InvalidInput
from indextts2.model.loading import load_into, read_safetensors, read_torch_file

__all__ = [
    "SEMANTIC_LAYER",
    "FeatureExtractorSettings",
    "SemanticEncoder",
    "SemanticFeatures",
    "seamless_features",
]

logger = logging.getLogger(__name__)

# indextts/infer_v2.py, IndexTTS2.get_emb: ``hidden_states[17]`` of w2v-BERT 2.0.
SEMANTIC_LAYER = 17
# SeamlessM4TFeatureExtractor: samples scaled to the 16-bit integer range kaldi works in,
# fbank band edges 20 Hz .. Nyquist, and the epsilon inside the per-bin normalisation's sqrt.
_INT16_SCALE = 2.0**15
_FBANK_LOW_HZ = 20.0
_NORM_EPS = 1e-7
_WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class FeatureExtractorSettings:
    """The fields of w2v-BERT's ``preprocessor_config.json`` that the features depend on."""

    num_mel_bins: int = 80
    stride: int = 2
    padding_value: float = 1.0
    sample_rate: int = 16000

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureExtractorSettings:
        kind = data.get("feature_extractor_type", "SeamlessM4TFeatureExtractor")
        if kind != "SeamlessM4TFeatureExtractor":
            raise ConfigError(f"w2v-BERT preprocessor: expected SeamlessM4TFeatureExtractor, got {kind}")
        return cls(
            num_mel_bins=int(data.get("num_mel_bins", cls.num_mel_bins)),
            stride=int(data.get("stride", cls.stride)),
            padding_value=float(data.get("padding_value", cls.padding_value)),
            sample_rate=int(data.get("sampling_rate", cls.sample_rate)),
        )


@dataclass(frozen=True)
class SemanticFeatures:
    """w2v-BERT input for a batch of clips.

    Attributes:
        features: ``(B, T, num_mel_bins * stride)`` float32, padded with ``padding_value``.
        attention_mask: ``(B, T)`` int32; 0 on padding, including a half-padded last frame.
        lengths: ``(B,)`` int64, the frames each clip has on its own (its half-padded last frame
            included, as the official pipeline keeps it).
    """

    features: torch.Tensor
    attention_mask: torch.Tensor
    lengths: torch.Tensor


def _normalised_fbank(waveform: torch.Tensor, settings: FeatureExtractorSettings) -> torch.Tensor:
    """Per-bin normalised fbank of one clip, (frames, bins) float32.

    Computed in float64: the extractor works in float64 numpy, and float32 here drifts to ~5e-5.
    """
    fbank = kaldi_fbank(
        waveform.to(torch.float64) * _INT16_SCALE,
        sample_rate=settings.sample_rate,
        num_mel_bins=settings.num_mel_bins,
        low_freq=_FBANK_LOW_HZ,
    )
    if fbank.shape[0] < 2:
        raise InvalidInput("a clip needs at least two fbank frames (35 ms at 16 kHz)")
    mean = fbank.mean(dim=0, keepdim=True)
    var = fbank.var(dim=0, keepdim=True, correction=1)
    return ((fbank - mean) / torch.sqrt(var + _NORM_EPS)).to(torch.float32)


def seamless_features(
    waveforms: Sequence[torch.Tensor], *, settings: FeatureExtractorSettings | None = None
) -> SemanticFeatures:
    """``SeamlessM4TFeatureExtractor(waveforms, sampling_rate=16000, padding=True)``, in torch.

    Args:
        waveforms: one ``(samples,)`` tensor per clip, at ``settings.sample_rate``, in [-1, 1].
        settings: the extractor settings (default: those of facebook/w2v-bert-2.0).

    Returns:
        The stacked features, the attention mask and each clip's own length, on the device of
        the first waveform.
    """
    settings = settings or FeatureExtractorSettings()
    if not waveforms:
        raise InvalidInput("seamless_features needs at least one waveform")
    stride = settings.stride
    per_clip = [_normalised_fbank(w.reshape(-1), settings) for w in waveforms]
    frames = torch.tensor([f.shape[0] for f in per_clip], dtype=torch.int64)
    # The extractor pads the batch to the longest clip, rounded up to a multiple of the stride.
    longest = int(frames.max())
    padded_frames = -(-longest // stride) * stride
    device = per_clip[0].device
    batch = torch.full(
        (len(per_clip), padded_frames, settings.num_mel_bins), settings.padding_value, device=device
    )
    for row, fbank in enumerate(per_clip):
        batch[row, : fbank.shape[0]] = fbank
    features = batch.reshape(len(per_clip), padded_frames // stride, settings.num_mel_bins * stride)
    # A stacked frame counts as valid when its LAST raw frame is valid (the extractor keeps the
    # mask of every stride-th frame from index stride-1): a half-padded final frame is masked.
    mask_positions = torch.arange(stride - 1, padded_frames, stride)
    attention_mask = (mask_positions[None, :] < frames[:, None]).to(torch.int32).to(device)
    lengths = -(-frames // stride)
    return SemanticFeatures(features=features, attention_mask=attention_mask, lengths=lengths.to(device))


class SemanticEncoder(nn.Module):
    """w2v-BERT 2.0 truncated after layer 17, with the stats normalisation.

    ``model`` is a transformers ``Wav2Vec2BertModel`` whose state-dict keys are those of the
    checkpoint; ``mean`` and ``std`` come from ``wav2vec2bert_stats.pt``.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        w2v_config: Mapping[str, Any],
        *,
        preprocessor: Mapping[str, Any] | None = None,
        layer: int = SEMANTIC_LAYER,
    ) -> None:
        super().__init__()
        from transformers import Wav2Vec2BertConfig, Wav2Vec2BertModel

        available = int(w2v_config.get("num_hidden_layers", 0))
        if available < layer:
            raise ConfigError(
                f"w2v-BERT config has {available} layers; IndexTTS2 needs the output of layer {layer}"
            )
        if w2v_config.get("add_adapter") or w2v_config.get("use_intermediate_ffn_before_adapter"):
            raise ConfigError("w2v-BERT config: an adapter after the encoder is not supported")
        fields = {k: v for k, v in w2v_config.items() if k not in ("architectures", "transformers_version")}
        fields["num_hidden_layers"] = layer
        # Eager attention: the relative-key position bias needs it (what the official model ran).
        fields["attn_implementation"] = "eager"
        config = Wav2Vec2BertConfig(**fields)
        self.checkpoint_layers = available
        self.layer = layer
        self.width = int(config.hidden_size)
        self.settings = FeatureExtractorSettings.from_dict(preprocessor or {})
        if self.settings.num_mel_bins * self.settings.stride != int(config.feature_projection_input_dim):
            raise ConfigError(
                "w2v-BERT: the preprocessor gives "
                f"{self.settings.num_mel_bins * self.settings.stride} features per frame, the model "
                f"expects feature_projection_input_dim={config.feature_projection_input_dim}"
            )
        self.model = Wav2Vec2BertModel(config)
        self.register_buffer("mean", torch.zeros(self.width))
        self.register_buffer("std", torch.ones(self.width))

    @property
    def unused_layer_patterns(self) -> tuple[str, ...]:
        """Checkpoint keys of the layers after ``layer``: deliberately not read."""
        return tuple(f"encoder.layers.{i}.*" for i in range(self.layer, self.checkpoint_layers))

    def load_weights(self, path: str | Path, *, assign: bool = False) -> None:
        """Load w2v-BERT's ``model.safetensors`` (or its directory); later layers stay on disk."""
        file = Path(path)
        if file.is_dir():
            file = file / _WEIGHTS_FILE
        skip = self.unused_layer_patterns
        state = read_safetensors(file, skip=skip)
        load_into(self.model, state, source=file, ignore_unexpected=skip, assign=assign)

    def load_stats(self, path: str | Path) -> None:
        """Load ``wav2vec2bert_stats.pt``: ``{'mean': (W,), 'var': (W,)}``."""
        stats = read_torch_file(path)
        if not isinstance(stats, dict):
            raise CheckpointError(path, "expected a dict with 'mean' and 'var'")
        for key in ("mean", "var"):
            value = stats.get(key)
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(path, f"missing key {key}")
            if tuple(value.shape) != (self.width,):
                raise CheckpointError(
                    path, f"key {key} has shape {tuple(value.shape)}, the config builds ({self.width},)"
                )
        extra = sorted(set(stats) - {"mean", "var"})
        if extra:
            raise CheckpointError(path, f"unexpected key(s) {', '.join(map(str, extra))}")
        device = self.mean.device if self.mean.device.type != "meta" else torch.device("cpu")
        self.mean = stats["mean"].to(device=device, dtype=torch.float32)
        self.std = torch.sqrt(stats["var"].to(device=device, dtype=torch.float32))

    def features(self, waveforms: Sequence[torch.Tensor]) -> SemanticFeatures:
        """The model's input features for 16 kHz clips (see :func:`seamless_features`)."""
        return seamless_features(waveforms, settings=self.settings)

    def hidden_states(self, features: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``hidden_states[17]``: ``(B, T, 160) -> (B, T, W)``; padded frames hold garbage."""
        dtype = next(self.model.parameters()).dtype
        output = self.model(
            input_features=features.to(dtype=dtype), attention_mask=attention_mask, return_dict=True
        )
        hidden: torch.Tensor = output.last_hidden_state
        return hidden

    def normalize(self, hidden: torch.Tensor) -> torch.Tensor:
        return (hidden - self.mean.to(hidden.dtype)) / self.std.to(hidden.dtype)

    def forward(self, features: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised layer-17 features (``spk_cond_emb`` / ``emo_cond_emb``), ``(B, T, W)``."""
        return self.normalize(self.hidden_states(features, attention_mask))
