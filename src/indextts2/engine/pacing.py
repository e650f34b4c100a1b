"""Code counts for models that never choose to stop.

A model with random weights (``dummy:tiny``, ``dummy:full``) never samples its stop code, so left
alone every segment would decode to ``max_codes`` (30 s of noise for "Hello!"). Such a model is
paced instead: it decodes exactly the codes that speaking the text would take. The rule is the
benchmark's (``indextts2 bench``): ``codes = round(seconds x codes per second)``, spread over the
segments by their token counts. The benchmark knows its texts' seconds; for any other text they come
from :func:`speech_seconds`, a careful reader's pace. The code rate is the model's own
(``TTSModel.codes_per_second``), so a model family with another rate is paced by the same rule.

Real models are never paced: their stop code ends each segment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["codes_for_seconds", "paced_codes", "speech_seconds", "spread_codes"]

# A careful reader's pace: Mandarin ~4.5 syllables (characters) a second; English ~2.5 words of ~5
# letters a second (13 letters); a pause at clause and sentence ends.
SECONDS_PER_CJK_CHARACTER = 0.22
SECONDS_PER_LETTER = 0.075
PAUSE_SECONDS = {",": 0.15, ".": 0.35, "!": 0.35, "?": 0.35, "…": 0.35}
MIN_SECONDS = 0.3

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[^\W\d_]|\d", re.UNICODE)
_WORD_MARK = "\u2581"  # SentencePiece's word-start mark


def speech_seconds(pieces: Iterable[str]) -> float:
    """Seconds a careful reader takes to say these text pieces (the front end's tokens).

    Each CJK character is a syllable, other letters and digits are counted as letters, and clause
    and sentence ends add a pause; never less than :data:`MIN_SECONDS`.
    """
    text = "".join(pieces).replace(_WORD_MARK, " ")
    cjk = len(_CJK.findall(text))
    letters = len(_LETTER.findall(text)) - cjk
    pauses = sum(PAUSE_SECONDS.get(character, 0.0) for character in text)
    seconds = cjk * SECONDS_PER_CJK_CHARACTER + letters * SECONDS_PER_LETTER + pauses
    return max(MIN_SECONDS, seconds)


def codes_for_seconds(seconds: float, codes_per_second: float) -> int:
    """The codes ``seconds`` of speech take at ``codes_per_second`` (at least 1)."""
    return max(1, round(seconds * codes_per_second))


def spread_codes(token_counts: Sequence[int], total: int) -> list[int]:
    """``total`` codes spread over segments by their token counts (each at least 1)."""
    tokens = sum(token_counts)
    return [max(1, round(total * count / tokens)) for count in token_counts]


def paced_codes(segments: Sequence[Sequence[str]], codes_per_second: float) -> list[int]:
    """Per segment (its tokens), the codes a paced model decodes: the text's seconds, spread by tokens."""
    seconds = speech_seconds(piece for segment in segments for piece in segment)
    return spread_codes([len(segment) for segment in segments], codes_for_seconds(seconds, codes_per_second))
