"""The text front end as one object: text -> normalised text -> pieces and ids -> segments.

    frontend = TextFrontend.from_model("checkpoints/")       # bpe.model (+ glossary.yaml)
    for segment in frontend.prepare("你好。Hello world!", max_tokens_per_segment=120):
        segment.ids                                           # what the GPT reads

``prepare`` validates (empty text, length limit) and is what synthesis calls; ``analyze`` keeps every
intermediate for debugging and parity; with ``normalization="official"``, ``normalize`` and
``tokenize`` behave exactly like the official ``TextNormalizer.normalize`` and
``TextTokenizer.tokenize`` (the default ``corrected`` also reads numbers right).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from indextts2.errors import EmptyText, InvalidInput, ModelNotFound, TextTooLong
from indextts2.text.glossary import GLOSSARY_FILE_NAME, Glossary
from indextts2.text.normalize import NormalizationMode, TextNormalizer
from indextts2.text.segment import DEFAULT_MAX_TOKENS_PER_SEGMENT, split_positions
from indextts2.text.tokenize import BPE_FILE_NAME, Tokenizer, space_cjk_and_upper_case

__all__ = [
    "DEFAULT_MAX_TEXT_CHARS",
    "EMPTY_TEXT_MESSAGE",
    "Segment",
    "TextAnalysis",
    "TextFrontend",
    "check_max_text_chars",
    "check_text",
    "model_glossary",
    "sanitize",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_TEXT_CHARS = 10_000
EMPTY_TEXT_MESSAGE = "the text is empty (or only whitespace and control characters); give some text"

# C0 and C1 control characters except tab, newline and carriage return, and surrogate code points
# (a str holding one did not come from valid UTF-8): neither can be spoken, and the FST runtime and
# SentencePiece reject or mangle them.
_UNSPEAKABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def sanitize(text: str) -> str:
    """``text`` without control characters (tab, newline, CR kept) and lone surrogates."""
    cleaned = _UNSPEAKABLE.sub("", text)
    if len(cleaned) != len(text):
        logger.info("dropped %d control or surrogate characters from the text", len(text) - len(cleaned))
    return cleaned


def check_max_text_chars(max_text_chars: int) -> int:
    if isinstance(max_text_chars, bool) or not isinstance(max_text_chars, int) or max_text_chars < 1:
        raise InvalidInput(f"max_text_chars must be a whole number >= 1, got {max_text_chars!r}")
    return max_text_chars


def check_text(text: str, max_text_chars: int, *, allow_empty: bool = False) -> str:
    """Validate and clean one text: type, length limit, then :func:`sanitize`.

    Raises:
        InvalidInput: ``text`` is not a str.
        TextTooLong: it has more than ``max_text_chars`` characters.
        EmptyText: nothing but whitespace is left (unless ``allow_empty``).
    """
    if not isinstance(text, str):
        raise InvalidInput(f"the text must be a string, got {type(text).__name__}")
    if len(text) > max_text_chars:
        raise TextTooLong(len(text), max_text_chars)
    cleaned = sanitize(text)
    if not allow_empty and not cleaned.strip():
        raise EmptyText(EMPTY_TEXT_MESSAGE)
    return cleaned


def model_glossary(model_dir: Path | None, glossary: Glossary | str | Path | None) -> Glossary:
    """A model directory's ``glossary.yaml`` (when it has one) with ``glossary`` laid over it."""
    base = Glossary()
    if model_dir is not None and (model_dir / GLOSSARY_FILE_NAME).is_file():
        base = Glossary.from_yaml(model_dir / GLOSSARY_FILE_NAME)
    user = Glossary.from_yaml(glossary) if isinstance(glossary, (str, Path)) else glossary
    return base.merged(user)


@dataclass(frozen=True)
class Segment:
    """One piece of text that is synthesised in one go: its tokens and their ids.

    IndexTTS-2: SentencePiece pieces. IndexTTS-2.5: each id's bytes as text (prefix included).
    """

    tokens: tuple[str, ...]
    ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class TextAnalysis:
    """Every step of the front end for one text.

    ``sp_input`` is the string handed to SentencePiece (``None`` when nothing was encoded); for a
    text of one visible character it is the text itself, unnormalised, as in the official code.
    """

    text: str
    language: Literal["zh", "en"]
    normalized: str
    sp_input: str | None
    tokens: tuple[str, ...]
    ids: tuple[int, ...]
    unk_id: int

    @property
    def unknown_tokens(self) -> tuple[str, ...]:
        """Pieces the vocabulary does not know (read as ``<unk>`` by the model)."""
        return tuple(token for token, i in zip(self.tokens, self.ids, strict=True) if i == self.unk_id)

    def segments(
        self,
        max_tokens_per_segment: int = DEFAULT_MAX_TOKENS_PER_SEGMENT,
        *,
        quick_streaming_tokens: int = 0,
        official_quote_quirk: bool = True,
    ) -> list[Segment]:
        """The segments of this text (see :func:`indextts2.text.split_segments`)."""
        positions = split_positions(
            self.tokens,
            max_tokens_per_segment,
            quick_streaming_tokens=quick_streaming_tokens,
            official_quote_quirk=official_quote_quirk,
        )
        return [
            Segment(tuple(self.tokens[p] for p in segment), tuple(self.ids[p] for p in segment))
            for segment in positions
        ]


def _bpe_name_from_config(model_dir: Path) -> str:
    config = model_dir / "config.yaml"
    if not config.is_file():
        return BPE_FILE_NAME
    import yaml

    try:
        loaded: Any = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return BPE_FILE_NAME  # a broken config is the model loader's to report; the default name works
    dataset = loaded.get("dataset") if isinstance(loaded, Mapping) else None
    name = dataset.get("bpe_model") if isinstance(dataset, Mapping) else None
    return name if isinstance(name, str) and name else BPE_FILE_NAME


class TextFrontend:
    """Normaliser + tokenizer + segmenter of one model.

    Args:
        bpe_path: the model's ``bpe.model``; ``None`` for a front end that only normalises
            (:meth:`tokenize`, :meth:`analyze` and :meth:`prepare` then raise ``ModelNotFound``).
        glossary: term readings applied before normalisation.
        max_text_chars: longest text :meth:`prepare` and :meth:`analyze` accept.
        warn_unknown_pieces: log a warning when :meth:`prepare` meets pieces the vocabulary lacks
            (False: an info line; the dummy models' small vocabulary lacks most Chinese characters).
        normalization: ``corrected`` (numbers read right, the default) or ``official`` (exactly the
            official front end; see :class:`TextNormalizer`).
    """

    def __init__(
        self,
        bpe_path: str | Path | None = None,
        *,
        glossary: Glossary | None = None,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        warn_unknown_pieces: bool = True,
        normalization: NormalizationMode = "corrected",
    ) -> None:
        check_max_text_chars(max_text_chars)
        self.tokenizer = Tokenizer(bpe_path) if bpe_path is not None else None
        self.normalizer = TextNormalizer(glossary, mode=normalization)
        self.max_text_chars = max_text_chars
        self.warn_unknown_pieces = warn_unknown_pieces

    @classmethod
    def from_model(
        cls,
        model: str | Path,
        *,
        glossary: Glossary | str | Path | None = None,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        warn_unknown_pieces: bool = True,
        normalization: NormalizationMode = "corrected",
    ) -> TextFrontend:
        """The front end of a model directory (official layout) or of a ``bpe.model`` file.

        A directory's ``glossary.yaml`` is read when present; ``glossary`` (a :class:`Glossary` or a
        YAML path) is laid over it.

        Raises:
            ModelNotFound: ``model`` is neither a directory nor a file.
            ModelFilesMissing: the directory has no ``bpe.model``.
        """
        path = Path(model).expanduser()
        if path.is_dir():
            bpe_path = path / _bpe_name_from_config(path)
        elif path.is_file():
            bpe_path = path
        else:
            raise ModelNotFound(
                f"{model} is not a model directory or a bpe.model file "
                "(model ids of the store are not resolved here; pass a local path)"
            )
        merged = model_glossary(path if path.is_dir() else None, glossary)
        return cls(
            bpe_path,
            glossary=merged,
            max_text_chars=max_text_chars,
            warn_unknown_pieces=warn_unknown_pieces,
            normalization=normalization,
        )

    def _require_tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise ModelNotFound("this text front end has no bpe.model; build it with a model to tokenize")
        return self.tokenizer

    def check(self, text: str, *, allow_empty: bool = False) -> str:
        """Validate and clean one text: type, length limit, then :func:`sanitize`.

        Raises:
            InvalidInput: ``text`` is not a str.
            TextTooLong: it has more than ``max_text_chars`` characters.
            EmptyText: nothing but whitespace is left (unless ``allow_empty``).
        """
        return check_text(text, self.max_text_chars, allow_empty=allow_empty)

    def normalize(self, text: str) -> str:
        """The normalisation of ``text`` (no validation), in the front end's mode."""
        return self.normalizer.normalize(text)

    def tokenize(self, text: str) -> list[str]:
        """The official ``TextTokenizer.tokenize`` (normalise, space CJK, upper-case, encode), in the
        front end's normalisation mode.

        The text goes through :meth:`check` first; an empty text gives ``[]``.
        """
        return list(self.analyze(text, allow_empty=True).tokens)

    def analyze(self, text: str, *, allow_empty: bool = False) -> TextAnalysis:
        """Every step for one text, after :meth:`check`.

        Raises:
            EmptyText: nothing is left to speak (unless ``allow_empty``).
            TextTooLong, InvalidInput: see :meth:`check`.
            ModelNotFound: the front end has no bpe.model.
        """
        tokenizer = self._require_tokenizer()
        cleaned = self.check(text, allow_empty=allow_empty)
        normalized = self.normalizer.normalize(cleaned)
        sp_input: str | None
        if not cleaned:
            sp_input = None
        elif len(cleaned.strip()) == 1:
            sp_input = cleaned  # the official encode skips normalisation for one visible character
        else:
            sp_input = space_cjk_and_upper_case(normalized)
        tokens = tokenizer.encode_pieces(sp_input or "")
        if not tokens and not allow_empty:
            raise EmptyText(EMPTY_TEXT_MESSAGE)
        return TextAnalysis(
            text=text,
            language=self.normalizer.language(cleaned),
            normalized=normalized,
            sp_input=sp_input,
            tokens=tuple(tokens),
            ids=tuple(tokenizer.pieces_to_ids(tokens)),
            unk_id=tokenizer.unk_id,
        )

    def prepare(
        self,
        text: str,
        *,
        max_tokens_per_segment: int = DEFAULT_MAX_TOKENS_PER_SEGMENT,
        quick_streaming_tokens: int = 0,
    ) -> list[Segment]:
        """Text -> the segments synthesis works through, validated.

        Raises:
            EmptyText: the text has nothing to speak.
            TextTooLong: it is longer than ``max_text_chars``.
            InvalidInput: a bad ``max_tokens_per_segment`` or ``quick_streaming_tokens``.
        """
        analysis = self.analyze(text)
        if analysis.unknown_tokens:
            logger.log(
                logging.WARNING if self.warn_unknown_pieces else logging.INFO,
                "%d piece(s) of the text are not in the vocabulary and are read as <unk>: %s",
                len(analysis.unknown_tokens),
                " ".join(analysis.unknown_tokens[:20]),
            )
        return analysis.segments(max_tokens_per_segment, quick_streaming_tokens=quick_streaming_tokens)
