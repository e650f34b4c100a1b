"""IndexTTS-2.5's text front end as one object: text -> language, lang_id and encoded segments.

    frontend = MultilingualFrontend.from_model("checkpoints/")    # the .tiktoken file, config.yaml
    prepared = frontend.prepare("こんにちは。", language=None, max_tokens_per_segment=120)
    prepared.language, prepared.lang_id                              # "ja" (detected), 7
    for segment in prepared.segments:
        segment.ids            # tokenizer.encode("<|ja|> " + text, allowed_special="all")

The steps, in the official order (``infer_v2_5.IndexTTS2.infer``):

1. the punctuation map on the raw text, every language (``8:00`` -> ``8,00``, ``。`` -> ``.``);
2. normalisation when ``text_normalization`` is on (see :mod:`.languages`: zh/zhen/en through
   :class:`~indextts2.text.TextNormalizer`, ja/es unchanged, others none);
3. case: lower (zh, zhen, en, ja), UPPER (es), unchanged (others);
4. ``<word|READING>`` annotations (:func:`.languages.apply_annotations`);
5. Japanese only: MeCab word segmentation (:class:`.japanese.JapaneseSegmenter`);
6. ``<|x|>`` markers upper-cased;
7. the token-budget segmenter (:func:`.split.split_text_by_tokens`), each segment encoded as
   ``<|code|> `` + segment.

The model side takes :attr:`PreparedText.lang_id` (the lang_embedding row) and each segment's
``ids``; it drops ids 0 and 1 (the start/stop text tokens) and appends the stop token itself.
When no language is given it is detected (:mod:`.detect`), logged, and returned with the reason.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from indextts2.errors import EmptyText, InvalidInput, ModelFilesMissing, ModelNotFound
from indextts2.text.frontend import (
    DEFAULT_MAX_TEXT_CHARS,
    EMPTY_TEXT_MESSAGE,
    Segment,
    check_max_text_chars,
    check_text,
    model_glossary,
)
from indextts2.text.glossary import Glossary
from indextts2.text.multilingual.detect import LanguageGuess, detect_language
from indextts2.text.multilingual.japanese import JapaneseSegmenter
from indextts2.text.multilingual.languages import (
    MODEL_LANGUAGES,
    LanguageRules,
    apply_annotations,
    apply_case,
    language_rules,
    upper_case_markers,
)
from indextts2.text.multilingual.split import TokenCounter, check_split_arguments, split_text_by_tokens
from indextts2.text.multilingual.vocabulary import (
    VOCABULARY_FILE_NAME,
    Vocabulary,
    find_vocabulary,
    read_config,
)
from indextts2.text.normalize import NormalizationMode, TextNormalizer, map_punctuation
from indextts2.text.segment import DEFAULT_MAX_TOKENS_PER_SEGMENT

__all__ = ["DEFAULT_MAX_TEXT_TOKENS", "MultilingualAnalysis", "MultilingualFrontend", "PreparedText", "Split"]

logger = logging.getLogger(__name__)

# config.yaml gpt.max_text_tokens of the release (the text position table holds this + 2).
DEFAULT_MAX_TEXT_TOKENS = 600


@functools.lru_cache(maxsize=1)
def _japanese() -> JapaneseSegmenter:
    return JapaneseSegmenter()


@dataclass(frozen=True)
class Split:
    """One text split at one budget: the segment texts, the strings encoded, the segments."""

    texts: tuple[str, ...]
    encoded: tuple[str, ...]
    segments: tuple[Segment, ...]
    token_len_calls: int


@dataclass(frozen=True)
class PreparedText:
    """What synthesis needs from the text: the language, its lang_id and the encoded segments.

    ``detected`` is None when the caller named the language, else the guess and its reason.
    ``texts[i]`` is the text of ``segments[i]`` without the prefix.
    """

    language: str
    lang_id: int
    lang_prefix: str
    detected: LanguageGuess | None
    texts: tuple[str, ...]
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class MultilingualAnalysis:
    """Every step of the front end for one text (``None`` for a step that did not run).

    ``normalization`` names the step 2 that ran: ``"TextNormalizer"``, ``"passthrough"`` (ja, es:
    the official NeMo call returns the text) or None (off, or a language without one).
    """

    text: str
    language: str
    detected: LanguageGuess | None
    text_normalization: bool
    after_clean: str
    normalization: str | None
    after_normalization: str | None
    after_case: str
    after_annotations: str
    after_japanese: str | None
    final_text: str
    lang_prefix: str
    lang_id: int
    _frontend: MultilingualFrontend = field(repr=False, compare=False)

    def split(self, max_tokens_per_segment: int, *, quick_streaming_tokens: int = 0) -> Split:
        """The segments at one budget (see :func:`indextts2.text.multilingual.split_text_by_tokens`)."""
        vocabulary = self._frontend.vocabulary
        counter = TokenCounter(vocabulary.token_len)
        texts = split_text_by_tokens(
            self.final_text,
            max_tokens_per_segment,
            self.lang_prefix,
            counter,
            max_text_tokens=self._frontend.max_text_tokens,
            quick_streaming_tokens=quick_streaming_tokens,
        )
        encoded = tuple(self.lang_prefix + text for text in texts)
        segments = []
        for string in encoded:
            ids = vocabulary.encode(string)
            segments.append(Segment(tuple(vocabulary.token_strings(ids)), tuple(ids)))
        return Split(tuple(texts), encoded, tuple(segments), counter.calls)


class MultilingualFrontend:
    """Vocabulary + normaliser + Japanese segmenter + segmenter of one IndexTTS-2.5 model.

    Args:
        vocabulary: the model's :class:`Vocabulary` (or the path of its ``.tiktoken`` file).
        glossary: term readings applied by the zh/en normaliser.
        max_text_chars: longest text :meth:`prepare` and :meth:`analyze` accept.
        max_text_tokens: the model's ``gpt.max_text_tokens`` (no segment budget exceeds it).
        normalization: how the zh/en normaliser reads numbers: ``corrected`` (as a careful reader
            says them, the default) or ``official`` (exactly the official front end; parity).
    """

    languages: tuple[str, ...] = MODEL_LANGUAGES

    def __init__(
        self,
        vocabulary: Vocabulary | str | Path,
        *,
        glossary: Glossary | None = None,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        max_text_tokens: int = DEFAULT_MAX_TEXT_TOKENS,
        normalization: NormalizationMode = "corrected",
    ) -> None:
        self.max_text_chars = check_max_text_chars(max_text_chars)
        if isinstance(max_text_tokens, bool) or not isinstance(max_text_tokens, int) or max_text_tokens < 1:
            raise InvalidInput(f"max_text_tokens must be a whole number >= 1, got {max_text_tokens!r}")
        self.max_text_tokens = max_text_tokens
        self.vocabulary = vocabulary if isinstance(vocabulary, Vocabulary) else Vocabulary(vocabulary)
        self.normalizer = TextNormalizer(glossary, mode=normalization)
        self._warned: set[str] = set()

    @classmethod
    def from_model(
        cls,
        model_dir: str | Path,
        *,
        glossary: Glossary | str | Path | None = None,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        normalization: NormalizationMode = "corrected",
    ) -> MultilingualFrontend:
        """The front end of an IndexTTS-2.5 model directory (official layout).

        Reads the ``.tiktoken`` vocabulary (config ``dataset.bpe_model`` or the official name),
        ``gpt.max_text_tokens`` from config.yaml and ``glossary.yaml`` when present; ``glossary``
        (a :class:`Glossary` or a YAML path) is laid over it.

        Raises:
            ModelNotFound: ``model_dir`` is not a directory.
            ModelFilesMissing: it has no ``.tiktoken`` vocabulary (an IndexTTS-2 model, say).
        """
        root = Path(model_dir).expanduser()
        if not root.is_dir():
            raise ModelNotFound(f"{model_dir} is not a model directory")
        path = find_vocabulary(root)
        if path is None:
            raise ModelFilesMissing(
                str(root),
                [VOCABULARY_FILE_NAME],
                "it is no IndexTTS-2.5 model (an IndexTTS-2 model uses indextts2.text.TextFrontend)",
            )
        gpt = read_config(root).get("gpt")
        limit = gpt.get("max_text_tokens") if isinstance(gpt, Mapping) else None
        return cls(
            path,
            glossary=model_glossary(root, glossary),
            max_text_chars=max_text_chars,
            max_text_tokens=limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_TEXT_TOKENS,
            normalization=normalization,
        )

    def check(self, text: str, *, allow_empty: bool = False) -> str:
        """Validate and clean one text (see :func:`indextts2.text.check_text`)."""
        return check_text(text, self.max_text_chars, allow_empty=allow_empty)

    def resolve_language(self, language: str | None, text: str) -> tuple[LanguageRules, LanguageGuess | None]:
        """The rules of ``language``, or of the language detected in ``text`` when it is None.

        Raises:
            InvalidInput: an unknown language code.
        """
        if language is None:
            guess = detect_language(text)
            logger.info("no language given: chose %s (%s)", guess.language, guess.reason)
            return language_rules(guess.language), guess
        rules = language_rules(language)
        if not rules.trained and rules.code not in self._warned:
            self._warned.add(rules.code)  # once per code: a server would repeat it on every request
            logger.warning(
                "IndexTTS-2.5 was trained on %s; %r is handled as the official code does "
                "(prefix %r, lang_id %d, %s)",
                ", ".join(MODEL_LANGUAGES),
                language,
                rules.prefix,
                rules.lang_id,
                "normalised like zh" if rules.normalization else "no normalisation",
            )
        return rules, None

    def analyze(
        self,
        text: str,
        *,
        language: str | None = None,
        text_normalization: bool = True,
        allow_empty: bool = False,
    ) -> MultilingualAnalysis:
        """Every step for one text, after :meth:`check`.

        Raises:
            EmptyText: nothing is left to speak (unless ``allow_empty``).
            TextTooLong, InvalidInput: see :meth:`check`; an unknown language; a non-bool
                ``text_normalization``.
        """
        if not isinstance(text_normalization, bool):
            raise InvalidInput(f"text_normalization must be True or False, got {text_normalization!r}")
        cleaned = self.check(text, allow_empty=allow_empty)
        rules, guess = self.resolve_language(language, cleaned)
        after_clean = map_punctuation(cleaned)
        normalization: str | None = rules.normalization if text_normalization else None
        after_normalization: str | None = None
        if normalization == "TextNormalizer":
            after_normalization = self.normalizer.normalize(after_clean)
        elif normalization == "passthrough":
            after_normalization = after_clean
        normalized = after_normalization if after_normalization is not None else after_clean
        after_case = apply_case(normalized, rules)
        after_annotations = apply_annotations(after_case)
        after_japanese = _japanese().segment(after_annotations) if rules.japanese_segmentation else None
        final_text = upper_case_markers(after_japanese if after_japanese is not None else after_annotations)
        if not allow_empty and not final_text.strip():
            raise EmptyText(EMPTY_TEXT_MESSAGE)
        return MultilingualAnalysis(
            text=text,
            language=rules.code,
            detected=guess,
            text_normalization=text_normalization,
            after_clean=after_clean,
            normalization=normalization,
            after_normalization=after_normalization,
            after_case=after_case,
            after_annotations=after_annotations,
            after_japanese=after_japanese,
            final_text=final_text,
            lang_prefix=rules.prefix,
            lang_id=rules.lang_id,
            _frontend=self,
        )

    def prepare(
        self,
        text: str,
        *,
        language: str | None = None,
        max_tokens_per_segment: int = DEFAULT_MAX_TOKENS_PER_SEGMENT,
        text_normalization: bool = True,
        quick_streaming_tokens: int = 0,
    ) -> PreparedText:
        """Text -> the language and the segments synthesis works through, validated.

        Args:
            text: what to say.
            language: a code such as ``"ja"`` (case-insensitive; see :mod:`.languages`), or None to
                detect it from the script (:mod:`.detect`).
            max_tokens_per_segment: the official ``max_text_tokens_per_segment`` (prefix included).
            text_normalization: spell out numbers etc. (zh, en) as the official default does.
            quick_streaming_tokens: a shorter first segment for streaming (ours; 0 = official).

        Raises:
            EmptyText: the text has nothing to speak.
            TextTooLong: it is longer than ``max_text_chars``.
            InvalidInput: an unknown language, a bad ``max_tokens_per_segment`` or
                ``quick_streaming_tokens``, a non-bool ``text_normalization``.
        """
        check_split_arguments(max_tokens_per_segment, quick_streaming_tokens)
        analysis = self.analyze(text, language=language, text_normalization=text_normalization)
        split = analysis.split(max_tokens_per_segment, quick_streaming_tokens=quick_streaming_tokens)
        return PreparedText(
            language=analysis.language,
            lang_id=analysis.lang_id,
            lang_prefix=analysis.lang_prefix,
            detected=analysis.detected,
            texts=split.texts,
            segments=split.segments,
        )
