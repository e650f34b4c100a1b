"""Audio values, decoding and encoding (through soundfile / libsndfile: no ffmpeg)."""

from __future__ import annotations

import io
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import soundfile as sf

from indextts2.audio.dsp import resample, resample_soxr
from indextts2.errors import AudioDecodeError, InvalidInput

__all__ = [
    "DECODE_BLOCK_FRAMES",
    "DEFAULT_MAX_SECONDS",
    "FORMATS",
    "MAX_CHANNELS",
    "MAX_SAMPLE_RATE",
    "Audio",
    "AudioFormat",
    "AudioSource",
    "StreamingWavWriter",
    "content_type",
    "encode",
    "encoded_rate",
    "format_from_path",
    "load_audio",
    "pcm16_bytes",
]

logger = logging.getLogger(__name__)

AudioFormat = Literal["wav", "flac", "mp3", "opus", "ogg", "pcm", "aac"]
FORMATS: tuple[str, ...] = ("wav", "flac", "mp3", "opus", "ogg", "pcm")
"""What every install writes (libsndfile). ``aac`` needs the optional extra (``indextts2.audio.aac``)."""
AudioSource = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO

# soundfile (format, subtype) per output format; pcm is written by hand.
_SOUNDFILE_FORMATS: dict[str, tuple[str, str]] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "opus": ("OGG", "OPUS"),
    "ogg": ("OGG", "VORBIS"),
}
_CONTENT_TYPES = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg; codecs=opus",
    "ogg": "audio/ogg",
    "pcm": "audio/L16",
    "aac": "audio/aac",
}
# Opus only runs at 8, 12, 16, 24 or 48 kHz; we pick the smallest of 24/48 kHz that keeps the band.
_OPUS_RATES = (24000, 48000)
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

# What load_audio decodes at most, judged from the file's header before any sample is decoded: a
# small compressed file can claim hours of many-channel audio at a huge rate (a "decompression bomb").
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8
DEFAULT_MAX_SECONDS = 600.0
# Frames decoded at a time; every block is mixed to mono before the next is read, so decoding needs
# the mono result plus one block (2 MiB at 8 channels), whatever the number of channels.
DECODE_BLOCK_FRAMES = 65_536
# libsndfile's frame count when a header does not say how long the file is (SF_COUNT_MAX)
_UNKNOWN_FRAMES = 2**62


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono float32 samples in [-1, 1] and their sample rate."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        samples = np.ascontiguousarray(self.samples, dtype=np.float32)
        if samples.ndim != 1:
            raise InvalidInput(f"Audio holds mono samples, got an array of shape {samples.shape}")
        if self.sample_rate <= 0:
            raise InvalidInput(f"sample_rate must be positive, got {self.sample_rate}")
        object.__setattr__(self, "samples", samples)

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.num_samples / self.sample_rate

    def resampled(self, rate: int, *, method: Literal["soxr", "sinc"] = "soxr") -> Audio:
        """This audio at another sample rate (``soxr`` HQ, or torchaudio-style ``sinc``)."""
        if rate == self.sample_rate:
            return self
        if method == "soxr":
            return Audio(resample_soxr(self.samples, self.sample_rate, rate), rate)
        import torch

        out = resample(torch.from_numpy(self.samples), self.sample_rate, rate)
        return Audio(out.numpy(), rate)

    def to_bytes(self, format: AudioFormat = "wav") -> bytes:
        """Encode into a complete file of the given format (see :func:`encode`)."""
        return encode(self, format)

    def save(self, path: str | os.PathLike[str], format: AudioFormat | None = None) -> Path:
        """Write to ``path``; the format comes from the suffix unless given. Returns the path."""
        target = Path(path)
        data = encode(self, format or format_from_path(target))
        target.write_bytes(data)
        return target

    def __repr__(self) -> str:
        return f"Audio({self.duration:.3f} s at {self.sample_rate} Hz)"


def format_from_path(path: str | os.PathLike[str]) -> AudioFormat:
    """The output format a file suffix names: .wav, .flac, .mp3, .opus, .ogg, or .pcm (.raw)."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "raw":
        suffix = "pcm"
    if suffix not in FORMATS:
        raise InvalidInput(
            f"cannot tell the audio format from {str(path)!r}; use one of the suffixes "
            + ", ".join("." + f for f in FORMATS)
        )
    return suffix  # type: ignore[return-value]


def content_type(format: AudioFormat) -> str:
    """The HTTP Content-Type of an encoded format."""
    return _CONTENT_TYPES[format]


def encoded_rate(format: AudioFormat, sample_rate: int) -> int:
    """The sample rate :func:`encode` writes ``format`` at, for audio at ``sample_rate``.

    Opus runs at 24 or 48 kHz only; mp3 at the nearest MP3 rate; every other format keeps the rate.
    """
    if format == "opus":
        return next((r for r in _OPUS_RATES if r >= sample_rate), 48000)
    if format == "mp3" and sample_rate not in _MP3_RATES:
        return min(_MP3_RATES, key=lambda r: abs(r - sample_rate))
    return sample_rate


def pcm16_bytes(samples: np.ndarray) -> bytes:
    """Little-endian signed 16-bit PCM of float samples (clipped to [-1, 1], rounded)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return np.round(clipped * 32767.0).astype("<i2").tobytes()


def encode(audio: Audio, format: AudioFormat = "wav") -> bytes:
    """Encode audio as a complete file.

    wav and flac are 16-bit PCM at the audio's rate; mp3 at the nearest MP3 rate; opus is Ogg Opus at
    24 or 48 kHz (Opus refuses 22.05 kHz, so the audio is resampled first); ogg is Ogg Vorbis; pcm is
    raw 16-bit little-endian samples with no header; aac is AAC-LC in ADTS frames (the ``aac`` extra).
    """
    if format == "aac":
        from indextts2.audio.aac import encode_aac

        return encode_aac(audio.samples, audio.sample_rate)
    if format not in FORMATS:
        raise InvalidInput(f"unknown audio format {format!r}; use one of {', '.join(FORMATS)}")
    if format == "pcm":
        return pcm16_bytes(audio.samples)
    audio = audio.resampled(encoded_rate(format, audio.sample_rate))
    container, subtype = _SOUNDFILE_FORMATS[format]
    buffer = io.BytesIO()
    samples: np.ndarray = np.clip(audio.samples, -1.0, 1.0)
    if subtype == "PCM_16":
        # Quantise as pcm16_bytes does, so a WAV file and a raw PCM stream hold the same samples
        # (libsndfile's own float conversion rounds differently).
        samples = np.frombuffer(pcm16_bytes(samples), dtype="<i2")
    sf.write(buffer, samples, audio.sample_rate, format=container, subtype=subtype)
    return buffer.getvalue()


class StreamingWavWriter:
    """A WAV stream for HTTP: a header with unknown length first, then 16-bit PCM chunks.

    The RIFF and data sizes are written as 0xFFFFFFFF, which browsers and most decoders read as
    "until the end of the stream".
    """

    UNKNOWN_SIZE = 0xFFFFFFFF

    def __init__(self, sample_rate: int, channels: int = 1) -> None:
        self.sample_rate = sample_rate
        self.channels = channels

    def header(self) -> bytes:
        bits = 16
        byte_rate = self.sample_rate * self.channels * bits // 8
        block_align = self.channels * bits // 8
        return (
            b"RIFF"
            + struct.pack("<I", self.UNKNOWN_SIZE)
            + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, self.channels, self.sample_rate, byte_rate, block_align, bits)
            + b"data"
            + struct.pack("<I", self.UNKNOWN_SIZE)
        )

    def chunk(self, samples: np.ndarray) -> bytes:
        return pcm16_bytes(samples)


# --------------------------------------------------------------------------------------------------
# Decoding


def _read_source(source: AudioSource) -> tuple[bytes, str]:
    """The bytes of an audio source and a name for it in error messages."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), "<bytes>"
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise AudioDecodeError(name, "no such file")
        if path.is_dir():
            raise AudioDecodeError(name, "it is a directory, not an audio file")
        try:
            return path.read_bytes(), name
        except OSError as exc:
            raise AudioDecodeError(name, exc.strerror or str(exc)) from exc
    read = getattr(source, "read", None)
    if read is None:
        raise InvalidInput(f"expected a path, bytes or a binary file object, got {type(source).__name__}")
    name = str(getattr(source, "name", "<stream>"))
    data = read()
    if not isinstance(data, bytes | bytearray):
        raise InvalidInput(f"{name} is opened in text mode; open it with 'rb'")
    return bytes(data), name


def _check_riff_complete(data: bytes, name: str) -> None:
    """Refuse a WAV whose data chunk promises more bytes than the file holds.

    libsndfile quietly returns the frames that are there; a cut-off upload would then be used as
    if it were the whole recording. Streamed WAVs (size 0 or 0xFFFFFFFF) are accepted as they are.
    """
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RIFX") or data[8:12] != b"WAVE":
        return
    fmt = "<I" if data[:4] == b"RIFF" else ">I"
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack(fmt, data[offset + 4 : offset + 8])
        if chunk_id == b"data":
            available = len(data) - offset - 8
            if size not in (0, StreamingWavWriter.UNKNOWN_SIZE) and available < size:
                raise AudioDecodeError(
                    name,
                    f"the WAV file is truncated: its header promises {size:,} bytes of audio "
                    f"but only {available:,} are there",
                )
            return
        offset += 8 + size + (size & 1)


def load_audio(
    source: AudioSource,
    target_rate: int | None = None,
    *,
    resampler: Literal["soxr", "sinc"] = "soxr",
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    name: str | None = None,
) -> Audio:
    """Decode an audio file into mono float32 :class:`Audio`.

    Reads wav, flac, ogg (vorbis, opus) and mp3 through libsndfile. Several channels are averaged to
    one (as ``librosa.load`` does). With ``target_rate`` the audio is resampled: ``soxr`` is libsoxr's
    HQ preset, identical to ``librosa.load(path, sr=target_rate)``; ``sinc`` is torchaudio's default
    windowed-sinc resampler.

    The header is checked before anything is decoded: at most :data:`MAX_SAMPLE_RATE` Hz,
    :data:`MAX_CHANNELS` channels and ``max_seconds``; a file that does not say how long it is is
    refused. The file is then decoded :data:`DECODE_BLOCK_FRAMES` frames at a time, each block mixed
    to mono before the next is read, so decoding needs the mono result plus one block of memory,
    whatever the header claims.

    Args:
        source: a path, the file's bytes, or a binary file object.
        target_rate: the sample rate wanted, or None to keep the file's own.
        resampler: which resampler to use when the rates differ.
        max_seconds: the longest file accepted (600 s by default); None for no limit on the length
            (for files you trust: the memory needed is then 4 bytes per frame of the header).
        name: what to call the file in error messages (default: its path or ``<bytes>``).

    Raises:
        AudioDecodeError: the file is missing, empty, truncated, not audio, in an unsupported
            container, over the limits above, or holds no samples. The message names the file and
            the reason.
    """
    data, source_name = _read_source(source)
    name = name or source_name
    if not data:
        raise AudioDecodeError(name, "the file is empty (0 bytes)")
    _check_riff_complete(data, name)
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            mono = _decode_mono(handle, name, max_seconds)
            rate = int(handle.samplerate)
    except AudioDecodeError:
        raise
    except sf.LibsndfileError as exc:
        reason = exc.error_string.rstrip(".")
        if reason == "Format not recognised":
            reason = "not a recognised audio file (supported: wav, flac, ogg vorbis/opus, mp3)"
        raise AudioDecodeError(name, reason) from exc
    except (sf.SoundFileError, RuntimeError, ValueError, MemoryError) as exc:
        raise AudioDecodeError(name, str(exc) or type(exc).__name__) from exc
    if not np.isfinite(mono).all():
        raise AudioDecodeError(name, "it holds NaN or infinite samples")
    audio = Audio(mono, rate)
    if target_rate is not None and target_rate != rate:
        audio = audio.resampled(target_rate, method=resampler)
    return audio


def _decode_mono(handle: sf.SoundFile, name: str, max_seconds: float | None) -> np.ndarray:
    """The file's samples mixed to mono, decoded block by block after the header was checked."""
    rate, channels, frames = int(handle.samplerate), int(handle.channels), int(handle.frames)
    if not 0 < rate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(
            name,
            f"its header gives a sample rate of {rate:,} Hz; this reads up to {MAX_SAMPLE_RATE:,} Hz "
            "(resample it to 48 kHz or less)",
        )
    if not 0 < channels <= MAX_CHANNELS:
        raise AudioDecodeError(
            name,
            f"its header gives {channels} channels; this reads up to {MAX_CHANNELS} (mix it down to mono)",
        )
    if frames == 0:
        raise AudioDecodeError(name, "it holds no audio samples (0 frames)")
    if not 0 < frames < _UNKNOWN_FRAMES:
        raise AudioDecodeError(
            name,
            "its header does not say how long it is (a streamed or unfinished file); "
            "save it again as a complete wav or flac file",
        )
    seconds = frames / rate
    if max_seconds is not None and seconds > max_seconds:
        raise AudioDecodeError(
            name, f"it is {seconds:.1f} s long; clips of up to {max_seconds:g} s are accepted"
        )
    mono = np.empty(frames, dtype=np.float32)
    filled = 0
    while filled < frames:
        block = handle.read(min(DECODE_BLOCK_FRAMES, frames - filled), dtype="float32", always_2d=True)
        if not len(block):
            break  # the header promised more than the file holds: keep what is there
        mono[filled : filled + len(block)] = block.mean(axis=1) if channels > 1 else block[:, 0]
        filled += len(block)
    if filled == 0:
        raise AudioDecodeError(name, "it holds no audio samples (0 frames)")
    return mono[:filled]
