"""Japanese word segmentation for IndexTTS-2.5: MeCab (fugashi) with the unidic-lite dictionary.

The official front end re-spaces Japanese text: every run without spaces is replaced by its MeCab
words joined with single spaces (``今日はいい天気ですね.`` -> ``今日 は いい 天気 です ね .``); runs of
spaces stay as they are. It runs with ``g2p_ratio=0``, so no word is replaced by its reading. The
words MeCab finds depend on its dictionary, and the model was trained on unidic-lite's (1.0.8).

``fugashi.Tagger()`` without arguments prefers the full ``unidic`` package when it is installed,
which segments differently; so the tagger here is always built on unidic-lite's dictionary
directory and its own ``mecabrc``, and we check that MeCab really loaded that dictionary.

MeCab splits everything, the annotation markers included: ``<|SPECIAL_TOKEN_1|>`` becomes
``< | SPECIAL _ TOKEN _ 1 | >``, plain text from then on (the official quirk, kept).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

from indextts2.errors import ConfigError

__all__ = ["UNIDIC_LITE_VERSION", "JapaneseSegmenter"]

logger = logging.getLogger(__name__)

# The dictionary version the goldens (and the official lock) use.
UNIDIC_LITE_VERSION = "1.0.8"
_SPACES = re.compile("( +)")


def _unidic_lite_dir() -> str:
    try:
        import unidic_lite
    except ImportError as exc:
        raise ConfigError(
            "Japanese text needs the unidic-lite dictionary: pip install 'unidic-lite==1.0.8'"
        ) from exc
    try:
        from importlib.metadata import version

        installed = version("unidic-lite")
    except Exception:  # noqa: BLE001 - a missing distribution record only costs the version check
        installed = None
    if installed is not None and installed != UNIDIC_LITE_VERSION:
        logger.warning(
            "unidic-lite %s is installed; IndexTTS-2.5 was trained with %s (Japanese words may be split "
            "differently)",
            installed,
            UNIDIC_LITE_VERSION,
        )
    return str(unidic_lite.DICDIR)


class JapaneseSegmenter:
    """Splits Japanese text into MeCab words joined by spaces (thread-safe; one MeCab per instance).

    Raises:
        ConfigError: fugashi or unidic-lite is missing, or MeCab did not load unidic-lite.
    """

    def __init__(self) -> None:
        try:
            import fugashi
        except ImportError as exc:
            raise ConfigError("Japanese text needs fugashi: pip install 'fugashi==1.5.2'") from exc
        dictionary = _unidic_lite_dir()
        mecabrc = os.path.join(dictionary, "mecabrc")
        try:
            tagger: Any = fugashi.Tagger(f'-r "{mecabrc}" -d "{dictionary}"')
        except RuntimeError as exc:
            raise ConfigError(f"MeCab could not load unidic-lite from {dictionary}: {exc}") from exc
        loaded = [info["filename"] for info in tagger.dictionary_info]
        expected = os.path.realpath(os.path.join(dictionary, "sys.dic"))
        if [os.path.realpath(name) for name in loaded] != [expected]:
            raise ConfigError(f"MeCab loaded {loaded}, not unidic-lite's {expected}")
        self.dictionary = dictionary
        self._tagger = tagger
        self._lock = threading.Lock()

    def words(self, text: str) -> list[str]:
        """MeCab's words (surface forms) of ``text``."""
        with self._lock:
            return [word.surface for word in self._tagger(text)]

    def segment(self, text: str) -> str:
        """Each space-free run replaced by its words joined with single spaces; spaces kept."""
        return "".join(" ".join(self.words(part)) if part.strip() else part for part in _SPACES.split(text))
