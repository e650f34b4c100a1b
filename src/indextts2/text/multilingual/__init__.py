"""IndexTTS-2.5's text front end: tiktoken vocabulary, per-language rules, MeCab, token budgets.

One object does it all (:class:`MultilingualFrontend`); its interface for synthesis is

    frontend = MultilingualFrontend.from_model(model_dir)
    prepared = frontend.prepare(text, language=None | "zh" | "en" | "ja" | "es" | "ar" | ...,
                                max_tokens_per_segment=120, text_normalization=True)
    prepared.language, prepared.lang_id, prepared.detected     # chosen code, lang_embedding row
    prepared.segments[i].ids                                    # encode(lang_prefix + text_i)

and ``analyze`` keeps every intermediate (parity, ``indextts2 text``). Modules:

* :mod:`.vocabulary`: the ``.tiktoken`` ranks + 1,673 special tokens, language codes and ids;
* :mod:`.languages`: per-language rules, annotations, case, marker upper-casing;
* :mod:`.japanese`: MeCab (fugashi) on unidic-lite, guarded against the full ``unidic``;
* :mod:`.detect`: the language from the script when none is named;
* :mod:`.split`: the token-budget segmenter;
* :mod:`.frontend`: the object above.
"""

from __future__ import annotations

from indextts2.text.multilingual.detect import LanguageGuess, detect_language
from indextts2.text.multilingual.frontend import (
    DEFAULT_MAX_TEXT_TOKENS,
    MultilingualAnalysis,
    MultilingualFrontend,
    PreparedText,
    Split,
)
from indextts2.text.multilingual.japanese import JapaneseSegmenter
from indextts2.text.multilingual.languages import MODEL_LANGUAGES, LanguageRules, language_rules
from indextts2.text.multilingual.split import split_text_by_tokens
from indextts2.text.multilingual.vocabulary import (
    LANGUAGE_CODES,
    SPECIAL_TOKENS,
    VOCABULARY_FILE_NAME,
    Vocabulary,
    find_vocabulary,
    language_id,
)

__all__ = [
    "DEFAULT_MAX_TEXT_TOKENS",
    "LANGUAGE_CODES",
    "MODEL_LANGUAGES",
    "SPECIAL_TOKENS",
    "VOCABULARY_FILE_NAME",
    "JapaneseSegmenter",
    "LanguageGuess",
    "LanguageRules",
    "MultilingualAnalysis",
    "MultilingualFrontend",
    "PreparedText",
    "Split",
    "Vocabulary",
    "detect_language",
    "find_vocabulary",
    "language_id",
    "language_rules",
    "split_text_by_tokens",
]
