"""The TextFrontend facade: validation, nasty input, model files, and the segments synthesis reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indextts2.errors import (
    CheckpointError,
    EmptyText,
    InvalidInput,
    ModelFilesMissing,
    ModelNotFound,
    TextTooLong,
)
from indextts2.text import Segment, TextFrontend, sanitize

pytestmark = pytest.mark.goldens


@pytest.fixture(scope="module")
def frontend(goldens: Path) -> TextFrontend:
    return TextFrontend.from_model(goldens / "checkpoint")


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", "\x00\x01\x7f", "\ud800 \udfff"])
def test_empty_text_is_a_typed_error(frontend: TextFrontend, text: str) -> None:
    with pytest.raises(EmptyText, match="empty"):
        frontend.prepare(text)


def test_text_over_the_limit_names_the_limit(frontend: TextFrontend, goldens: Path) -> None:
    with pytest.raises(TextTooLong, match="10,000") as caught:
        frontend.prepare("好" * 10_001)
    assert (caught.value.length, caught.value.limit) == (10_001, 10_000)
    small = TextFrontend.from_model(goldens / "checkpoint", max_text_chars=5)
    with pytest.raises(TextTooLong, match="limit of 5"):
        small.prepare("你好你好你好")
    assert small.prepare("你好")


def test_a_megabyte_is_refused_before_any_work(frontend: TextFrontend) -> None:
    with pytest.raises(TextTooLong):
        frontend.prepare("a" * 1_000_000)


def test_text_must_be_a_string(frontend: TextFrontend) -> None:
    with pytest.raises(InvalidInput, match="string"):
        frontend.prepare(b"bytes")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "控制\x00字符\x07和\x1b[31m转义\x9f",  # control characters (C0, ESC sequences, C1)
        "😀🎉👍🏽👨‍👩‍👧 emoji 😀" * 3,  # emoji, skin tones, ZWJ sequences
        "مرحبا بالعالم שלום עולם \u202eRTL\u202c 你好",  # right-to-left scripts and bidi controls
        "lone \ud800 surrogates \udfff 你好",
        "你" * 10_000,
        "1" * 10_000,
        "a" * 10_000,
        "哈，" * 5_000,
        "- " * 5_000,
        "😀" * 10_000,
        "\u202e" * 9_999 + "a",
        "<行|" * 3_000,
        "XING2" * 2_000,
    ],
)
def test_nasty_input_gives_segments_without_crashing(frontend: TextFrontend, text: str) -> None:
    segments = frontend.prepare(text)
    assert segments
    assert all(
        isinstance(segment, Segment) and len(segment.tokens) == len(segment.ids) for segment in segments
    )
    assert all(0 <= i < 1000 for segment in segments for i in segment.ids)


def test_sanitize_keeps_tabs_newlines_and_text() -> None:
    assert sanitize("a\tb\nc\r\x00d\ud800e") == "a\tb\nc\rde"


def test_segments_carry_the_ids_of_their_tokens(frontend: TextFrontend) -> None:
    segments = frontend.prepare("你好。今天天气不错，我们出去走走吧！Hello world.", max_tokens_per_segment=12)
    assert [list(s.tokens) for s in segments] == [
        ["▁你", "▁好", "▁.", "▁今", "▁天", "▁天", "▁气", "▁不", "▁错", "▁,"],
        ["▁我", "▁们", "▁出", "▁去", "▁走", "▁走", "▁吧", "▁!", "HE", "LLO", "▁WORLD", "."],
    ]  # the segmentation of the golden multi-segment end-to-end call
    assert [len(s) for s in segments] == [10, 12]
    tokenizer = frontend.tokenizer
    assert tokenizer is not None
    for segment in segments:
        assert tokenizer.ids_to_pieces(list(segment.ids)) == list(segment.tokens)


def test_unknown_characters_are_reported(frontend: TextFrontend) -> None:
    analysis = frontend.analyze("龘靐齉，这些字很少见。")
    assert analysis.unknown_tokens == ("龘", "靐", "齉", "些", "见")  # the golden counts 5


texts = st.text(
    alphabet=st.sampled_from(list("你好世界今天。，！？、：；“”《》（）abcXYZ 0123456789.,!?'\"-%$¥€\n")),
    min_size=1,
    max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(text=texts, limit=st.integers(min_value=1, max_value=30))
def test_strict_segments_of_any_text_partition_its_tokens(
    frontend: TextFrontend, text: str, limit: int
) -> None:
    analysis = frontend.analyze(text, allow_empty=True)
    segments = analysis.segments(limit, official_quote_quirk=False)
    assert tuple(t for segment in segments for t in segment.tokens) == analysis.tokens
    assert tuple(i for segment in segments for i in segment.ids) == analysis.ids
    assert all(len(segment) <= limit for segment in segments)


def test_from_model_accepts_a_directory_or_the_bpe_file(goldens: Path) -> None:
    by_dir = TextFrontend.from_model(goldens / "checkpoint")
    by_file = TextFrontend.from_model(goldens / "checkpoint" / "bpe.model")
    assert by_dir.tokenize("你好，世界。") == by_file.tokenize("你好，世界。")


def test_from_model_reads_the_model_glossary_and_the_users(tmp_path: Path, goldens: Path) -> None:
    (tmp_path / "bpe.model").write_bytes((goldens / "checkpoint" / "bpe.model").read_bytes())
    (tmp_path / "glossary.yaml").write_text("TTS: T T S\nAI: A I\n", encoding="utf-8")
    user = tmp_path / "mine.yaml"
    user.write_text("AI: artificial intelligence\n", encoding="utf-8")
    frontend = TextFrontend.from_model(tmp_path, glossary=user)
    assert frontend.normalize("TTS and AI") == "T T S and artificial intelligence"


def test_model_problems_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="not a model directory"):
        TextFrontend.from_model(tmp_path / "nowhere")
    with pytest.raises(ModelFilesMissing, match=r"bpe\.model"):
        TextFrontend.from_model(tmp_path)
    (tmp_path / "bpe.model").write_bytes(b"not a sentencepiece model")
    with pytest.raises(CheckpointError, match="SentencePiece"):
        TextFrontend.from_model(tmp_path)


def test_a_front_end_without_a_model_normalises_only() -> None:
    frontend = TextFrontend()
    assert frontend.normalize("数到3就开始") == "数到三就开始"
    with pytest.raises(ModelNotFound, match=r"bpe\.model"):
        frontend.prepare("你好")
