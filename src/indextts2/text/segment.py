"""Splitting a token sequence into segments of at most N tokens, by IndexTTS2's rules.

IndexTTS2 synthesises long text one segment at a time. The official splitter (``TextTokenizer.
split_segments``) cuts after sentence-ending pieces (``.`` ``!`` ``?`` ``▁.`` ``▁?`` ``▁...``), goes one
level finer (commas, then dashes) inside a stretch that holds them, cuts blindly at the limit when
nothing else helps, and finally merges neighbours back together while they fit. This module
reproduces that walk exactly, including one quirk the golden outputs show:

* a quote piece (``'`` or ``▁'``) right after a sentence end is appended to the closing segment AND
  starts the next one, so it appears twice, and it can take the closing segment one token over the
  limit. ``official_quote_quirk=False`` gives the strict variant: the quote moves to the closing
  segment only if it fits, and every token appears exactly once.

The walk is written over token *positions* so that the quirk (a position used twice) stays visible
to tests, and so that membership tests run in constant time per token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from indextts2.errors import InvalidInput

__all__ = [
    "DEFAULT_MAX_TOKENS_PER_SEGMENT",
    "SENTENCE_END_PIECES",
    "split_positions",
    "split_segments",
]

logger = logging.getLogger(__name__)

# infer_v2.py's default max_text_tokens_per_segment.
DEFAULT_MAX_TOKENS_PER_SEGMENT = 120

# The pieces after which the official splitter ends a sentence (TextTokenizer.punctuation_marks_tokens;
# "▁!" is left out there because the release vocabulary has no such piece).
SENTENCE_END_PIECES: frozenset[str] = frozenset({".", "!", "?", "▁.", "▁?", "▁..."})
_COMMA_PIECES: frozenset[str] = frozenset({",", "▁,"})
_DASH_PIECES: frozenset[str] = frozenset({"-"})
_QUOTE_PIECES: frozenset[str] = frozenset({"'", "▁'"})
# A sentence end closes a segment only once the segment holds more than this many tokens.
_MIN_TOKENS_BEFORE_SENTENCE_END = 2


def _cut_at_limit(current: list[int], limit: int) -> list[list[int]]:
    return [current[start : start + limit] for start in range(0, len(current), limit)]


def _walk(
    sequence: list[int],
    tokens: Sequence[str],
    split_pieces: frozenset[str],
    limit: int,
    quick_streaming_tokens: int,
    quote_quirk: bool,
) -> list[list[int]]:
    """One level of the official walk over ``sequence`` (positions into ``tokens``)."""
    if not sequence:
        return []
    splits_commas = not split_pieces.isdisjoint(_COMMA_PIECES)
    splits_dashes = not split_pieces.isdisjoint(_DASH_PIECES)
    segments: list[list[int]] = []
    current: list[int] = []
    has_comma = has_dash = False
    skip_next = False
    last = len(sequence) - 1
    for index, position in enumerate(sequence):
        if skip_next:
            skip_next = False
            continue
        piece = tokens[position]
        current.append(position)
        has_comma = has_comma or piece in _COMMA_PIECES
        has_dash = has_dash or piece in _DASH_PIECES
        if not splits_commas and has_comma:
            pieces = _walk(current, tokens, _COMMA_PIECES, limit, quick_streaming_tokens, quote_quirk)
        elif not splits_dashes and has_dash:
            pieces = _walk(current, tokens, _DASH_PIECES, limit, quick_streaming_tokens, quote_quirk)
        elif len(current) <= limit:
            if piece in split_pieces and len(current) > _MIN_TOKENS_BEFORE_SENTENCE_END:
                if index < last and tokens[sequence[index + 1]] in _QUOTE_PIECES:
                    if quote_quirk:
                        # Official: the quote joins this segment and is read again by the next step.
                        current.append(sequence[index + 1])
                    elif len(current) < limit:
                        current.append(sequence[index + 1])
                        skip_next = True
                segments.append(current)
                current, has_comma, has_dash = [], False, False
            continue
        else:
            # The official code warns here; it is routine for long clauses, so it is only info.
            logger.info(
                "a stretch of %d tokens has no place to split; cutting it every %d tokens",
                len(current),
                limit,
            )
            pieces = _cut_at_limit(current, limit)
        segments.extend(pieces)
        current, has_comma, has_dash = [], False, False
    if current:
        segments.append(current)
    return _merge(segments, limit, quick_streaming_tokens)


def _merge(segments: list[list[int]], limit: int, quick_streaming_tokens: int) -> list[list[int]]:
    """Join neighbours while they fit (the official rule, including its half-limit clause)."""
    merged: list[list[int]] = []
    seen_tokens = 0
    for segment in segments:
        seen_tokens += len(segment)
        if not segment:
            continue
        if not merged:
            merged.append(segment)
            continue
        joined = len(merged[-1]) + len(segment)
        # While a stream starts (no more than quick_streaming_tokens seen) only up to half the limit.
        streaming_start = seen_tokens <= quick_streaming_tokens
        if joined <= limit / 2 or (joined <= limit and not streaming_start):
            merged[-1] = merged[-1] + segment
        else:
            merged.append(segment)
    return merged


def split_positions(
    tokens: Sequence[str],
    max_tokens: int = DEFAULT_MAX_TOKENS_PER_SEGMENT,
    *,
    quick_streaming_tokens: int = 0,
    official_quote_quirk: bool = True,
) -> list[list[int]]:
    """Segments as lists of positions into ``tokens`` (see :func:`split_segments`)."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidInput(f"max_tokens_per_segment must be a whole number >= 1, got {max_tokens!r}")
    if isinstance(quick_streaming_tokens, bool) or not isinstance(quick_streaming_tokens, int):
        raise InvalidInput(f"quick_streaming_tokens must be a whole number, got {quick_streaming_tokens!r}")
    if quick_streaming_tokens < 0:
        raise InvalidInput(f"quick_streaming_tokens must be >= 0, got {quick_streaming_tokens}")
    return _walk(
        list(range(len(tokens))),
        tokens,
        SENTENCE_END_PIECES,
        max_tokens,
        quick_streaming_tokens,
        official_quote_quirk,
    )


def split_segments(
    tokens: Sequence[str],
    max_tokens: int = DEFAULT_MAX_TOKENS_PER_SEGMENT,
    *,
    quick_streaming_tokens: int = 0,
    official_quote_quirk: bool = True,
) -> list[list[str]]:
    """Split SentencePiece pieces into segments of at most ``max_tokens`` pieces.

    Args:
        tokens: the pieces of one text, in order.
        max_tokens: the official ``max_text_tokens_per_segment`` (default 120).
        quick_streaming_tokens: the official streaming knob: while fewer tokens than this have been
            seen, neighbours are merged only up to half the limit, so the first segment comes early.
        official_quote_quirk: reproduce the official handling of a quote after a sentence end (the
            quote is repeated, and may take a segment one token over the limit). ``False`` gives
            segments that partition ``tokens`` exactly and never exceed ``max_tokens``.

    Returns:
        The segments, each a list of pieces; ``[]`` for no tokens.

    Raises:
        InvalidInput: ``max_tokens`` is not a whole number >= 1, or ``quick_streaming_tokens`` < 0.
    """
    return [
        [tokens[position] for position in segment]
        for segment in split_positions(
            tokens,
            max_tokens,
            quick_streaming_tokens=quick_streaming_tokens,
            official_quote_quirk=official_quote_quirk,
        )
    ]
