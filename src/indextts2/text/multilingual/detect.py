"""Choosing IndexTTS-2.5's language from the text when the caller names none.

The official code needs the language (its web UI defaults to ZH). Ours guesses it from the script
of the text, the readings of ``<word|READING>`` annotations left out (only the word counts). The
rule, in this order:

1. any kana (hiragana, katakana, half-width katakana; not the middle dot ・ or the long mark ー,
   which Chinese text uses too) -> ``ja``;
2. any CJK ideograph -> ``zh`` (mixed Chinese-English text too: the official web UI reads it as ZH;
   ``zhen`` is never chosen, its prefix is not a token the model knows);
3. more Arabic-script letters than Latin letters -> ``ar``;
4. Latin letters -> ``es`` or ``en``:

   * ``es`` when the text has ``ñ``, ``¿`` or ``¡`` (upper or lower case), which English never uses;
   * otherwise ``es`` when its Spanish evidence outweighs its English evidence: each word from
     :data:`SPANISH_WORDS` or holding an accented vowel ``á é í ó ú ü`` counts for Spanish, each word
     from :data:`ENGLISH_WORDS` for English (ties go to English);
   * otherwise ``en``;
5. no letter of these scripts (digits, punctuation, other scripts) -> ``zh``, the official default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from indextts2.text.protect import find_annotations

__all__ = ["ENGLISH_WORDS", "SPANISH_WORDS", "LanguageGuess", "detect_language"]

_KANA = re.compile("[\u3041-\u3096\u30a1-\u30fa\u31f0-\u31ff\uff66-\uff9d]")
_IDEOGRAPH = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_ARABIC = re.compile(
    "[\u0620-\u064a\u066e-\u06d3\u06fa-\u06ff\u0750-\u077f\u08a0-\u08c9\ufb50-\ufdff\ufe70-\ufefc]"
)
_LATIN = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]")
_SPANISH_ONLY = re.compile("[ñÑ¿¡]")
_SPANISH_ACCENT = re.compile("[áéíóúüÁÉÍÓÚÜ]")
_WORD = re.compile(r"[^\W\d_]+")

# Very frequent Spanish words that are not English words (no "a", "no", "me", "he", "son", ...).
_SPANISH_WORDS = (
    "el la los las un una unos unas de del al y o que en es por para con se su sus lo "
    "le les mi mis tu tus yo nosotros ella ellos ellas muy pero como cuando donde porque hay este "
    "esta estos estas ese esa eso aquí también ya"
)
SPANISH_WORDS: frozenset[str] = frozenset(_SPANISH_WORDS.split())
# Very frequent English words that are not Spanish words.
_ENGLISH_WORDS = (
    "the and of to is are was were be been it its you your he she we they i my our their this that "
    "these those with for on at by from have has had not do does did will would can could what which "
    "who how there here an or but if"
)
ENGLISH_WORDS: frozenset[str] = frozenset(_ENGLISH_WORDS.split())


@dataclass(frozen=True)
class LanguageGuess:
    """A detected language and the reason (for logs and the CLI)."""

    language: str
    reason: str


def _without_readings(text: str) -> str:
    parts: list[str] = []
    last = 0
    for start, end in find_annotations(text):
        parts.append(text[last:start])
        parts.append(text[start + 1 : end - 1].split("|", 1)[0])
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _latin_language(text: str) -> LanguageGuess:
    if _SPANISH_ONLY.search(text):
        return LanguageGuess("es", "Latin script with ñ, ¿ or ¡")
    spanish = english = 0
    for word in _WORD.findall(text.lower()):
        if word in SPANISH_WORDS or _SPANISH_ACCENT.search(word):
            spanish += 1
        elif word in ENGLISH_WORDS:
            english += 1
    if spanish > english:
        return LanguageGuess("es", f"Latin script, {spanish} Spanish vs {english} English word(s)")
    return LanguageGuess("en", f"Latin script, {english} English vs {spanish} Spanish word(s)")


def detect_language(text: str) -> LanguageGuess:
    """The language of ``text`` by the rule of this module's docstring."""
    text = _without_readings(text)
    if _KANA.search(text):
        return LanguageGuess("ja", "kana")
    if _IDEOGRAPH.search(text):
        return LanguageGuess("zh", "CJK ideographs without kana")
    arabic = len(_ARABIC.findall(text))
    latin = len(_LATIN.findall(text))
    if arabic > latin:
        return LanguageGuess("ar", "Arabic script")
    if latin:
        return _latin_language(text)
    return LanguageGuess("zh", "no letters; the official default")
