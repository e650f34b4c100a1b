"""indextts2: IndexTTS2 (bilibili's zero-shot, emotion-controllable TTS) as a library, a CLI and a server.

The IndexTTS2 weights are not part of this package; they come under bilibili's model licence, which
users accept separately (see the README).

Public names are imported on first use, so that ``import indextts2`` (and the CLI's ``--help``)
does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from indextts2.__about__ import __version__

if TYPE_CHECKING:
    from indextts2.audio import Audio, load_audio
    from indextts2.client import Client
    from indextts2.engine import StreamingOptions
    from indextts2.errors import (
        AudioDecodeError,
        EngineFailed,
        IndexTTS2Error,
        InvalidInput,
        ModelNotFound,
        Overloaded,
        TextTooLong,
        VoiceNotFound,
    )
    from indextts2.options import EMOTIONS, Emotion, SynthesisOptions
    from indextts2.pool import SynthesizerPool
    from indextts2.synthesizer import AudioChunk, Synthesizer
    from indextts2.voice import Voice

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Synthesizer": "indextts2.synthesizer",
    "SynthesizerPool": "indextts2.pool",
    "AudioChunk": "indextts2.synthesizer",
    "Voice": "indextts2.voice",
    "Emotion": "indextts2.options",
    "EMOTIONS": "indextts2.options",
    "SynthesisOptions": "indextts2.options",
    "StreamingOptions": "indextts2.engine",
    "Audio": "indextts2.audio",
    "load_audio": "indextts2.audio",
    "Client": "indextts2.client",
    "AudioDecodeError": "indextts2.errors",
    "EngineFailed": "indextts2.errors",
    "IndexTTS2Error": "indextts2.errors",
    "InvalidInput": "indextts2.errors",
    "ModelNotFound": "indextts2.errors",
    "Overloaded": "indextts2.errors",
    "TextTooLong": "indextts2.errors",
    "VoiceNotFound": "indextts2.errors",
}

__all__ = [
    "EMOTIONS",
    "Audio",
    "AudioChunk",
    "AudioDecodeError",
    "Client",
    "Emotion",
    "EngineFailed",
    "IndexTTS2Error",
    "InvalidInput",
    "ModelNotFound",
    "Overloaded",
    "StreamingOptions",
    "SynthesisOptions",
    "Synthesizer",
    "SynthesizerPool",
    "TextTooLong",
    "Voice",
    "VoiceNotFound",
    "__version__",
    "load_audio",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'indextts2' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
