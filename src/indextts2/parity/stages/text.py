"""Parity of the text front end: every string of ``inputs/texts.json`` against ``text.json``.

An IndexTTS-2.5 golden set (a ``.tiktoken`` vocabulary in its checkpoint) is compared by
:mod:`._text_multilingual`; what follows is IndexTTS-2's.

For each string: the normalised text, the SentencePiece input, the pieces, the ids, and the segments
(pieces and ids) at the two recorded limits, all compared exactly. The front end is built from the
golden checkpoint's ``bpe.model`` as the official one was (``TextNormalizer(enable_glossary=True)``,
no glossary file in that directory), with the official normalisation (``normalization="official"``:
our corrected reading of numbers differs on purpose).
"""

from __future__ import annotations

from typing import Any

from indextts2.parity.core import Check, GoldenSet, compare_exact
from indextts2.parity.stages import _text_multilingual
from indextts2.text import TextFrontend
from indextts2.text.multilingual import find_vocabulary

STAGE = "text"
# The limits text.json records segments for (keys segments_<limit> and segments_<limit>_ids).
SEGMENT_LIMITS = (120, 24)


def _compare_item(frontend: TextFrontend, item: dict[str, Any]) -> list[Check]:
    name = item["id"]
    analysis = frontend.analyze(item["text"], allow_empty=True)
    checks = [
        compare_exact(STAGE, f"{name}.normalized", analysis.normalized, item["normalized"]),
        compare_exact(STAGE, f"{name}.sp_input", str(analysis.sp_input), str(item["sp_input"])),
        compare_exact(STAGE, f"{name}.tokens", list(analysis.tokens), item["tokens"]),
        compare_exact(STAGE, f"{name}.ids", list(analysis.ids), item["ids"]),
    ]
    for limit in SEGMENT_LIMITS:
        segments = analysis.segments(limit)
        checks.append(
            compare_exact(
                STAGE,
                f"{name}.segments_{limit}",
                [" ".join(segment.tokens) for segment in segments],
                [" ".join(tokens) for tokens in item[f"segments_{limit}"]],
            )
        )
        checks.append(
            compare_exact(
                STAGE,
                f"{name}.segments_{limit}_ids",
                [list(segment.ids) for segment in segments],
                item[f"segments_{limit}_ids"],
            )
        )
    return checks


def run(golden: GoldenSet) -> list[Check]:
    if find_vocabulary(golden.checkpoint) is not None:
        return _text_multilingual.run(golden)
    recorded = golden.json("text.json")
    frontend = TextFrontend.from_model(golden.checkpoint, normalization="official")
    checks: list[Check] = []
    for item in recorded["items"]:
        checks.extend(_compare_item(frontend, item))
    return checks
