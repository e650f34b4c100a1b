"""SentencePiece tokenisation with the checkpoint's ``bpe.model``, after IndexTTS2's pre-tokeniser.

The vocabulary was trained on normalised text with a space around every CJK character and Latin
letters upper-cased, so the text is prepared the same way (:func:`space_cjk_and_upper_case`) before
``Encode``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from indextts2.errors import CheckpointError, ModelFilesMissing

__all__ = ["BPE_FILE_NAME", "Tokenizer", "space_cjk_and_upper_case"]

logger = logging.getLogger(__name__)

# The tokenizer file of an IndexTTS2 model directory (config.yaml: dataset.bpe_model).
BPE_FILE_NAME = "bpe.model"

# The official pre-tokeniser's CJK ranges: Hangul Jamo, CJK radicals to Yi, Hangul syllables, CJK
# compatibility ideographs and forms, half-width forms, and the supplementary ideographic plane.
_CJK_CHAR = re.compile(
    r"([\u1100-\u11ff\u2e80-\ua4cf\ua840-\uD7AF\uF900-\uFAFF\uFE30-\uFE4F\uFF65-\uFFDC\U00020000-\U0002FFFF])"
)


def space_cjk_and_upper_case(text: str) -> str:
    """Put one space around every CJK character, upper-case the rest, trim each run.

    ``"你好世界是 hello world 的中文"`` -> ``"你 好 世 界 是 HELLO WORLD 的 中 文"``.
    """
    runs = (run.strip() for run in _CJK_CHAR.split(text.strip()))
    return " ".join(run.upper() for run in runs if run)


class Tokenizer:
    """The BPE tokenizer of one model (``bpe.model``).

    Args:
        bpe_path: the SentencePiece model file.

    Raises:
        ModelFilesMissing: the file does not exist.
        CheckpointError: it is not a SentencePiece model.
    """

    def __init__(self, bpe_path: str | Path) -> None:
        import sentencepiece

        self.path = Path(bpe_path)
        if not self.path.is_file():
            raise ModelFilesMissing(str(self.path.parent), [self.path.name], "a bpe.model is needed")
        processor = sentencepiece.SentencePieceProcessor()
        try:
            # load() reports a bad file with an OSError (older releases: RuntimeError).
            processor.Load(str(self.path))
        except (OSError, RuntimeError) as exc:
            raise CheckpointError(self.path, f"not a SentencePiece model ({exc})") from None
        self._processor = processor
        self.unk_id: int = processor.unk_id()

    @property
    def vocab_size(self) -> int:
        return int(self._processor.GetPieceSize())

    def encode_pieces(self, prepared: str) -> list[str]:
        """SentencePiece pieces of text that is already prepared (normalised and spaced)."""
        if not prepared:
            return []
        pieces: list[str] = self._processor.Encode(prepared, out_type=str)
        return pieces

    def pieces_to_ids(self, pieces: list[str]) -> list[int]:
        """Ids of pieces, as the official ``convert_tokens_to_ids`` gives them (unknown -> unk id)."""
        return [int(self._processor.PieceToId(piece)) for piece in pieces]

    def ids_to_pieces(self, ids: list[int]) -> list[str]:
        size = self.vocab_size
        return [self._processor.IdToPiece(i) if 0 <= i < size else "<out of range>" for i in ids]
