"""IndexTTS-2.5's text vocabulary: a tiktoken byte-level BPE plus 1,673 special tokens.

The checkpoint ships the BPE as a tiktoken *ranks file* (``<base64 of the token's bytes> <rank>`` per
line; ``multilingual_zh_ja_yue_char_del.tiktoken`` in the release). The special tokens are not in the
file: the official tokenizer appends them after the ranks in a fixed order, so their ids are
``len(ranks) + position``:

    <|endoftext|> <|startoftranscript|>             2
    <|en|> <|zh|> ... <|su|>                       99  (Whisper's language tags, in its order)
    <|ASR|> ... <|/Applause|>                      11  (audio events)
    <|HAPPY|> <|SAD|> <|ANGRY|> <|NEUTRAL|>         4
    <|translate|> ... <|notimestamps|>              6  (tasks)
    <|SPECIAL_TOKEN_1|> ... <|SPECIAL_TOKEN_30|>   30  (1 and 2 mark pronunciation annotations)
    <|TTS/B|> ... <|TTS/SP13|>                     20  (vocal tokens)
    <|0.00|> ... <|30.00|>                       1501  (timestamps, 0.02 s apart)

Only the first 99 language codes are special tokens: ``<|yue|>`` or ``<|zhen|>`` in a text are
encoded as ordinary characters. The lang-embedding row of a language (``lang_id``) is its index in
the longer list :data:`LANGUAGE_CODES` (106 codes; anything else is ``common``).

Pre-tokenisation is tiktoken's regular expression (:data:`PAT_STR`, the GPT-2 pattern); encoding
always allows every special token (``allowed_special='all'``), as the official code does. We find
the special tokens ourselves and hand tiktoken only the text between them: its own ``encode(...,
allowed_special='all')`` passes all 1,673 special tokens to its core on every call (~300 µs, against
~5 µs for the text), and the segmenter counts tokens thousands of times for a long text. The result
is the same: every special token has the form ``<|x|>`` with no ``|`` inside, so at most one can
start at a position, none can start inside another ``<|...|>`` span, and taking them leftmost first
is what tiktoken does.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from indextts2.errors import CheckpointError, ModelFilesMissing

__all__ = [
    "LANGUAGE_CODES",
    "PAT_STR",
    "SPECIAL_TOKENS",
    "SPECIAL_TOKEN_LANGUAGES",
    "VOCABULARY_FILE_NAME",
    "Vocabulary",
    "find_vocabulary",
    "language_id",
    "read_config",
]

logger = logging.getLogger(__name__)

# The name the official code reads (it ignores config.yaml's bpe_model for this file).
VOCABULARY_FILE_NAME = "multilingual_zh_ja_yue_char_del.tiktoken"

PAT_STR = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Whisper's 99 language codes in Whisper's order, then the seven IndexTTS-2.5 adds. The position of a
# code is its row of the GPT's lang_embedding; the first 99 are special tokens too.
_WHISPER_CODES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no "
    "th ur hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw "
    "gl mr pa si km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl "
    "mg as tt haw ln ha ba jw su"
)
_ADDED_CODES = "yue minnan wuyu dialect zh/en en/zh common"
LANGUAGE_CODES: tuple[str, ...] = (*_WHISPER_CODES.split(), *_ADDED_CODES.split())
SPECIAL_TOKEN_LANGUAGES: frozenset[str] = frozenset(LANGUAGE_CODES[:99])
_COMMON_ID = LANGUAGE_CODES.index("common")
_LANGUAGE_IDS = {code: index for index, code in enumerate(LANGUAGE_CODES)}

_AUDIO_EVENTS = "ASR AED SER Speech /Speech BGM /BGM Laughter /Laughter Applause /Applause"
_TASKS = "translate transcribe startoflm startofprev nospeech notimestamps"
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    *(f"<|{code}|>" for code in LANGUAGE_CODES[:99]),
    *(f"<|{event}|>" for event in _AUDIO_EVENTS.split()),
    *(f"<|{emotion}|>" for emotion in ("HAPPY", "SAD", "ANGRY", "NEUTRAL")),
    *(f"<|{task}|>" for task in _TASKS.split()),
    *(f"<|SPECIAL_TOKEN_{n}|>" for n in range(1, 31)),
    *(f"<|TTS/{vocal}|>" for vocal in ("B", "O", "Q", "A", "CO", "CL", "H")),
    *(f"<|TTS/SP{n:02d}|>" for n in range(1, 14)),
    *(f"<|{n * 0.02:.2f}|>" for n in range(1501)),
)


# Every special token is a match of this pattern (their names hold no '|').
_SPECIAL_CANDIDATE = re.compile(r"<\|[^|]*\|>")


def language_id(code: str) -> int:
    """The lang_embedding row of a language code (case-insensitive); unknown codes -> ``common``."""
    return _LANGUAGE_IDS.get(code.lower(), _COMMON_ID)


def read_config(model_dir: Path) -> Mapping[str, Any]:
    """config.yaml of a model directory as a mapping; empty when it is missing or unreadable.

    A broken config is the model loader's to report; the text front end falls back to defaults.
    """
    config = model_dir / "config.yaml"
    if not config.is_file():
        return {}
    import yaml

    try:
        loaded: Any = yaml.safe_load(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, Mapping) else {}


def _configured_name(model_dir: Path) -> str | None:
    dataset = read_config(model_dir).get("dataset")
    name = dataset.get("bpe_model") if isinstance(dataset, Mapping) else None
    return name if isinstance(name, str) and name.endswith(".tiktoken") else None


def find_vocabulary(model_dir: str | Path) -> Path | None:
    """The ``.tiktoken`` ranks file of a model directory, or None (then it is no IndexTTS-2.5 model).

    config.yaml's ``dataset.bpe_model`` is used when it names a ``.tiktoken`` file that exists, else
    the official name :data:`VOCABULARY_FILE_NAME`.
    """
    root = Path(model_dir)
    for name in (_configured_name(root), VOCABULARY_FILE_NAME):
        if name is not None and (root / name).is_file():
            return root / name
    return None


def _read_ranks(path: Path) -> dict[bytes, int]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ModelFilesMissing(str(path.parent), [path.name], f"cannot read it: {exc}") from exc
    ranks: dict[bytes, int] = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError("expected two fields")
            ranks[base64.b64decode(fields[0], validate=True)] = int(fields[1])
        except (ValueError, binascii.Error) as exc:
            raise CheckpointError(
                path, f"line {number} is not '<base64 token> <rank>' ({exc}); is this a .tiktoken file?"
            ) from exc
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise CheckpointError(path, f"the ranks are not 0..{len(ranks) - 1}, each once")
    return ranks


class Vocabulary:
    """The 2.5 tokenizer: ``encode`` (special tokens allowed) and readable token strings.

    Args:
        path: the ``.tiktoken`` ranks file.

    Raises:
        ModelFilesMissing: the file cannot be read.
        CheckpointError: it is not a ranks file.
    """

    def __init__(self, path: str | Path) -> None:
        import tiktoken

        self.path = Path(path)
        ranks = _read_ranks(self.path)
        self.num_ranks = len(ranks)
        specials = {token: self.num_ranks + index for index, token in enumerate(SPECIAL_TOKENS)}
        self._special_ids = specials
        self._encoding = tiktoken.Encoding(
            name=self.path.stem,
            pat_str=PAT_STR,
            mergeable_ranks=ranks,
            special_tokens=specials,
            explicit_n_vocab=self.num_ranks + len(specials),
        )
        logger.debug("vocabulary %s: %d ranks + %d special tokens", self.path, len(ranks), len(specials))

    @property
    def n_vocab(self) -> int:
        """Ranks + special tokens (= config ``gpt.number_text_tokens`` of a matching checkpoint)."""
        return int(self._encoding.n_vocab)

    def special_id(self, token: str) -> int:
        """The id of a special token such as ``<|ja|>``."""
        return int(self._encoding.encode_single_token(token))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; every special token written in it is encoded as one.

        Equal to tiktoken's ``encode(text, allowed_special="all")`` (see the module docstring).
        """
        ids: list[int] = []
        position = 0
        for match in _SPECIAL_CANDIDATE.finditer(text):
            special = self._special_ids.get(match.group())
            if special is None:
                continue
            if match.start() > position:
                ids.extend(self._encoding.encode_ordinary(text[position : match.start()]))
            ids.append(special)
            position = match.end()
        if position < len(text):
            ids.extend(self._encoding.encode_ordinary(text[position:]))
        return ids

    def token_len(self, text: str) -> int:
        return len(self.encode(text))

    def token_strings(self, ids: list[int] | tuple[int, ...]) -> list[str]:
        """Each id's bytes as text; bytes of a partial UTF-8 character appear as ``\\xNN``."""
        return [
            self._encoding.decode_single_token_bytes(i).decode("utf-8", errors="backslashreplace")
            for i in ids
        ]
