"""AAC (ADTS) encoding through PyAV, the optional extra ``indextts2[aac]``.

libsndfile, which writes every other format, has no AAC; PyAV (FFmpeg's libraries, bundled in its
wheels) does. Only OpenAI's ``response_format="aac"`` asks for it; without the extra that answer is a
400 naming the formats that work.
"""

from __future__ import annotations

import importlib.util
import io

import numpy as np

from indextts2.errors import InvalidInput

__all__ = ["AAC_BITRATE", "aac_available", "encode_aac"]

AAC_BITRATE = 64_000  # mono speech: 64 kb/s is transparent enough and a tenth of 16-bit PCM
INSTALL_HINT = "pip install 'indextts2[aac]'"


def aac_available() -> bool:
    """Whether PyAV is installed (the ``aac`` extra)."""
    return importlib.util.find_spec("av") is not None


def encode_aac(samples: np.ndarray, sample_rate: int) -> bytes:
    """Mono float samples as an AAC-LC stream in ADTS frames (what ``audio/aac`` means on the web).

    Raises:
        InvalidInput: PyAV is not installed, or the rate is not one AAC has.
    """
    if not aac_available():
        raise InvalidInput(f"AAC needs the optional encoder: {INSTALL_HINT}")
    import av

    codec = av.codec.Codec("aac", "w")
    if sample_rate not in (codec.audio_rates or ()):
        raise InvalidInput(f"AAC has no {sample_rate} Hz mode; resample to one of {codec.audio_rates}")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="adts") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        stream.bit_rate = AAC_BITRATE
        resampler = av.AudioResampler(format=stream.codec_context.format, layout="mono", rate=sample_rate)
        frame = av.AudioFrame.from_ndarray(
            np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)[None, :], format="flt", layout="mono"
        )
        frame.sample_rate = sample_rate
        for piece in [*resampler.resample(frame), *resampler.resample(None), None]:
            for packet in stream.encode(piece):
                container.mux(packet)
    return buffer.getvalue()
