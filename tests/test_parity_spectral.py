"""The tolerance rule of the log-spectral features: it holds for float32 evaluations, and it fails bugs.

``official_float32_*`` below repeat the official float32 computations (torchaudio's kaldi fbank, s2mel's
``mel_spectrogram``) op by op, as our code did before it moved to float64; on this CPU they reproduce
the goldens bit for bit. Whatever this CPU's kernels round, the bound must cover it.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from indextts2.audio import kaldi_fbank, log_mel_spectrogram
from indextts2.audio.dsp import (
    KALDI_LOG_FLOOR,
    PROMPT_MEL_FLOOR,
    kaldi_mel_banks,
    kaldi_spectrum,
    mel_spectrum,
    slaney_mel_filters,
)
from indextts2.parity.core import (
    Check,
    compare_log_feature,
    compare_within,
    log_feature_tolerance,
)
from indextts2.parity.spectral import (
    UNIT_ROUNDOFF,
    centered_tolerance,
    kaldi_bank_error,
    kaldi_fbank_error,
    log_mel_error,
)


def official_float32_fbank(waveform: torch.Tensor) -> torch.Tensor:
    """torchaudio.compliance.kaldi.fbank(num_mel_bins=80, dither=0), in float32 as it runs."""
    x = waveform.reshape(-1).float()
    frames = x.as_strided((1 + (x.numel() - 400) // 160, 400), (160, 1))
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = F.pad(frames.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)[:, :-1]
    frames = frames - 0.97 * previous
    frames = F.pad(frames * torch.hann_window(400, periodic=False).pow(0.85), (0, 112))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = kaldi_mel_banks(80, 512, 16000.0, 20.0, 0.0, torch.float32)
    energies = torch.mm(power, banks.T)
    return torch.max(energies, torch.tensor(torch.finfo(torch.float32).eps)).log()


def official_float32_mel(waveform: torch.Tensor) -> torch.Tensor:
    """s2mel's mel_spectrogram (22.05 kHz, n_fft 1024, hop 256, 80 slaney mels), in float32."""
    y = F.pad(waveform.reshape(1, 1, -1).float(), (384, 384), mode="reflect").squeeze(1)
    spec = torch.stft(
        y, 1024, hop_length=256, win_length=1024, window=torch.hann_window(1024),
        center=False, normalized=False, onesided=True, return_complex=True,
    )  # fmt: skip
    magnitude = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + 1e-9)
    mel = torch.matmul(slaney_mel_filters(22050, 1024, 80), magnitude)
    return torch.log(torch.clamp(mel, min=1e-5))


def signals(rate: int) -> dict[str, torch.Tensor]:
    """Clips that stress the rounding: loud and quiet, low and high, tones, noise, silence, clipping."""
    generator = torch.Generator().manual_seed(15)
    t = torch.arange(int(1.2 * rate), dtype=torch.float64) / rate
    envelope = 0.5 * (1 - torch.cos(2 * math.pi * 1.5 * t))
    voiced = sum(torch.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 30)) * envelope * 0.3
    noise = torch.randn(t.numel(), generator=generator, dtype=torch.float64)
    silence_then_click = torch.zeros_like(t)
    silence_then_click[t.numel() // 2] = 0.9
    clips = {
        "voiced with silence": torch.cat([torch.zeros(rate // 5, dtype=torch.float64), voiced]),
        "loud hum": 0.95 * torch.sin(2 * math.pi * 50 * t),
        "loud hum and whisper": 0.9 * torch.sin(2 * math.pi * 60 * t) + 1e-5 * noise,
        "full-scale square": torch.sign(torch.sin(2 * math.pi * 440 * t)),
        "quiet noise": 1e-4 * noise,
        "dc offset and tone": 0.5 + 0.01 * torch.sin(2 * math.pi * 1000 * t),
        "silence and a click": silence_then_click,
    }
    return {name: clip.float() for name, clip in clips.items()}


def fbank_check(waveform: torch.Tensor, ours: torch.Tensor, reference: torch.Tensor) -> Check:
    error = kaldi_fbank_error(waveform)
    return compare_log_feature("audio", "fbank", ours, reference, value_error=error, floor=KALDI_LOG_FLOOR)


def mel_check(waveform: torch.Tensor, ours: torch.Tensor, reference: torch.Tensor) -> Check:
    error = log_mel_error(waveform)
    return compare_log_feature("audio", "mel", ours, reference, value_error=error, floor=PROMPT_MEL_FLOOR)


def fails(check: Check) -> bool:
    """Failed, and not by a hair: the element furthest past its tolerance is 10x past it."""
    assert check.max_abs_error is not None
    assert check.tolerance is not None
    return not check.passed and check.max_abs_error > 10 * check.tolerance


# ---------------------------------------------------------------------------------------- it holds


@pytest.mark.parametrize("name", list(signals(16000)))
def test_the_bound_covers_a_float32_fbank(name: str) -> None:
    waveform = signals(16000)[name]
    check = fbank_check(waveform, kaldi_fbank(waveform), official_float32_fbank(waveform))
    assert check.passed, check


@pytest.mark.parametrize("name", list(signals(22050)))
def test_the_bound_covers_a_float32_prompt_mel(name: str) -> None:
    waveform = signals(22050)[name].unsqueeze(0)
    check = mel_check(waveform, log_mel_spectrogram(waveform), official_float32_mel(waveform))
    assert check.passed, check


def test_the_float32_banks_are_within_their_bound() -> None:
    for bins, size, rate, low in [
        (80, 512, 16000.0, 20.0),
        (80, 512, 16000.0, 0.0),
        (40, 1024, 22050.0, 20.0),
    ]:
        exact = kaldi_mel_banks(bins, size, rate, low, 0.0, torch.float64)
        rounded = kaldi_mel_banks(bins, size, rate, low, 0.0, torch.float32).to(torch.float64)
        assert ((rounded - exact).abs() <= kaldi_bank_error(bins, size, rate, low, 0.0)).all()


def test_our_features_do_not_depend_on_float32_kernels() -> None:
    """float64 inside: the result is the exact one rounded once, for float32 and float64 input."""
    waveform = signals(16000)["voiced with silence"]
    assert torch.equal(kaldi_fbank(waveform), kaldi_fbank(waveform.double()).float())
    mel = signals(22050)["voiced with silence"]
    assert torch.equal(log_mel_spectrogram(mel), log_mel_spectrogram(mel.double()).float())


@pytest.mark.goldens
def test_the_goldens_are_within_the_bound(golden_set) -> None:
    expected = golden_set.tensors("audio")
    audio_16k, audio_22k = expected["ref.audio_16k"], expected["ref.audio_22k"]
    fbank = kaldi_fbank(audio_16k)
    assert fbank_check(audio_16k, fbank, expected["ref.fbank"]).passed
    assert mel_check(audio_22k, log_mel_spectrogram(audio_22k), expected["ref.mel"]).passed
    tolerance = log_feature_tolerance(fbank, kaldi_fbank_error(audio_16k), floor=KALDI_LOG_FLOOR)
    centered = fbank.double() - fbank.double().mean(dim=0, keepdim=True)
    check = compare_within(
        "audio",
        "centered",
        centered[None],
        expected["ref.fbank_centered"],
        centered_tolerance(fbank, tolerance),
    )
    assert check.passed
    # not vacuous: where the clip is loud, the tolerance stays within a few 1e-4
    loud = fbank > -5
    assert tolerance[loud].median() < 1e-3
    assert tolerance[loud].max() < 1e-2


# ---------------------------------------------------------------------------------------- it fails bugs


@pytest.mark.goldens
def test_a_window_shifted_by_one_sample_fails(golden_set) -> None:
    expected = golden_set.tensors("audio")
    shifted_16k = expected["ref.audio_16k"][:, 1:]
    assert fails(fbank_check(shifted_16k, kaldi_fbank(shifted_16k), expected["ref.fbank"]))
    shifted_22k = expected["ref.audio_22k"][:, 1:]
    assert fails(mel_check(shifted_22k, log_mel_spectrogram(shifted_22k), expected["ref.mel"]))


@pytest.mark.goldens
def test_a_wrong_log_floor_fails(golden_set) -> None:
    expected = golden_set.tensors("audio")
    audio_16k, audio_22k = expected["ref.audio_16k"], expected["ref.audio_22k"]
    steps = kaldi_spectrum(audio_16k[0])
    energies = steps.power @ kaldi_mel_banks(80, 512, 16000.0, 20.0, 0.0, torch.float64).T
    for floor in (1e-10, 1e-6):
        wrong = energies.clamp(min=floor).log().float()
        assert fails(fbank_check(audio_16k, wrong, expected["ref.fbank"])), floor
    mel = slaney_mel_filters(22050, 1024, 80).double() @ mel_spectrum(audio_22k).magnitude
    for floor in (1e-6, 1e-4):
        wrong = mel.clamp(min=floor).log().float()
        assert fails(mel_check(audio_22k, wrong, expected["ref.mel"])), floor


@pytest.mark.goldens
@pytest.mark.parametrize(
    "change",
    [
        {"preemphasis": 0.0},
        {"preemphasis": 0.96},
        {"low_freq": 0.0},
        {"num_mel_bins": 80, "high_freq": 7800.0},
    ],
)
def test_wrong_fbank_parameters_fail(golden_set, change: dict[str, float]) -> None:
    expected = golden_set.tensors("audio")
    audio_16k = expected["ref.audio_16k"]
    assert fails(fbank_check(audio_16k, kaldi_fbank(audio_16k, **change), expected["ref.fbank"]))  # type: ignore[arg-type]


@pytest.mark.goldens
@pytest.mark.parametrize("change", [{"fmin": 20.0}, {"fmax": 11000.0}])
def test_wrong_mel_parameters_fail(golden_set, change: dict[str, float]) -> None:
    expected = golden_set.tensors("audio")
    audio_22k = expected["ref.audio_22k"]
    assert fails(mel_check(audio_22k, log_mel_spectrogram(audio_22k, **change), expected["ref.mel"]))  # type: ignore[arg-type]


@pytest.mark.goldens
def test_a_small_gain_error_in_loud_bins_fails(golden_set) -> None:
    """0.1 % more energy (1e-3 in the log) only where the clip is loud: far above rounding there."""
    expected = golden_set.tensors("audio")
    audio_16k, audio_22k = expected["ref.audio_16k"], expected["ref.audio_22k"]
    fbank = kaldi_fbank(audio_16k)
    assert fails(fbank_check(audio_16k, torch.where(fbank > -5, fbank + 1e-3, fbank), expected["ref.fbank"]))
    mel = log_mel_spectrogram(audio_22k)
    assert fails(mel_check(audio_22k, torch.where(mel > -5, mel + 1e-3, mel), expected["ref.mel"]))


# ---------------------------------------------------------------------------------------- the rule


def test_the_log_tolerance_follows_the_value_error() -> None:
    log_values = torch.tensor(
        [0.0, math.log(1e-3), math.log(1e-7), math.log(1e-8), math.log(1e-9)], dtype=torch.float64
    )
    tolerance = log_feature_tolerance(log_values, torch.tensor(1e-6, dtype=torch.float64), floor=1e-8)
    rounding = 5 * UNIT_ROUNDOFF * log_values.abs()
    expected = torch.tensor(
        [
            -math.log1p(-1e-6),  # downward is the wider side: log(v / (v - e))
            -math.log1p(-1e-3),
            math.log1p(10.0),  # the reference may be lifted to 1.1e-6
            math.log1p(100.0),  # at the floor: lifted to 1.01e-6 by noise, never lower
            0.0,  # under the floor: no reference value can be there, only the rounding is left
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(tolerance, expected + rounding, rtol=1e-9, atol=0)


def test_a_value_under_the_floor_fails_even_with_a_loose_bound() -> None:
    floor = 1e-7
    reference = torch.full((3,), math.log(floor))
    below = torch.full((3,), math.log(floor) - 1.0)  # a lower floor than the reference's
    assert not compare_log_feature("s", "x", below, reference, value_error=1.0, floor=floor).passed
    at_floor = reference.clone()
    assert compare_log_feature("s", "x", at_floor, reference, value_error=0.0, floor=floor).passed


def test_compare_within_reports_the_worst_element_and_fails_nan_and_shape() -> None:
    actual = torch.tensor([1.0, 2.0, 3.0])
    expected = torch.tensor([1.05, 2.0, 3.5])
    check = compare_within("s", "x", actual, expected, torch.tensor([0.01, 1.0, 1.0]))
    assert not check.passed
    assert check.max_abs_error == pytest.approx(0.05, rel=1e-6)  # 5x its tolerance: the worst
    assert check.tolerance == pytest.approx(0.01)
    assert "largest error 0.5" in check.note
    assert compare_within("s", "x", actual, expected, 0.6).passed
    assert not compare_within("s", "x", torch.tensor([math.nan]), torch.tensor([0.0]), 1.0).passed
    assert not compare_within("s", "x", actual, expected[:2], 1.0).passed
