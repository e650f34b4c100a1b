"""What IndexTTS-2.5 does per language, and the text rules that do not depend on the vocabulary.

Languages (``language=`` of the front end, case-insensitive, as the official ``infer(lang=...)``):

=========  ===========================  ==========  ======================  ==========================
language   normalisation (when on)      case        Japanese segmentation   prefix / lang_id
=========  ===========================  ==========  ======================  ==========================
zh, en     TextNormalizer (wetext)      lower       no                      special token; 1, 0
ja         none (see below)             lower       yes (MeCab)             special token; 7
es         none (see below)             UPPER       no                      special token; 3
ar         none                         unchanged   no                      special token; 13
zhen       TextNormalizer (wetext)      lower       no                      plain text; 105 (common)
=========  ===========================  ==========  ======================  ==========================

These five (zh, en, ja, es, ar) are the languages the model speaks; the official web UI offers
exactly them and uses ``zh`` for mixed Chinese-English text. The official code accepts other codes
too, and so do we, doing what it does (a warning says the model was not trained on them):

* ``zhen``: normalised and lower-cased like zh, but ``<|zhen|>`` is not a special token (it is
  encoded as the seven characters) and its lang_id is ``common``;
* any other code of :data:`LANGUAGE_CODES` (``fr``, ``de``, ``yue``, ...): no normalisation, no case
  change, no segmentation; the prefix is a special token for Whisper's 99 codes (``<|yue|>`` and
  the last six are plain text) and the lang_id is the code's own row.

Codes outside that list are refused (the official code would read them as ``common``).

For ja and es the official code calls NeMo text processing, which is not in its lock file, so the
text comes back unchanged; we record that step as ``passthrough``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from indextts2.errors import InvalidInput
from indextts2.text.multilingual.vocabulary import LANGUAGE_CODES, SPECIAL_TOKEN_LANGUAGES, language_id
from indextts2.text.protect import find_annotations

__all__ = [
    "MODEL_LANGUAGES",
    "LanguageRules",
    "apply_annotations",
    "apply_case",
    "language_rules",
    "upper_case_markers",
]

# The languages IndexTTS-2.5 was trained on (the official web UI's choices).
MODEL_LANGUAGES: tuple[str, ...] = ("zh", "en", "ja", "es", "ar")
_MIXED = "zhen"
_ACCEPTED = frozenset(LANGUAGE_CODES) | {_MIXED}

Normalization = Literal["TextNormalizer", "passthrough"]
Case = Literal["lower", "upper"]


@dataclass(frozen=True)
class LanguageRules:
    """The front-end steps of one language code (lower case)."""

    code: str
    lang_id: int
    normalization: Normalization | None
    case: Case | None
    japanese_segmentation: bool

    @property
    def prefix(self) -> str:
        """What every segment is encoded after: ``<|code|>`` and a space."""
        return f"<|{self.code}|> "

    @property
    def prefix_is_special_token(self) -> bool:
        return self.code in SPECIAL_TOKEN_LANGUAGES

    @property
    def trained(self) -> bool:
        """Whether the model was trained on this language (one of :data:`MODEL_LANGUAGES`)."""
        return self.code in MODEL_LANGUAGES


def language_rules(language: str) -> LanguageRules:
    """The rules of a language code (case-insensitive).

    Raises:
        InvalidInput: the code is not one the official code knows (it names the supported ones).
    """
    if not isinstance(language, str):
        raise InvalidInput(f"language must be a string such as 'ja', got {type(language).__name__}")
    code = language.strip().lower()
    if code not in _ACCEPTED:
        raise InvalidInput(
            f"unknown language {language!r}: IndexTTS-2.5 speaks {', '.join(MODEL_LANGUAGES)}; "
            f"also accepted as the official code handles them: {_MIXED} (mixed Chinese-English) and "
            "Whisper's language codes such as fr, de, yue (no normalisation); leave it out to detect "
            "the language from the text"
        )
    normalization: Normalization | None = None
    if code in ("zh", "en", _MIXED):
        normalization = "TextNormalizer"
    elif code in ("ja", "es"):
        normalization = "passthrough"
    case: Case | None = None
    if code in ("ja", "zh", "en", _MIXED):
        case = "lower"
    elif code == "es":
        case = "upper"
    return LanguageRules(code, language_id(code), normalization, case, code == "ja")


def apply_case(text: str, rules: LanguageRules) -> str:
    if rules.case == "lower":
        return text.lower()
    if rules.case == "upper":
        return text.upper()
    return text


_KANA_RUNS = (re.compile("[\u3040-\u309f]+"), re.compile("[\u30a0-\u30ff]+"))
_IDEOGRAPH = re.compile("[\u4e00-\u9fff]")
_SPELLING_MARKER = "<|SPECIAL_TOKEN_1|>"  # the word is spelled out (CMU phonemes, Latin readings)
_PINYIN_MARKER = "<|SPECIAL_TOKEN_2|>"  # the word has a CJK ideograph


def _is_kana(reading: str) -> bool:
    """All hiragana or all katakana (a mix of the two is not kana here, as in the official code)."""
    return any(pattern.fullmatch(reading) for pattern in _KANA_RUNS)


def apply_annotations(text: str) -> str:
    """``<word|READING>`` pronunciation annotations -> what the model reads.

    The reading is upper-cased. A kana reading replaces the word, with a space on each side; any
    other reading is wrapped in ``<|SPECIAL_TOKEN_2|>`` when the word has a CJK ideograph (pinyin,
    ``<行|HANG2>``) and in ``<|SPECIAL_TOKEN_1|>`` otherwise (CMU phonemes, ``<minute|M IH1 N AH0 T>``).
    """
    parts: list[str] = []
    last = 0
    for start, end in find_annotations(text):
        word, reading = text[start + 1 : end - 1].split("|", 1)
        reading = reading.upper()
        parts.append(text[last:start])
        if _is_kana(reading):
            parts.append(f" {reading} ")
        else:
            marker = _PINYIN_MARKER if _IDEOGRAPH.search(word) else _SPELLING_MARKER
            parts.append(f"{marker}{reading}{marker}")
        last = end
    parts.append(text[last:])
    return "".join(parts)


_MARKER = re.compile(r"<\|([^|]+)\|>")


def upper_case_markers(text: str) -> str:
    """``<|x|>`` -> ``<|X|>`` (the lower-casing of the text had turned SPECIAL_TOKEN_n into lower case)."""
    return _MARKER.sub(lambda match: f"<|{match.group(1).upper()}|>", text)
