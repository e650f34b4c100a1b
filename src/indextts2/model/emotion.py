"""Emotion vectors: from the speaker clip, from an emotion clip, or from eight emotion weights.

The GPT adds one emotion vector ``(D,)`` to every conditioning latent. The official infer makes it in
three ways, reproduced by :func:`emotion_vector`:

- speaker (no emotion input): ``merge(speaker, speaker clip re-read as emotion clip, alpha=1)``;
- clip: ``merge(speaker, emotion clip, alpha)``;
- vector: the weights (scaled by alpha, truncated to 4 decimals) pick one exemplar per emotion from
  ``feat2.pt``, the row whose ``feat1.pt`` twin is most cosine-similar to the speaker's CAMPPlus
  style (or a random row), and ``sum_i w_i row_i + (1 - sum w) * base`` where ``base`` is the
  speaker-mode vector.

Here ``merge(s, e, alpha) = get_emovec(s) + alpha * (get_emovec(e) - get_emovec(s))``. Note that the
"speaker" side reads the speaker's 16 kHz features as resampled for w2v-BERT, while the "speaker
clip re-read as emotion clip" is the same file loaded again at 16 kHz by another resampler (the
goldens' quirk Q1): callers pass both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from indextts2.errors import CheckpointError, ConfigError, InvalidInput
from indextts2.model.config import ModelConfig
from indextts2.model.gpt import UnifiedVoice, merge_emotion_vectors
from indextts2.model.loading import read_torch_file
from indextts2.options import EMOTIONS, Emotion

__all__ = ["EmotionExemplars", "EmotionVector", "blend_exemplars", "emotion_vector"]

STYLE_DIM = 192  # CAMPPlus embedding size: the width of feat1.pt rows


@dataclass(frozen=True)
class EmotionExemplars:
    """The learnt exemplars of the eight emotions (``feat1.pt`` / ``feat2.pt`` split by ``emo_num``).

    Attributes:
        speaker_rows: per emotion, ``(n_i, 192)`` speaker styles (``spk_matrix``, feat1.pt).
        emotion_rows: per emotion, ``(n_i, D)`` emotion vectors (``emo_matrix``, feat2.pt).
    """

    speaker_rows: tuple[torch.Tensor, ...]
    emotion_rows: tuple[torch.Tensor, ...]

    @classmethod
    def from_tensors(
        cls, speaker_matrix: torch.Tensor, emotion_matrix: torch.Tensor, group_sizes: Sequence[int]
    ) -> EmotionExemplars:
        """Split the two matrices into the groups of ``emo_num`` (one group per emotion)."""
        sizes = [int(size) for size in group_sizes]
        if len(sizes) != len(EMOTIONS) or any(size < 1 for size in sizes):
            raise ConfigError(
                f"emo_num must list {len(EMOTIONS)} positive group sizes (one per emotion), got {sizes}"
            )
        for name, matrix in (("spk_matrix", speaker_matrix), ("emo_matrix", emotion_matrix)):
            if matrix.ndim != 2 or matrix.shape[0] != sum(sizes):
                raise CheckpointError(
                    name, f"expected {sum(sizes)} rows (sum of emo_num), got shape {tuple(matrix.shape)}"
                )
        return cls(
            speaker_rows=tuple(torch.split(speaker_matrix, sizes)),
            emotion_rows=tuple(torch.split(emotion_matrix, sizes)),
        )

    @classmethod
    def from_files(cls, config: ModelConfig, model_dir: str | Path) -> EmotionExemplars:
        """Read ``spk_matrix`` (feat1.pt) and ``emo_matrix`` (feat2.pt) named by config.yaml."""
        directory = Path(model_dir)
        matrices = []
        for key in ("spk_matrix", "emo_matrix"):
            path = directory / str(config.section(key))
            tensor = read_torch_file(path, mmap=False)
            if not isinstance(tensor, torch.Tensor):
                raise CheckpointError(path, f"expected a tensor, got {type(tensor).__name__}")
            matrices.append(tensor.float())
        return cls.from_tensors(matrices[0], matrices[1], config.section("emo_num"))

    @classmethod
    def random(cls, config: ModelConfig) -> EmotionExemplars:
        """Random exemplars for the ``dummy`` load formats (seed with ``model.dummy.seeded``)."""
        sizes = [int(size) for size in config.section("emo_num")]
        rows = sum(sizes)
        return cls.from_tensors(torch.randn(rows, STYLE_DIM), torch.randn(rows, config.gpt_dim), sizes)

    def select(self, style: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Per emotion, the index of the exemplar to use ``(8,)`` int64.

        Args:
            style: the speaker's CAMPPlus style, ``(192,)`` or ``(1, 192)``.
            generator: if given, pick each index uniformly at random from it instead (the official
                ``use_random``).
        """
        if generator is not None:
            draws = [
                torch.randint(rows.shape[0], (), generator=generator, device=generator.device)
                for rows in self.speaker_rows
            ]
            return torch.stack(draws).cpu()
        query = style.reshape(1, -1).float()
        if query.shape[1] != self.speaker_rows[0].shape[1]:
            raise InvalidInput(
                f"speaker style must have {self.speaker_rows[0].shape[1]} values, got {query.shape[1]}"
            )
        return torch.stack(
            [
                torch.argmax(F.cosine_similarity(query, rows.to(query.device).float(), dim=1)).cpu()
                for rows in self.speaker_rows
            ]
        )

    def rows(self, indices: torch.Tensor) -> torch.Tensor:
        """The chosen emotion exemplars ``(8, D)``."""
        return torch.stack(
            [group[int(index)] for group, index in zip(self.emotion_rows, indices, strict=True)]
        )


def blend_exemplars(weights: torch.Tensor, rows: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """``sum_i weights[i] * rows[i] + (1 - sum(weights)) * base``.

    Shapes: weights ``(8,)``, rows ``(8, D)``, base ``(B, D)`` -> ``(B, D)``.
    """
    weights = weights.to(rows.device, rows.dtype)
    mixed = (weights.unsqueeze(1) * rows).sum(dim=0).unsqueeze(0)
    return mixed + (1 - weights.sum()) * base


@dataclass(frozen=True)
class EmotionVector:
    """The emotion vector a request uses, and how it was made.

    Attributes:
        vector: ``(1, D)``, added to every conditioning latent.
        mode: ``"speaker"``, ``"audio"`` or ``"vector"``.
        weights: the blended weights (after alpha scaling), vector mode only.
        indices: the chosen exemplar per emotion, vector mode only.
    """

    vector: torch.Tensor
    mode: str
    weights: tuple[float, ...] | None = None
    indices: torch.Tensor | None = None


@torch.no_grad()
def emotion_vector(
    model: UnifiedVoice,
    emotion: Emotion,
    *,
    speaker_features: torch.Tensor,
    emotion_features: torch.Tensor,
    style: torch.Tensor | None = None,
    exemplars: EmotionExemplars | None = None,
    generator: torch.Generator | None = None,
    text_weights: Sequence[float] | None = None,
) -> EmotionVector:
    """The emotion vector of one request, as the official infer computes it.

    Args:
        model: the GPT.
        emotion: the request's :class:`~indextts2.options.Emotion`.
        speaker_features: the speaker clip's normalised w2v-BERT features ``(1, T, W)`` (``spk_cond_emb``).
        emotion_features: ``(1, T_e, W)``: the emotion clip's features in audio mode; otherwise the
            speaker clip read again as an emotion clip (16 kHz load, quirk Q1).
        style: the speaker's CAMPPlus style ``(1, 192)`` (vector mode).
        exemplars: the emotion exemplars (vector mode).
        generator: the request's generator (vector mode with ``random=True``).
        text_weights: the classifier's eight weights for a text emotion (required in text mode);
            like the official infer, they are used as they come (their sum may exceed 1).

    Raises:
        InvalidInput: vector mode without style or exemplars, or random choice without a generator.
    """
    speaker = model.emotion_vector(speaker_features)
    if emotion.mode == "text" and text_weights is None:
        raise InvalidInput("a text emotion needs the classifier's weights (text_weights)")
    weights = emotion.scaled_vector(text_weights if emotion.mode == "text" else None)
    if weights is None:
        alpha = emotion.alpha if emotion.mode == "audio" else 1.0
        merged = merge_emotion_vectors(speaker, model.emotion_vector(emotion_features), alpha)
        return EmotionVector(vector=merged, mode=emotion.mode)
    if exemplars is None or style is None:
        raise InvalidInput(
            "an emotion vector needs the speaker style and the emotion exemplars (feat1/feat2)"
        )
    if emotion.random and generator is None:  # vector or text mode
        raise InvalidInput("random exemplar choice needs the request's random generator")
    # Vector mode: the emotion clip is the speaker clip and alpha was spent on the weights.
    base = merge_emotion_vectors(speaker, model.emotion_vector(emotion_features), 1.0)
    indices = exemplars.select(style, generator=generator if emotion.random else None)
    rows = exemplars.rows(indices).to(base.device, base.dtype)
    blended = blend_exemplars(torch.tensor(weights, dtype=torch.float32), rows, base)
    return EmotionVector(vector=blended, mode=emotion.mode, weights=weights, indices=indices)
