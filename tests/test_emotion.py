"""Emotion vectors: exemplar choice, blending, the three modes (dummy:tiny weights)."""

from __future__ import annotations

import pytest
import torch

from indextts2.errors import CheckpointError, ConfigError, InvalidInput
from indextts2.model.config import load_preset
from indextts2.model.dummy import seeded
from indextts2.model.emotion import EmotionExemplars, blend_exemplars, emotion_vector
from indextts2.model.gpt import UnifiedVoice, build_dummy_gpt, merge_emotion_vectors
from indextts2.options import Emotion

GROUPS = (3, 17, 2, 8, 4, 5, 10, 24)  # the release emo_num


@pytest.fixture(scope="module")
def model() -> UnifiedVoice:
    return build_dummy_gpt(load_preset("tiny"))


@pytest.fixture(scope="module")
def exemplars() -> EmotionExemplars:
    with seeded("emotion-exemplars"):
        return EmotionExemplars.random(load_preset("tiny"))


@pytest.fixture(scope="module")
def features(model: UnifiedVoice) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    width = model.config.semantic_width
    return {
        "speaker": torch.randn(1, 80, width, generator=generator),
        "speaker_as_emotion": torch.randn(1, 80, width, generator=generator),
        "clip": torch.randn(1, 40, width, generator=generator),
        "style": torch.randn(1, 192, generator=generator),
    }


def test_the_most_similar_speaker_exemplar_is_chosen_per_emotion() -> None:
    generator = torch.Generator().manual_seed(1)
    style = torch.randn(192, generator=generator)
    speaker_rows = torch.randn(sum(GROUPS), 192, generator=generator)
    starts = [sum(GROUPS[:i]) for i in range(len(GROUPS))]
    wanted = [size - 1 for size in GROUPS]
    for start, index in zip(starts, wanted, strict=True):
        speaker_rows[start + index] = 3.0 * style  # cosine similarity 1
    exemplars = EmotionExemplars.from_tensors(speaker_rows, torch.randn(sum(GROUPS), 8), GROUPS)
    assert exemplars.select(style).tolist() == wanted
    chosen = exemplars.rows(exemplars.select(style))
    assert torch.equal(chosen[1], exemplars.emotion_rows[1][16])


def test_random_choice_is_reproducible_and_in_range(exemplars: EmotionExemplars) -> None:
    style = torch.randn(1, 192)
    first = exemplars.select(style, generator=torch.Generator().manual_seed(4))
    again = exemplars.select(style, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert all(0 <= int(i) < size for i, size in zip(first, GROUPS, strict=True))


def test_exemplar_files_must_fit_emo_num() -> None:
    with pytest.raises(CheckpointError, match="73 rows"):
        EmotionExemplars.from_tensors(torch.zeros(72, 192), torch.zeros(73, 8), GROUPS)
    with pytest.raises(ConfigError, match="8 positive group sizes"):
        EmotionExemplars.from_tensors(torch.zeros(73, 192), torch.zeros(73, 8), (73,))


def test_blend_keeps_the_rest_of_the_speakers_emotion() -> None:
    rows = torch.eye(8, 4)
    base = torch.full((1, 4), 2.0)
    weights = torch.tensor([0.25, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert blend_exemplars(weights, rows, base).tolist() == [[0.25 + 0.5, 0.5, 0.5 + 0.5, 0.5]]


@torch.no_grad()
def test_the_three_modes(model: UnifiedVoice, exemplars: EmotionExemplars, features) -> None:
    common = {"speaker_features": features["speaker"], "style": features["style"], "exemplars": exemplars}
    speaker = model.emotion_vector(features["speaker"])
    as_emotion = model.emotion_vector(features["speaker_as_emotion"])
    clip = model.emotion_vector(features["clip"])

    own = emotion_vector(model, Emotion(), emotion_features=features["speaker_as_emotion"], **common)
    assert own.mode == "speaker"
    assert torch.equal(own.vector, merge_emotion_vectors(speaker, as_emotion, 1.0))

    half = emotion_vector(
        model, Emotion(audio="emo.wav", alpha=0.5), emotion_features=features["clip"], **common
    )
    torch.testing.assert_close(half.vector, (speaker + clip) / 2)

    nothing = emotion_vector(
        model, Emotion(vector=[0.0] * 8), emotion_features=features["speaker_as_emotion"], **common
    )
    torch.testing.assert_close(nothing.vector, own.vector)
    sad = emotion_vector(
        model, Emotion(vector={"sad": 1.0}), emotion_features=features["speaker_as_emotion"], **common
    )
    assert sad.indices is not None
    torch.testing.assert_close(sad.vector[0], exemplars.rows(sad.indices)[2])


@torch.no_grad()
def test_vector_mode_needs_its_inputs(model: UnifiedVoice, exemplars: EmotionExemplars, features) -> None:
    kwargs = {"speaker_features": features["speaker"], "emotion_features": features["speaker_as_emotion"]}
    with pytest.raises(InvalidInput, match="speaker style"):
        emotion_vector(model, Emotion(vector={"sad": 0.5}), **kwargs)
    with pytest.raises(InvalidInput, match="random generator"):
        emotion_vector(
            model,
            Emotion(vector={"sad": 0.5}, random=True),
            style=features["style"],
            exemplars=exemplars,
            **kwargs,
        )
    picked = emotion_vector(
        model,
        Emotion(vector={"sad": 0.5}, random=True),
        style=features["style"],
        exemplars=exemplars,
        generator=torch.Generator().manual_seed(2),
        **kwargs,
    )
    assert picked.indices is not None
    assert torch.equal(
        picked.indices, exemplars.select(features["style"], generator=torch.Generator().manual_seed(2))
    )
