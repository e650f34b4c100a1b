"""Parity of the audio front end: loading, both resamplers, kaldi fbank and the prompt mel.

The official pipeline reads the speaker clip with ``librosa.load(path)`` (22.05 kHz, soxr HQ), resamples
it to 16 kHz with torchaudio's sinc resampler, and reads the emotion clip (or the speaker clip again,
when there is no emotion clip) with ``librosa.load(path, sr=16000)``. Every clip is cut to 15 s.

The log features (fbank, its centred form, the prompt mel) are compared element by element against
a bound on the float32 rounding of the official computation (``indextts2.parity.spectral``): ours is
computed in float64, so the difference is the reference's rounding, which depends on the CPU.
"""

from __future__ import annotations

import torch

from indextts2.audio import kaldi_fbank, load_audio, log_mel_spectrogram, resample
from indextts2.audio.dsp import KALDI_LOG_FLOOR, PROMPT_MEL_FLOOR
from indextts2.parity.core import (
    Check,
    GoldenSet,
    compare_log_feature,
    compare_tensor,
    compare_within,
    log_feature_tolerance,
)
from indextts2.parity.spectral import centered_tolerance, input_error, kaldi_fbank_error, log_mel_error

STAGE = "audio"
RESAMPLE_TOLERANCE = 1e-5
MAX_CLIP_SECONDS = 15  # the official _load_and_cut_audio limit


def _load(path: object, rate: int) -> torch.Tensor:
    audio = load_audio(path, rate)  # type: ignore[arg-type]
    return torch.from_numpy(audio.samples[: rate * MAX_CLIP_SECONDS]).unsqueeze(0)


def centered(fbank: torch.Tensor) -> torch.Tensor:
    """``fbank - fbank.mean(0)`` in float64, as CAMPPlus gets it (no CPU-dependent float32 sum)."""
    exact = fbank.to(torch.float64)
    return exact - exact.mean(dim=0, keepdim=True)


def log_feature_checks(
    audio_16k: torch.Tensor, audio_22k: torch.Tensor, expected: dict[str, torch.Tensor], *, reference_22k: str
) -> list[Check]:
    """The fbank, its centred form and the prompt mel, each within the float32 bound of the official
    computation from the reference's own input (``ref.audio_16k`` and ``reference_22k``)."""
    fbank = kaldi_fbank(audio_16k, num_mel_bins=80, sample_rate=16000)
    mel = log_mel_spectrogram(audio_22k)
    fbank_error = kaldi_fbank_error(
        audio_16k,
        num_mel_bins=80,
        sample_rate=16000,
        input_error=input_error(audio_16k, expected["ref.audio_16k"]),
    )
    fbank_tolerance = log_feature_tolerance(fbank, fbank_error, floor=KALDI_LOG_FLOOR)
    mel_error = log_mel_error(audio_22k, input_error=input_error(audio_22k, expected[reference_22k]))
    return [
        compare_within(STAGE, "ref.fbank", fbank, expected["ref.fbank"], fbank_tolerance),
        compare_within(
            STAGE,
            "ref.fbank_centered",
            centered(fbank).unsqueeze(0),
            expected["ref.fbank_centered"],
            centered_tolerance(fbank, fbank_tolerance).unsqueeze(0),
        ),
        compare_log_feature(
            STAGE, "ref.mel", mel, expected["ref.mel"], value_error=mel_error, floor=PROMPT_MEL_FLOOR
        ),
    ]


def run(golden: GoldenSet) -> list[Check]:
    expected = golden.tensors("audio")
    ref_wav = golden.inputs / "ref.wav"
    emo_wav = golden.inputs / "emo.wav"

    loaded = _load(ref_wav, 22050)
    audio_22k = resample(loaded, 22050, 22050)
    audio_16k = resample(loaded, 22050, 16000)
    return [
        compare_tensor(STAGE, "ref.loaded", loaded, expected["ref.loaded"], RESAMPLE_TOLERANCE),
        compare_tensor(STAGE, "ref.audio_22k", audio_22k, expected["ref.audio_22k"], RESAMPLE_TOLERANCE),
        compare_tensor(STAGE, "ref.audio_16k", audio_16k, expected["ref.audio_16k"], RESAMPLE_TOLERANCE),
        *log_feature_checks(audio_16k, audio_22k, expected, reference_22k="ref.audio_22k"),
        compare_tensor(
            STAGE, "emo.loaded_16k", _load(emo_wav, 16000), expected["emo.loaded_16k"], RESAMPLE_TOLERANCE
        ),
        compare_tensor(
            STAGE,
            "ref_as_emo.loaded_16k",
            _load(ref_wav, 16000),
            expected["ref_as_emo.loaded_16k"],
            RESAMPLE_TOLERANCE,
        ),
    ]
