"""wetext's text-normalisation FSTs: loaded once per process, applied chunk by chunk.

The official front end hands the whole text to ``wetext.Normalizer(...).normalize``. Applying an FST
costs 60-90 µs per character here and grows faster than linearly with length (2,000 characters:
~200 ms; 10,000 digits: ~3 s), so this module cuts the text into chunks at places where no wetext
token can straddle the cut, runs the FST on each chunk and joins the results. The joined result is
the one the whole-text call gives (tests compare the two):

* Chinese: wetext only runs its FST when the text holds a digit. Then the cuts fall after sentence
  and clause punctuation (``。！？；，、：`` and newlines) that has no digit on either side; the
  grammar's multi-character tokens (numbers, dates, times, money, measures, scores, ``1，000``,
  ``3：30``) need a digit there. A chunk without a digit, math operator, quote or backslash, which
  the grammar would pass through unchanged, skips the FST: that is where the speed comes from.
* English: the FST runs on every text. The cuts fall on a single space after ``!``/``?``, or after a
  lower-case word ending in a full stop, when a capital letter follows (not after ``Jan.``, ``e.``
  or ``a.m.``, which dates, times and multi-word abbreviations can continue past).
* A chunk longer than :data:`MAX_CHUNK_CHARS` without such a cut is cut at its last space or
  punctuation away from digits (English: a single space between two letters), or blindly. Only
  such run-on chunks can differ from the whole-text result, and only when the cut lands inside a
  token.

A chunk the FST fails on (wetext raises for a few inputs, e.g. an ideographic space between
digits in English, or two spaces between English words) is kept as it was, with a warning: the
official code would drop the whole text to "" (Chinese) or keep the whole text unnormalised
(English).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Literal

__all__ = ["MAX_CHUNK_CHARS", "Language", "apply_fst", "load_fsts"]

logger = logging.getLogger(__name__)

Language = Literal["zh", "en"]

# Longest chunk handed to the FST in one call: long enough that natural sentences are never cut,
# short enough that the FST's super-linear cost stays small (250 chars: ~75 µs/char).
MAX_CHUNK_CHARS = 400

_DIGIT = re.compile(r"\d")
# Chinese clause and sentence ends that the grammar never puts inside a token unless a digit touches
# them (full-width comma and colon do appear inside "1，000" and "3：30").
_ZH_BREAKS = frozenset("。！？；，、：\n")
# What makes a digit-free Chinese chunk go through the FST. Without a digit the grammar's only tokens
# that are not single characters are the math operators below, the whitelist entry "M.V.P" and
# whitelist words with 儿 (read unchanged); of single characters only '"' and '\\' change (wetext
# escapes them). tests/test_text_fst_grammar.py re-derives this from the FST itself.
_ZH_NEEDS_FST = re.compile(r'[\d"\\×÷≤≥]|<=|>=|M\.V\.P')
_EN_SENTENCE_WORD = re.compile(r"(?<![\w.'])[a-z]{2,}\.\Z")

_lock = threading.Lock()
_wetext_utils: ModuleType | None = None


def load_fsts() -> ModuleType:
    """Import wetext (which reads all its FSTs), once per process, thread-safely."""
    global _wetext_utils
    if _wetext_utils is not None:
        return _wetext_utils
    with _lock:
        if _wetext_utils is None:
            started = time.perf_counter()
            from wetext import utils as wetext_utils

            _wetext_utils = wetext_utils
            logger.info("loaded the wetext FSTs in %.0f ms", (time.perf_counter() - started) * 1000)
    return _wetext_utils


def _fst(core: str, language: Language) -> str:
    """wetext's tag -> reorder -> verbalize on one stripped chunk (its nbest=1 path)."""
    wetext_utils = load_fsts()
    try:
        tagged = wetext_utils.tag(core, language, "tn")
        reordered = wetext_utils.reorder(tagged, language, "tn")
        return str(wetext_utils.verbalize(reordered, language, "tn"))
    except Exception:  # any failure inside the third-party FST runtime keeps the chunk as written
        logger.warning("text normalisation failed for %r; keeping it as written", core[:80])
        logger.debug("wetext failure", exc_info=True)
        return core


def _can_cut_between(text: str, index: int) -> bool:
    """No digit on either side of the cut before ``text[index]``."""
    return not (index > 0 and text[index - 1].isdigit()) and not (index < len(text) and text[index].isdigit())


def _cap(chunk: str) -> Iterator[str]:
    """Cut an over-long chunk at its last space or punctuation away from digits, else blindly."""
    while len(chunk) > MAX_CHUNK_CHARS:
        cut = MAX_CHUNK_CHARS
        for index in range(MAX_CHUNK_CHARS, MAX_CHUNK_CHARS // 2, -1):
            category = unicodedata.category(chunk[index - 1])
            if category[0] in "PZ" and _can_cut_between(chunk, index):
                cut = index
                break
        yield chunk[:cut]
        chunk = chunk[cut:]
    if chunk:
        yield chunk


def _zh_chunks(text: str) -> Iterator[str]:
    start = 0
    for index, char in enumerate(text):
        if char in _ZH_BREAKS and _can_cut_between(text, index) and _can_cut_between(text, index + 1):
            yield from _cap(text[start : index + 1])
            start = index + 1
    yield from _cap(text[start:])


def _apply_zh(prepared: str) -> str:
    if not _DIGIT.search(prepared):
        return prepared  # wetext does not run its Chinese FST on text without a digit
    parts: list[str] = []
    for chunk in _zh_chunks(prepared):
        if not _ZH_NEEDS_FST.search(chunk):
            parts.append(chunk)
            continue
        core = chunk.strip()
        if not core:
            parts.append(chunk)
            continue
        leading = chunk[: len(chunk) - len(chunk.lstrip())]
        trailing = chunk[len(chunk.rstrip()) :]
        parts.append(leading + _fst(core, "zh") + trailing)
    return "".join(parts).strip()


def _en_chunks(text: str) -> Iterator[tuple[str, str]]:
    """(chunk, joiner) pairs; the joiner goes between this chunk's output and the next one's.

    A cut falls only on a single space after a sentence end and before a capital letter: there the
    FST keeps the space with the punctuation ("go. Then" -> "go. Then"), so joining the two outputs
    with one space gives the whole-text result. Line breaks and runs of spaces are left inside
    chunks: wetext treats them in several ways (and fails on some), which a cut could not reproduce.
    """
    start = 0
    for index, char in enumerate(text):
        if char != " " or index + 1 >= len(text) or not text[index + 1].isupper():
            continue
        before = text[start:index]
        if before.endswith(("!", "?")) or _EN_SENTENCE_WORD.search(before[-64:]):
            yield from _en_capped(before, " ")
            start = index + 1
    yield from _en_capped(text[start:], "")


def _en_capped(chunk: str, joiner: str) -> Iterator[tuple[str, str]]:
    """Cut a run-on chunk at a single space between two letters, away from digits, else blindly."""
    while len(chunk) > MAX_CHUNK_CHARS:
        for index in range(MAX_CHUNK_CHARS, MAX_CHUNK_CHARS // 2, -1):
            if (
                chunk[index] == " "
                and chunk[index - 1].isalpha()
                and chunk[index + 1 : index + 2].isalpha()
                and not _DIGIT.search(chunk[index - 8 : index + 9])
            ):
                yield chunk[:index], " "
                chunk = chunk[index + 1 :]
                break
        else:
            yield chunk[:MAX_CHUNK_CHARS], ""
            chunk = chunk[MAX_CHUNK_CHARS:]
    yield chunk, joiner


def _apply_en(prepared: str) -> str:
    if not prepared:
        return ""
    parts: list[str] = []
    for chunk, joiner in _en_chunks(prepared):
        core = chunk.strip()
        if core:
            parts.append(_fst(core, "en"))
        parts.append(joiner)
    return "".join(parts).strip()


_APPLY: dict[str, Callable[[str], str]] = {"zh": _apply_zh, "en": _apply_en}


def apply_fst(text: str, language: Language) -> str:
    """What ``wetext.Normalizer(lang=language, operator="tn").normalize(text)`` returns.

    (``remove_erhua`` and every other option off, as the official front end sets them.)
    """
    prepared = text.strip()
    return _APPLY[language](prepared)
