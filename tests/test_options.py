"""Emotion and GenerationOptions: what users may pass, and the official arithmetic on it."""

from __future__ import annotations

import math

import pytest

from indextts2.errors import InvalidInput
from indextts2.options import EMOTIONS, Emotion, GenerationOptions, normalize_emotion_weights


def test_emotion_modes() -> None:
    assert Emotion().mode == "speaker"
    assert Emotion(audio="emo.wav", alpha=0.6).mode == "audio"
    assert Emotion(vector={"sad": 0.3}).mode == "vector"


def test_vector_by_name_or_by_position_is_the_same() -> None:
    by_name = Emotion.from_mapping({"sad": 0.3, "surprised": 0.2})
    by_position = Emotion(vector=[0, 0, 0.3, 0, 0, 0, 0.2, 0])
    assert by_name.vector == by_position.vector == (0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.2, 0.0)
    assert by_name.weights["sad"] == 0.3
    assert list(by_name.weights) == list(EMOTIONS)


def test_alpha_scales_the_vector_with_the_official_truncation() -> None:
    # infer: int(x * alpha * 10000) / 10000 -> the goldens' "scaled emotion vectors to 0.6x" line
    emotion = Emotion(vector=[0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.2, 0.0], alpha=0.6)
    assert emotion.scaled_vector() == (0.0, 0.0, 0.18, 0.0, 0.0, 0.0, 0.12, 0.0)
    assert Emotion(vector=[1 / 3] + [0] * 7, alpha=0.5).scaled_vector() == (0.1666,) + (0.0,) * 7
    assert Emotion(vector={"calm": 0.25}).scaled_vector() == (0.0,) * 7 + (0.25,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 1.5}, "between 0 and 1"),
        ({"alpha": -0.1}, "between 0 and 1"),
        ({"alpha": math.nan}, "finite"),
        ({"vector": {"joyful": 0.2}}, "unknown emotion name"),
        ({"vector": [0.1] * 7}, "8 weights"),
        ({"vector": [-0.1] + [0] * 7}, "cannot be negative"),
        ({"vector": [math.inf] + [0] * 7}, "finite"),
        ({"vector": [0.6, 0.6] + [0] * 6}, "more than 1"),
        ({"vector": "happy"}, "mapping of emotion names"),
        ({"vector": {"sad": 0.2}, "audio": "emo.wav"}, "not both"),
        ({"random": True}, "only applies to an emotion vector"),
        ({"alpha": 0.5}, "give audio=... or vector="),
    ],
)
def test_bad_emotions_say_what_to_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Emotion(**kwargs)  # type: ignore[arg-type]


def test_weights_summing_to_one_up_to_rounding_are_accepted() -> None:
    weights = [0.2, 0.4, 0.3, 0.1, 0, 0, 0, 0]
    assert sum(weights) > 1.0  # 1.0000000000000002 in floats
    assert Emotion(vector=weights).mode == "vector"


def test_normalize_caps_the_sum_and_damps_as_the_web_ui() -> None:
    capped = normalize_emotion_weights([1.2, 0, 0, 0, 0, 0, 0, 0])
    assert capped[0] == pytest.approx(0.8)
    damped = normalize_emotion_weights({"calm": 0.4}, apply_bias=True)
    assert damped[-1] == pytest.approx(0.4 * 0.5625)
    assert normalize_emotion_weights({"calm": 0.4}, apply_bias=False)[-1] == 0.4
    with pytest.raises(InvalidInput, match="negative"):
        normalize_emotion_weights([-1, 0, 0, 0, 0, 0, 0, 0])


def test_generation_defaults_are_the_official_ones() -> None:
    options = GenerationOptions()
    assert (options.top_k, options.top_p, options.temperature) == (30, 0.8, 0.8)
    assert (options.repetition_penalty, options.num_beams, options.max_codes) == (10.0, 3, 1500)
    assert options.length_penalty == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": 0}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "integer"),
        ({"num_beams": 0}, "num_beams"),
        ({"max_codes": 0}, "max_codes"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"seed": -3}, "seed"),
        ({"seed": "7"}, "seed"),
    ],
)
def test_bad_generation_options_say_what_to_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        GenerationOptions(**kwargs)  # type: ignore[arg-type]
