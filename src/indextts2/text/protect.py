"""Spans the normaliser must not touch: pronunciation annotations, pinyin, names, technical terms.

Before the FST runs, the official front end swaps such spans for placeholders and puts them back
afterwards. The placeholders and the patterns are facts of that front end (the tokens the model was
trained on depend on them), reproduced here:

* ``<字|READING>`` annotations -> ``PRONPLACEHOLDER<letters>PRONPLACEHOLDER`` (letters a, b, ... z,
  aa, ab, ...), before language detection;
* tone-numbered pinyin (``xuan4``, ``ZHONG4``) -> ``<pinyin_a>``; restored upper-cased with j/q/x + u
  written as v when the initial is j, q or x (``XUAN4`` -> ``XVAN4``), otherwise as written;
* Chinese names joined by ``·``/``-``/``—`` -> ``<n_a>``;
* technical terms with hyphens (``GPT-5-Nano``) -> the hyphens become ``<H>``, so the Chinese grammar
  does not read them as minus signs; after normalisation ``<H>`` (and spaces around it) -> ``-``.

The official code orders pinyin and names as a Python ``set`` happens to iterate (it varies from run
to run); here the longest come first, so a span that contains another is replaced whole. The result
is the same whenever no span is part of another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "ANNOTATION_PATTERN",
    "NAME_PATTERN",
    "PINYIN_TONE_PATTERN",
    "TECH_TERM_PATTERN",
    "Protected",
    "find_annotations",
    "find_names",
    "find_tech_terms",
    "protect_annotations",
    "protect_names",
    "protect_pinyin",
    "protect_tech_terms",
    "restore_annotations",
    "restore_names",
    "restore_pinyin",
    "restore_tech_terms",
]

# <字|READING>: no '|', '>' or newline in the character part, no '>' or newline in the reading.
ANNOTATION_PATTERN = re.compile(r"<([^|>\n]+)\|([^>\n]+)>")
_ANNOTATION_MARK = "PRONPLACEHOLDER"

# An optional initial, a final, then a tone 1-5 (5 = neutral); not preceded by another letter.
PINYIN_TONE_PATTERN = re.compile(
    r"(?<![a-z])((?:[bpmfdtnlgkhjqxzcsryw]|[zcs]h)?"
    r"(?:[aeiouüv]|[ae]i|u[aio]|ao|ou|i[aue]|[uüv]e|[uvü]ang?|uai|[aeiuv]n|[aeio]ng|ia[no]|i[ao]ng)"
    r"|ng|er)([1-5])",
    re.IGNORECASE,
)
_JQX_U = re.compile(r"([jqx])[uü](n|e|an)*(\d)", re.IGNORECASE)

# Two or three runs of CJK ideographs joined by a middle dot or a dash (克里斯托弗·诺兰).
NAME_PATTERN = re.compile(r"[\u4e00-\u9fff]+(?:[-·—][\u4e00-\u9fff]+){1,2}")
# The same matches, found in linear time: a match can only begin where a run of ideographs begins
# (its last run is greedy, so matches end at a run's end), and the look-behind stops the engine
# from retrying every position of a long run.
_NAME_FINDER = re.compile(r"(?<![\u4e00-\u9fff])[\u4e00-\u9fff]+(?:[-·—][\u4e00-\u9fff]+){1,2}")

# A letter, then letters/digits, then one or more '-letters/digits' groups (GPT-5-Nano, F5-TTS).
TECH_TERM_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+")
# Maximal hyphen-joined chains of letters and digits, each found once (linear time).
_ALNUM_CHAIN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+")
_LETTER = re.compile(r"[A-Za-z]")
_HYPHEN_MARK = "<H>"
_HYPHEN_MARK_WITH_SPACES = re.compile(r"\s*<H>\s*")


@dataclass
class Protected:
    """The placeholders of one call: placeholder -> original text, in replacement order."""

    spans: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.spans)


def _letters(index: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa, 27 -> ab, ... (bijective base 26)."""
    letters = ""
    while True:
        letters = chr(ord("a") + index % 26) + letters
        index = index // 26 - 1
        if index < 0:
            return letters


def find_annotations(text: str) -> list[tuple[int, int]]:
    """(start, end) of every match of :data:`ANNOTATION_PATTERN`, left to right, in linear time.

    The pattern is deterministic: from a '<', the reading part ends at the first '|', '>' or newline
    (which must be a '|'), and the annotation at the next '>' or newline (which must be a '>'). The
    regex engine finds the same spans but rescans the tail from every '<' when one is unclosed.
    """
    if "<" not in text or "|" not in text or ">" not in text:
        return []
    length = len(text)
    next_stop = [length] * (length + 1)  # first index >= i holding '|', '>' or a newline
    next_close = [length] * (length + 1)  # first index >= i holding '>' or a newline
    for index in range(length - 1, -1, -1):
        char = text[index]
        next_stop[index] = index if char in "|>\n" else next_stop[index + 1]
        next_close[index] = index if char in ">\n" else next_close[index + 1]
    spans: list[tuple[int, int]] = []
    index = text.find("<")
    while index != -1:
        bar = next_stop[index + 1]
        if bar > index + 1 and bar < length and text[bar] == "|":
            close = next_close[bar + 1]
            if close > bar + 1 and close < length and text[close] == ">":
                spans.append((index, close + 1))
                index = text.find("<", close + 1)
                continue
        index = text.find("<", index + 1)
    return spans


def protect_annotations(text: str) -> tuple[str, Protected]:
    protected = Protected()
    parts: list[str] = []
    last = 0
    for start, end in find_annotations(text):
        key = f"{_ANNOTATION_MARK}{_letters(len(protected.spans))}{_ANNOTATION_MARK}"
        protected.spans[key] = text[start:end]
        parts.append(text[last:start])
        parts.append(key)
        last = end
    parts.append(text[last:])
    return "".join(parts), protected


def restore_annotations(text: str, protected: Protected) -> str:
    for key, original in protected.spans.items():
        text = text.replace(key, original)
    return text


def _distinct_longest_first(found: list[str]) -> list[str]:
    return sorted(set(found), key=lambda span: (-len(span), span))


def _placeholder(kind: str, index: int) -> str:
    # The official code numbers with chr(ord('a') + i), which runs past 'z' into punctuation.
    return f"<{kind}_{chr(ord('a') + index)}>"


def protect_pinyin(text: str) -> tuple[str, Protected]:
    found = ["".join(groups) for groups in PINYIN_TONE_PATTERN.findall(text)]
    protected = Protected()
    for index, pinyin in enumerate(_distinct_longest_first(found)):
        key = _placeholder("pinyin", index)
        protected.spans[key] = pinyin
        text = text.replace(pinyin, key)
    return text, protected


def _spell_pinyin(pinyin: str) -> str:
    """j/q/x + u (or ü) is written with v, upper-cased, as the vocabulary has it (xuan4 -> XVAN4)."""
    if pinyin[0] not in "jqxJQX":
        return pinyin
    return _JQX_U.sub(r"\g<1>v\g<2>\g<3>", pinyin).upper()


def restore_pinyin(text: str, protected: Protected) -> str:
    for key, pinyin in protected.spans.items():
        text = text.replace(key, _spell_pinyin(pinyin))
    return text


def find_names(text: str) -> list[str]:
    """Every match of :data:`NAME_PATTERN`, left to right (in linear time)."""
    return _NAME_FINDER.findall(text)


def find_tech_terms(text: str) -> list[str]:
    """Every match of :data:`TECH_TERM_PATTERN`, left to right, in linear time.

    In a maximal chain such as ``5G-TTS-2`` the pattern's one match starts at the first letter and
    runs to the chain's end; it exists when a hyphen follows that letter.
    """
    terms = []
    for chain in _ALNUM_CHAIN.finditer(text):
        letter = _LETTER.search(chain.group())
        if letter is not None and "-" in chain.group()[letter.start() :]:
            terms.append(chain.group()[letter.start() :])
    return terms


def protect_names(text: str) -> tuple[str, Protected]:
    protected = Protected()
    for index, name in enumerate(_distinct_longest_first(find_names(text))):
        key = _placeholder("n", index)
        protected.spans[key] = name
        text = text.replace(name, key)
    return text, protected


def restore_names(text: str, protected: Protected) -> str:
    for key, name in protected.spans.items():
        text = text.replace(key, name)
    return text


def protect_tech_terms(text: str) -> tuple[str, bool]:
    """Hyphens of technical terms -> ``<H>``; returns the text and whether any term was found."""
    terms = _distinct_longest_first(find_tech_terms(text))
    for term in terms:
        text = text.replace(term, term.replace("-", _HYPHEN_MARK))
    return text, bool(terms)


def restore_tech_terms(text: str, found: bool) -> str:
    if not found:
        return text
    return _HYPHEN_MARK_WITH_SPACES.sub("-", text)
