"""Emotion from text: the official reply parsing (goldens) and the Qwen3 model path (tiny, random)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indextts2.errors import ModelFilesMissing
from indextts2.model.qwen_emotion import (
    EMOTION_LABELS,
    MAX_SCORE,
    EmotionModelError,
    QwenEmotion,
    parse_emotion_reply,
)


def golden_cases(goldens: Path) -> list[dict]:
    cases: list[dict] = json.loads((goldens / "qwen_emotion.json").read_text(encoding="utf-8"))["cases"]
    return cases


@pytest.mark.goldens
def test_every_golden_reply_parses_like_the_official_code(goldens: Path) -> None:
    cases = golden_cases(goldens)
    assert len(cases) >= 15
    for case in cases:
        if "error" in case:
            with pytest.raises(EmotionModelError):
                parse_emotion_reply(case["raw_reply"], emotion_text=case["emo_text"])
            continue
        result = parse_emotion_reply(case["raw_reply"], emotion_text=case["emo_text"])
        assert result == pytest.approx(case["result"]), case["id"]
        assert list(result) == [name for name, _ in EMOTION_LABELS], case["id"]
        assert QwenEmotion.as_vector(result) == pytest.approx(case["vector"]), case["id"]


def test_scores_are_clamped_and_a_blank_reply_means_calm() -> None:
    result = parse_emotion_reply('{"愤怒": 9, "悲伤": -1}', emotion_text="x")
    assert result["angry"] == MAX_SCORE
    assert result["sad"] == 0.0
    assert parse_emotion_reply("[1, 2, 3]", emotion_text="x")["calm"] == 1.0


@pytest.fixture(scope="module")
def tiny_model() -> QwenEmotion:
    return QwenEmotion.dummy()


def test_dummy_model_classifies_a_batch_deterministically(tiny_model: QwenEmotion) -> None:
    texts = ["今天真开心！", "I am so angry at this.", "平静"]
    first = tiny_model.classify(texts)
    assert len(first) == 3
    for scores in first:
        assert list(scores) == [name for name, _ in EMOTION_LABELS]
        assert all(0.0 <= value <= MAX_SCORE for value in scores.values())
    assert tiny_model.classify(texts) == first
    alone = tiny_model.classify([texts[1]])
    assert alone[0] == first[1]  # left padding does not change a row's reply


def test_prompt_uses_the_official_system_prompt_without_thinking(tiny_model: QwenEmotion) -> None:
    prompt = tiny_model._prompt("你好")
    assert "文本情感分类" in prompt
    assert prompt.endswith("<think>\n\n</think>\n\n")


def test_saved_model_loads_back_from_a_directory(tiny_model: QwenEmotion, tmp_path: Path) -> None:
    tiny_model.model.save_pretrained(tmp_path)
    tiny_model.tokenizer.save_pretrained(tmp_path)
    loaded = QwenEmotion.from_pretrained(tmp_path, max_new_tokens=tiny_model.max_new_tokens)
    assert loaded.replies(["好消息"]) == tiny_model.replies(["好消息"])


def test_missing_model_directory_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelFilesMissing, match="emotion"):
        QwenEmotion.from_pretrained(tmp_path / "qwen0.6bemo4-merge")
