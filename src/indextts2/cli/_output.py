"""Where ``indextts2 say`` puts the audio: a file (format from its suffix) or stdout (``-o -``).

The rule about existing files: a file you name with ``-o`` is replaced; the default name (``out.wav``)
never replaces anything, it asks for ``-o`` instead. A file is written only once the whole audio is
there (to a temporary name, then renamed), so a failed or interrupted run leaves no half-written file
and keeps the old one.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import numpy as np

from indextts2.errors import InvalidInput

if TYPE_CHECKING:
    from indextts2.audio import Audio, AudioFormat

__all__ = ["DEFAULT_OUTPUT_STEM", "STDOUT", "AudioSink", "OutputTarget", "resolve_output"]

STDOUT = "-"
DEFAULT_OUTPUT_STEM = "out"
# must match indextts2.audio.FORMATS (not imported here: it would load torch for --help)
_FORMATS = ("wav", "flac", "mp3", "opus", "ogg", "pcm")


@dataclass(frozen=True)
class OutputTarget:
    """Where the audio goes. ``path`` None means stdout."""

    path: Path | None
    format: AudioFormat
    replace: bool = True
    """False for the default name: an existing file is then an error, never overwritten."""

    def describe(self) -> str:
        return "stdout" if self.path is None else str(self.path)


def _suffix_format(path: str) -> str | None:
    suffix = Path(path).suffix.lower().lstrip(".")
    suffix = "pcm" if suffix == "raw" else suffix
    return suffix if suffix in _FORMATS else None


def _refuse_to_replace(path: Path) -> None:
    if path.exists():
        raise InvalidInput(
            f"{path} exists and is only replaced when you name it: pass -o {path} to replace it, "
            "or -o with another name"
        )


def resolve_output(output: str | None, format: str | None) -> OutputTarget:
    """Check ``-o`` / ``--format`` before anything is loaded.

    Raises:
        InvalidInput: an unknown format, a suffix that names no format, a suffix that contradicts
            ``--format``, a missing directory, or a default output name that is already taken.
    """
    chosen = None
    if format is not None:
        chosen = format.strip().lower()
        if chosen not in _FORMATS:
            raise InvalidInput(f"--format {format!r} is not one of {', '.join(_FORMATS)}")
    if output == STDOUT:
        return OutputTarget(None, cast("AudioFormat", chosen or "wav"))
    if output is None:
        path = Path(f"{DEFAULT_OUTPUT_STEM}.{chosen or 'wav'}")
        _refuse_to_replace(path)
        return OutputTarget(path, cast("AudioFormat", chosen or "wav"), replace=False)
    path = Path(output).expanduser()
    named = _suffix_format(output)
    if chosen is None and named is None:
        raise InvalidInput(
            f"cannot tell the audio format from -o {output!r}: end it with "
            + ", ".join("." + f for f in _FORMATS)
            + " (or give --format)"
        )
    if chosen is not None and named is not None and named != chosen:
        raise InvalidInput(f"-o {output} names a .{named} file but --format is {chosen}")
    chosen = chosen or named
    if path.is_dir():
        raise InvalidInput(f"-o {path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise InvalidInput(f"cannot write {path}: the directory {path.parent} does not exist")
    return OutputTarget(path, cast("AudioFormat", chosen))


@dataclass
class AudioSink:
    """Receives the audio piece by piece; writes the file (or stdout) at :meth:`finish`.

    Raw PCM to stdout is written as it comes, so that ``indextts2 say ... -o - --format pcm | aplay``
    starts playing after the first segment. Every other format needs the whole audio for its header.
    """

    target: OutputTarget
    stdout: BinaryIO | None = None
    _pieces: list[np.ndarray] = field(default_factory=list)
    _sample_rate: int | None = None

    @property
    def _streams_now(self) -> bool:
        return self.target.path is None and self.target.format == "pcm"

    def add(self, samples: np.ndarray, sample_rate: int) -> None:
        if self._sample_rate is not None and sample_rate != self._sample_rate:
            raise InvalidInput(f"the audio changed its sample rate from {self._sample_rate} to {sample_rate}")
        self._sample_rate = sample_rate
        if self._streams_now:
            from indextts2.audio import pcm16_bytes

            stream = self._stdout()
            stream.write(pcm16_bytes(samples))
            stream.flush()
        self._pieces.append(np.asarray(samples, dtype=np.float32))

    def _stdout(self) -> BinaryIO:
        if self.stdout is None:
            self.stdout = sys.stdout.buffer
        return self.stdout

    def finish(self, default_rate: int) -> Audio:
        """Write what was received; returns it as one Audio."""
        from indextts2.audio import Audio, encode

        samples = np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.float32)
        audio = Audio(samples, self._sample_rate or default_rate)
        if self._streams_now:
            return audio
        data = encode(audio, self.target.format)
        if self.target.path is None:
            stream = self._stdout()
            stream.write(data)
            stream.flush()
        else:
            if not self.target.replace:
                _refuse_to_replace(self.target.path)  # it may have appeared while we synthesized
            _write_atomically(self.target.path, data)
        return audio


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
