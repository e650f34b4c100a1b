"""Audio for IndexTTS2: the :class:`Audio` value, decoding, encoding and the signal processing the
model's front end needs (resampling, kaldi fbank, the prompt mel)."""

from indextts2.audio.dsp import (
    kaldi_fbank,
    kaldi_mel_banks,
    log_mel_spectrogram,
    resample,
    resample_soxr,
    slaney_mel_filters,
)
from indextts2.audio.io import (
    FORMATS,
    Audio,
    AudioFormat,
    AudioSource,
    StreamingWavWriter,
    content_type,
    encode,
    encoded_rate,
    format_from_path,
    load_audio,
    pcm16_bytes,
)

__all__ = [
    "FORMATS",
    "Audio",
    "AudioFormat",
    "AudioSource",
    "StreamingWavWriter",
    "content_type",
    "encode",
    "encoded_rate",
    "format_from_path",
    "kaldi_fbank",
    "kaldi_mel_banks",
    "load_audio",
    "log_mel_spectrogram",
    "pcm16_bytes",
    "resample",
    "resample_soxr",
    "slaney_mel_filters",
]
