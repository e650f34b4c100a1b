"""IndexTTS2's text normaliser: numbers, dates, money and units spelled out; punctuation mapped.

The order of operations is the official ``TextNormalizer.normalize`` (index-tts, with its ``wetext``
backend), because the model was trained on its output:

1. ``<字|READING>`` annotations are swapped for placeholders;
2. the language is chosen per call (:func:`detect_language`);
3. Chinese: ``what's``-style contractions -> ``what is``; glossary; technical terms, tone-numbered
   pinyin and names are protected; the Chinese FST; everything restored; punctuation mapped
   (``$`` becomes ``.`` as well);
4. English: contractions; glossary; technical terms protected; the English FST; restored; punctuation
   mapped;
5. annotations restored.

That is the ``official`` mode, bit-identical to the official front end (the parity checks use it).
The default ``corrected`` mode adds :mod:`indextts2.text.numbers`' pre-pass right before each FST
(and a post-fix after the Chinese one), so that numbers the official front end misreads are read as a
careful reader says them (``¥1,234.56``, ``$1,234``, ``1990s``, phone numbers...). docs/parity.md
lists the differences.

The FSTs load once per process, on first use (:func:`indextts2.text.fst.load_fsts`).
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from indextts2.errors import InvalidInput
from indextts2.text import numbers, protect
from indextts2.text.fst import apply_fst
from indextts2.text.glossary import Glossary

__all__ = ["NormalizationMode", "TextNormalizer", "detect_language", "map_punctuation"]

NormalizationMode = Literal["corrected", "official"]

_HAS_CJK = re.compile(r"[\u4e00-\u9fff]")
_HAS_LATIN = re.compile(r"[a-zA-Z]")
_EMAIL = re.compile(r"^[a-zA-Z0-9]+@[a-zA-Z0-9]+\.[a-zA-Z]+$")
# Only these contractions of "is" are expanded (not every 's: "Let's" and possessives stay).
_IS_CONTRACTION = re.compile(r"(what|where|who|which|how|t?here|it|s?he|that|this)'s", re.IGNORECASE)

# Punctuation as the model's vocabulary expects it, in the official order: where two keys could
# match at the same place, the earlier one wins (so "，，，" becomes ",,," and never "…").
_PUNCTUATION_MAP: tuple[tuple[str, str], ...] = (
    ("：", ","),
    ("；", ","),
    (";", ","),
    ("，", ","),
    ("。", "."),
    ("！", "!"),
    ("？", "?"),
    ("\n", " "),
    ("·", "-"),
    ("、", ","),
    ("...", "…"),
    (",,,", "…"),
    ("，，，", "…"),
    ("……", "…"),
    ("“", "'"),
    ("”", "'"),
    ('"', "'"),
    ("‘", "'"),
    ("’", "'"),
    ("（", "'"),
    ("）", "'"),
    ("(", "'"),
    (")", "'"),
    ("《", "'"),
    ("》", "'"),
    ("【", "'"),
    ("】", "'"),
    ("[", "'"),
    ("]", "'"),
    ("—", "-"),
    ("～", "-"),
    ("~", "-"),
    ("「", "'"),
    ("」", "'"),
    (":", ","),
)
# Chinese text also reads '$' as '.' (the official map puts it first).
_ZH_PUNCTUATION_MAP = (("$", "."), *_PUNCTUATION_MAP)


def _compile_map(pairs: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    return re.compile("|".join(re.escape(key) for key, _ in pairs)), dict(pairs)


_EN_PUNCTUATION = _compile_map(_PUNCTUATION_MAP)
_ZH_PUNCTUATION = _compile_map(_ZH_PUNCTUATION_MAP)


def _map_punctuation(text: str, table: tuple[re.Pattern[str], dict[str, str]]) -> str:
    pattern, replacements = table
    return pattern.sub(lambda match: replacements[match.group()], text)


def map_punctuation(text: str) -> str:
    """The punctuation map alone (the official ``char_rep_map`` / ``clean_pattern``, without ``$``).

    IndexTTS-2.5 applies it to the raw text of every language before anything else.
    """
    return _map_punctuation(text, _EN_PUNCTUATION)


def detect_language(text: str) -> Literal["zh", "en"]:
    """The official choice of normaliser for one text.

    Chinese when the text has a CJK ideograph, has no Latin letter, is a bare e-mail address, or
    holds tone-numbered pinyin; English otherwise.
    """
    if _HAS_CJK.search(text) or not _HAS_LATIN.search(text) or _EMAIL.match(text):
        return "zh"
    return "zh" if protect.PINYIN_TONE_PATTERN.search(text) else "en"


class TextNormalizer:
    """Normalises text as IndexTTS2's official front end does (``enable_glossary=True``), with
    numbers read right.

    Args:
        glossary: term readings applied before normalisation (see :class:`Glossary`); ``None`` for
            none.
        mode: ``corrected`` (default): numbers the official front end misreads are read as a careful
            reader says them (:mod:`indextts2.text.numbers`); ``official``: exactly the official
            front end's output, misreadings included (parity).

    Instances are cheap and thread-safe; the FSTs behind them are loaded once per process.
    """

    def __init__(self, glossary: Glossary | None = None, *, mode: NormalizationMode = "corrected") -> None:
        if mode not in get_args(NormalizationMode):
            raise InvalidInput(f"normalisation mode {mode!r}: use 'corrected' or 'official'")
        self.glossary = glossary or Glossary()
        self.mode = mode

    def language(self, text: str) -> Literal["zh", "en"]:
        """The language :meth:`normalize` would pick for ``text``."""
        protected_text, _ = protect.protect_annotations(text)
        return detect_language(protected_text)

    def normalize(self, text: str) -> str:
        """Spell out numbers, dates, money and units, and map punctuation, for one text."""
        text, annotations = protect.protect_annotations(text)
        if detect_language(text) == "zh":
            result = self._normalize_chinese(text)
        else:
            result = self._normalize_english(text)
        return protect.restore_annotations(result, annotations)

    def _normalize_chinese(self, text: str) -> str:
        text = _IS_CONTRACTION.sub(r"\1 is", text)
        text = self.glossary.apply(text, "zh")
        text, has_terms = protect.protect_tech_terms(text.rstrip())
        text, pinyin = protect.protect_pinyin(text)
        text, names = protect.protect_names(text)
        if self.mode == "corrected":
            result = numbers.fix_zh(apply_fst(numbers.correct_zh(text), "zh"))
        else:
            result = apply_fst(text, "zh")
        result = protect.restore_names(result, names)
        result = protect.restore_pinyin(result, pinyin)
        result = protect.restore_tech_terms(result, has_terms)
        return _map_punctuation(result, _ZH_PUNCTUATION)

    def _normalize_english(self, text: str) -> str:
        text = _IS_CONTRACTION.sub(r"\1 is", text)
        text = self.glossary.apply(text, "en")
        text, has_terms = protect.protect_tech_terms(text)
        if self.mode == "corrected":
            text = numbers.correct_en(text)
        result = apply_fst(text, "en")
        result = protect.restore_tech_terms(result, has_terms)
        return _map_punctuation(result, _EN_PUNCTUATION)
