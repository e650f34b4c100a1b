"""A speaker's voice: the conditioning computed once from a reference clip, saved and reused.

A :class:`Voice` is made by :meth:`indextts2.Synthesizer.voice` and holds the tensors every request
with that speaker needs (w2v-BERT features, CAMPPlus style, prompt mel, prompt condition). Its id
is the SHA-256 of the decoded reference samples, so the same recording gives the same id whatever
its file format. Saved as safetensors with a small header naming the model it was
made for (its id, fingerprint and family); a voice of another model is refused with a clear error
rather than producing garbage. Files written before the family was recorded are IndexTTS-2 voices.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from indextts2.errors import InvalidInput
from indextts2.model.voice_types import VoiceConditioning

__all__ = ["VOICE_FORMAT", "VOICE_FORMAT_VERSION", "Voice", "content_id"]

VOICE_FORMAT = "indextts2-voice"
VOICE_FORMAT_VERSION = 1


def content_id(samples: torch.Tensor) -> str:
    """The SHA-256 (hex) of a clip's float32 samples: the identity of a reference recording."""
    data = samples.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, eq=False)
class Voice:
    """A speaker's conditioning, made by :meth:`indextts2.Synthesizer.voice`.

    Attributes:
        id: SHA-256 (hex) of the decoded reference samples.
        model_id: the model it was made with (``IndexTeam/IndexTTS-2``, a directory, ``dummy:tiny``...).
        model_fingerprint: identifies that model's voice networks; a voice only works with a model
            of the same fingerprint.
        duration: seconds of reference audio used (at most 15).
        conditioning: the tensors (a batch of one, float32, on the CPU).
        family: the model family it was made for (``IndexTTS-2``, ``IndexTTS-2.5``).
    """

    id: str
    model_id: str
    model_fingerprint: str
    duration: float
    conditioning: VoiceConditioning
    family: str = "IndexTTS-2"

    def __repr__(self) -> str:
        return f"Voice(id={self.id[:12]}..., {self.duration:.2f} s, model={self.model_id})"

    # ------------------------------------------------------------------------------ persistence

    def _metadata(self) -> dict[str, str]:
        return {
            "format": VOICE_FORMAT,
            "format_version": str(VOICE_FORMAT_VERSION),
            "voice_id": self.id,
            "model_id": self.model_id,
            "model_fingerprint": self.model_fingerprint,
            "model_family": self.family,
            "duration": repr(self.duration),
        }

    def to_bytes(self) -> bytes:
        """The voice as a safetensors file's bytes."""
        from safetensors.torch import save

        return save(self.conditioning.to_tensors(), metadata=self._metadata())

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the voice to ``path`` (safetensors), atomically. Returns the path."""
        target = Path(path)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            temporary.write_bytes(self.to_bytes())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        return target

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> Voice:
        """Read a voice saved by :meth:`to_bytes` / :meth:`save`.

        Raises:
            InvalidInput: not a voice file, an unknown format version, or missing tensors.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            tensors = load(data)
            metadata = _read_metadata(data)
        except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{source} is not a voice file (safetensors): {exc}") from exc
        if metadata.get("format") != VOICE_FORMAT:
            raise InvalidInput(f"{source} is a safetensors file but not an indextts2 voice")
        version = metadata.get("format_version")
        if version != str(VOICE_FORMAT_VERSION):
            raise InvalidInput(
                f"{source} is a voice of format version {version}; this indextts2 reads version "
                f"{VOICE_FORMAT_VERSION}: create the voice again from its reference clip"
            )
        try:
            duration = float(metadata["duration"])
            voice_id, model_id, fingerprint = (
                metadata["voice_id"],
                metadata["model_id"],
                metadata["model_fingerprint"],
            )
        except (KeyError, ValueError) as exc:
            raise InvalidInput(f"{source}: the voice header is incomplete ({exc})") from exc
        conditioning = VoiceConditioning.from_tensors(tensors)
        if conditioning.batch_size != 1:
            raise InvalidInput(f"{source} holds {conditioning.batch_size} voices; a voice file holds one")
        # Voice files written before IndexTTS-2.5 was supported have no family: they are IndexTTS-2's.
        family = metadata.get("model_family", "IndexTTS-2")
        return cls(voice_id, model_id, fingerprint, duration, conditioning, family)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Voice:
        """Read a voice file written by :meth:`save`."""
        file = Path(path)
        try:
            data = file.read_bytes()
        except FileNotFoundError as exc:
            raise InvalidInput(f"voice file {file} does not exist") from exc
        except OSError as exc:
            raise InvalidInput(f"cannot read voice file {file}: {exc.strerror or exc}") from exc
        return cls.from_bytes(data, source=str(file))


def _read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header."""
    if len(data) < 8:
        raise ValueError("file too short")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise ValueError("header longer than the file")
    header = json.loads(data[8 : 8 + size].decode("utf-8"))
    metadata = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()}
