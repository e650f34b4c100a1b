"""IndexTTS2's text front end: normalisation (wetext), BPE tokenisation, segmentation.

Reproduces the official front end (``indextts/utils/front.py``) output for output; see
:class:`TextFrontend` for the one-object API and ``indextts2 text`` for a look at each step.
"""

from __future__ import annotations

from indextts2.text.frontend import (
    DEFAULT_MAX_TEXT_CHARS,
    Segment,
    TextAnalysis,
    TextFrontend,
    sanitize,
)
from indextts2.text.fst import load_fsts
from indextts2.text.glossary import GLOSSARY_FILE_NAME, Glossary
from indextts2.text.normalize import TextNormalizer, detect_language
from indextts2.text.segment import (
    DEFAULT_MAX_TOKENS_PER_SEGMENT,
    SENTENCE_END_PIECES,
    split_segments,
)
from indextts2.text.tokenize import BPE_FILE_NAME, Tokenizer, space_cjk_and_upper_case

__all__ = [
    "BPE_FILE_NAME",
    "DEFAULT_MAX_TEXT_CHARS",
    "DEFAULT_MAX_TOKENS_PER_SEGMENT",
    "GLOSSARY_FILE_NAME",
    "SENTENCE_END_PIECES",
    "Glossary",
    "Segment",
    "TextAnalysis",
    "TextFrontend",
    "TextNormalizer",
    "Tokenizer",
    "detect_language",
    "load_fsts",
    "sanitize",
    "space_cjk_and_upper_case",
    "split_segments",
]
