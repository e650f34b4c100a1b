"""IndexTTS-2.5's token-budget segmenter (the official ``split_text_by_tokens``), on text.

Unlike IndexTTS-2, 2.5 splits the *text* and encodes each segment afterwards as
``lang_prefix + segment``. The walk, reproduced exactly:

1. budget = ``min(max_tokens, max_text_tokens) - len(encode(lang_prefix))``, at least 1;
2. a text whose encoding fits the budget is one segment (the empty text too);
3. otherwise the text is cut into chunks: annotation spans
   ``<|SPECIAL_TOKEN_n|>...<|SPECIAL_TOKEN_n|>`` are one chunk each, whatever their length; the rest
   is cut after each of ``，。！？、；：,.!?;:`` and newline; a piece still over the budget is
   re-built character by character, starting a new chunk when the next character would not fit
   (so words can be cut: ``coff`` / ``ees``);
4. chunks are merged greedily: the next chunk joins the current segment if the two, encoded
   together, fit the budget.

Token counts are of the text alone; the prefix is encoded with it later, and BPE can merge across
the join, so an encoded segment may hold a token more or fewer than prefix + segment counted apart.
Segments keep their spaces (a segment that begins with one is encoded after the prefix's space).

Guarantees (tested): the segments concatenate to the text; a segment over the budget is a single
chunk that is an annotation span or a single character (a character of several byte tokens with a
small budget).

``quick_streaming_tokens`` is ours (the official 2.5 ignores its parameter of that name): while the
segments made so far hold at most that many tokens, a segment grows only to half the budget, so a
stream's first audio comes sooner. 0 (the default) is the official walk.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from indextts2.errors import InvalidInput

__all__ = ["TokenCounter", "check_split_arguments", "split_text_by_tokens"]

_PROTECTED = re.compile(r"<\|SPECIAL_TOKEN_\d+\|>.*?<\|SPECIAL_TOKEN_\d+\|>")
_AFTER_PUNCTUATION = re.compile(r"(?<=[，。！？、；：,\.!\?;:\n])")


class TokenCounter:
    """A token-length function that counts its calls (the goldens record the official count)."""

    def __init__(self, token_len: Callable[[str], int]) -> None:
        self._token_len = token_len
        self.calls = 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        return self._token_len(text)


def _chunks(text: str, budget: int, token_len: Callable[[str], int]) -> list[str]:
    chunks: list[str] = []
    position = 0
    spans = [(match.start(), match.end()) for match in _PROTECTED.finditer(text)]
    pieces: list[tuple[str, bool]] = []
    for start, end in spans:
        if start > position:
            pieces.append((text[position:start], False))
        pieces.append((text[start:end], True))
        position = end
    if position < len(text):
        pieces.append((text[position:], False))
    for piece, atomic in pieces:
        if atomic:
            chunks.append(piece)
            continue
        for part in _AFTER_PUNCTUATION.split(piece):
            if not part:
                continue
            if token_len(part) <= budget:
                chunks.append(part)
                continue
            current = ""
            for char in part:
                if current and token_len(current + char) > budget:
                    chunks.append(current)
                    current = char
                else:
                    current += char
            if current:
                chunks.append(current)
    return chunks


def check_split_arguments(max_tokens: int, quick_streaming_tokens: int = 0) -> None:
    """Raise InvalidInput unless ``max_tokens`` >= 1 and ``quick_streaming_tokens`` >= 0 (whole numbers)."""
    for name, value, minimum in (
        ("max_tokens_per_segment", max_tokens, 1),
        ("quick_streaming_tokens", quick_streaming_tokens, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidInput(f"{name} must be a whole number >= {minimum}, got {value!r}")


def split_text_by_tokens(
    text: str,
    max_tokens: int,
    lang_prefix: str,
    token_len: Callable[[str], int],
    *,
    max_text_tokens: int,
    quick_streaming_tokens: int = 0,
) -> list[str]:
    """The segments of ``text`` (see the module docstring).

    Args:
        text: the front end's final text.
        max_tokens: the official ``max_text_tokens_per_segment``.
        lang_prefix: ``<|code|> ``; its tokens count against the budget.
        token_len: the vocabulary's token count of a string.
        max_text_tokens: the model's limit (config ``gpt.max_text_tokens``).
        quick_streaming_tokens: see the module docstring; 0 = the official walk.

    Raises:
        InvalidInput: ``max_tokens`` < 1 or ``quick_streaming_tokens`` < 0 (or not whole numbers).
    """
    check_split_arguments(max_tokens, quick_streaming_tokens)
    budget = max(1, min(max_tokens, max_text_tokens) - token_len(lang_prefix))
    if token_len(text) <= budget:
        return [text]
    segments: list[str] = []
    current = ""
    made = 0  # tokens in the segments closed so far (counted only for quick_streaming_tokens)
    for chunk in _chunks(text, budget, token_len):
        limit = budget
        if quick_streaming_tokens and made <= quick_streaming_tokens:
            limit = max(1, budget // 2)
        if current and token_len(current + chunk) > limit:
            segments.append(current)
            if quick_streaming_tokens:
                made += token_len(current)
            current = chunk
        else:
            current += chunk
    if current:
        segments.append(current)
    return segments or [text]
