"""The segmenter: the official splitting rules, their quote quirk, and the properties callers rely on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indextts2.errors import InvalidInput
from indextts2.text import split_segments
from indextts2.text.segment import split_positions

# Pieces that exercise every rule: sentence ends, commas, dashes, quotes, ordinary pieces.
PIECES = [".", "!", "?", "▁.", "▁?", "▁...", ",", "▁,", "-", "'", "▁'", "▁A", "B", "▁你", "▁好", "C"]
token_lists = st.lists(st.sampled_from(PIECES), max_size=300)
limits = st.integers(min_value=1, max_value=40)


@settings(max_examples=400, deadline=None)
@given(tokens=token_lists, limit=limits, quick=st.integers(min_value=0, max_value=50))
def test_strict_segments_partition_the_tokens_within_the_limit(tokens, limit, quick) -> None:
    segments = split_segments(tokens, limit, quick_streaming_tokens=quick, official_quote_quirk=False)
    assert [piece for segment in segments for piece in segment] == tokens
    assert all(1 <= len(segment) <= limit for segment in segments)


@settings(max_examples=400, deadline=None)
@given(tokens=token_lists, limit=limits)
def test_official_segments_differ_only_by_a_repeated_quote(tokens, limit) -> None:
    """The official walk may use a quote after a sentence end twice, and go one over the limit for it."""
    positions = split_positions(tokens, limit)
    flat = [p for segment in positions for p in segment]
    deduplicated = [p for i, p in enumerate(flat) if i == 0 or flat[i - 1] != p]
    assert deduplicated == list(range(len(tokens)))
    for i in range(1, len(flat)):
        if flat[i] == flat[i - 1]:
            assert tokens[flat[i]] in ("'", "▁'")
    for segment in positions:
        assert len(segment) <= limit + 1
        if len(segment) == limit + 1:
            assert tokens[segment[-1]] in ("'", "▁'")


def test_a_quote_after_a_sentence_end_is_repeated_as_the_official_splitter_does() -> None:
    # The golden zh_quote string: 17 tokens, one segment of 18 (the closing quote twice).
    tokens = ["▁他", "▁说", "▁,", "'", "▁这", "▁件", "▁事", "▁", "情", "▁我", "▁已", "▁经"]
    tokens += ["▁知", "▁道", "▁了", "▁.", "'"]
    assert split_segments(tokens, 120) == [[*tokens, "'"]]
    assert split_segments(tokens, 120, official_quote_quirk=False) == [tokens]


def test_sentences_are_cut_then_merged_up_to_the_limit() -> None:
    sentence = ["▁A", "B", "C", "."]
    assert split_segments(sentence * 3, 8) == [sentence * 2, sentence]
    assert split_segments(sentence * 3, 12) == [sentence * 3]


def test_a_stretch_without_punctuation_is_cut_when_it_overflows() -> None:
    # Official: the cut happens when the stretch reaches limit + 1 tokens, so it leaves one behind.
    tokens = ["▁A"] * 25
    assert [len(s) for s in split_segments(tokens, 10)] == [10, 1, 10, 4]


def test_commas_split_long_clauses() -> None:
    clause = ["▁A", "B", "C", "D", "▁,"]
    segments = split_segments(clause * 6, 12)
    assert all(len(segment) <= 12 for segment in segments)
    assert [piece for segment in segments for piece in segment] == clause * 6
    assert all(segment[-1] == "▁," for segment in segments)


def test_quick_streaming_keeps_the_first_segment_short() -> None:
    sentence = ["▁A", "B", "."]
    normal = split_segments(sentence * 10, 12)
    quick = split_segments(sentence * 10, 12, quick_streaming_tokens=10)
    assert len(normal[0]) == 12
    assert len(quick[0]) == 6  # merged only up to half the limit while streaming starts


def test_no_tokens_no_segments() -> None:
    assert split_segments([], 120) == []


@pytest.mark.parametrize("limit", [0, -3, 2.5, True, "120"])
def test_a_bad_limit_is_a_typed_error(limit) -> None:
    with pytest.raises(InvalidInput, match="max_tokens_per_segment"):
        split_segments(["▁A"], limit)


def test_a_negative_quick_streaming_count_is_a_typed_error() -> None:
    with pytest.raises(InvalidInput, match="quick_streaming_tokens"):
        split_segments(["▁A"], 10, quick_streaming_tokens=-1)
