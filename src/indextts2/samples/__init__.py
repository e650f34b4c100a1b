"""Data shipped with indextts2 so that a first run needs nothing else.

``sample_voice()`` is a 6-second reference clip (16 kHz mono, Chinese and English) made with
espeak-ng: ``indextts2 say`` speaks in it when no ``--ref`` or ``--voice`` is given, and the server's
web page offers it as the voice ``sample``. How it was made, and why it is free to ship, is in
``README.md`` beside it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["SAMPLE_VOICE_NAME", "sample_voice"]

SAMPLE_VOICE_NAME = "sample"
_SAMPLE_VOICE_FILE = "sample-voice.wav"


def sample_voice() -> Path:
    """The path of the shipped sample reference clip (a plain file inside the installed package)."""
    return Path(str(resources.files(__name__) / _SAMPLE_VOICE_FILE))
