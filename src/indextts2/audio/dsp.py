"""Signal processing in torch: resampling, kaldi fbank and the IndexTTS2 prompt mel.

These replace the three torchaudio functions the official pipeline uses (``transforms.Resample``,
``compliance.kaldi.fbank``) and librosa's mel filters, computed the same way step by step so that the
results agree with the official ones to float32 rounding. torchaudio itself is not a dependency.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "KaldiSpectrum",
    "MelSpectrum",
    "kaldi_fbank",
    "kaldi_mel_banks",
    "kaldi_spectrum",
    "log_mel_spectrogram",
    "mel_spectrum",
    "resample",
    "resample_soxr",
    "slaney_mel_filters",
]

KALDI_LOG_FLOOR = float(torch.finfo(torch.float32).eps)  # torchaudio's epsilon: log(max(energy, eps))
PROMPT_MEL_FLOOR = 1e-5  # s2mel's dynamic_range_compression clip value: log(clamp(mel, 1e-5))
PROMPT_MAGNITUDE_EPSILON = 1e-9  # s2mel's mel_spectrogram: sqrt(re^2 + im^2 + 1e-9)


def _exact(waveform: torch.Tensor) -> torch.Tensor:
    """A float64 copy, on the CPU when the device has no float64 (MPS)."""
    device = torch.device("cpu") if waveform.device.type == "mps" else waveform.device
    return waveform.to(device=device, dtype=torch.float64)


# --------------------------------------------------------------------------------------------------
# Resampling


@functools.lru_cache(maxsize=32)
def _sinc_kernel(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """Windowed-sinc polyphase kernel, (new, 1, taps), as torchaudio's default (Hann window).

    Built in float64 and rounded to float32 once, exactly like torchaudio does for a transform
    created without a dtype.
    """
    base_freq = min(orig, new) * rolloff
    width = math.ceil(lowpass_filter_width * orig / base_freq)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1)[:, None, None] / new + idx
    t = (t * base_freq).clamp(-lowpass_filter_width, lowpass_filter_width)
    window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    scale = base_freq / orig
    kernels = torch.where(t == 0, torch.tensor(1.0, dtype=torch.float64), torch.sin(t) / t)
    kernels = kernels * window * scale
    return kernels.to(torch.float32), width


def resample(
    waveform: torch.Tensor,
    orig_rate: int,
    new_rate: int,
    *,
    lowpass_filter_width: int = 6,
    rolloff: float = 0.99,
) -> torch.Tensor:
    """Resample along the last axis with a windowed-sinc filter (torchaudio's default method).

    Equivalent to ``torchaudio.transforms.Resample(orig_rate, new_rate)`` with its defaults
    (``sinc_interp_hann``, ``lowpass_filter_width=6``, ``rolloff=0.99``). Any leading shape is kept;
    the output has ``ceil(n * new_rate / orig_rate)`` samples.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate:
        return waveform
    gcd = math.gcd(int(orig_rate), int(new_rate))
    orig, new = int(orig_rate) // gcd, int(new_rate) // gcd
    kernel, width = _sinc_kernel(orig, new, lowpass_filter_width, float(rolloff))
    kernel = kernel.to(device=waveform.device, dtype=waveform.dtype)

    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-1])
    num_wavs, length = flat.shape
    padded = F.pad(flat, (width, width + orig))
    out = F.conv1d(padded[:, None], kernel, stride=orig)  # (num_wavs, new, frames)
    out = out.transpose(1, 2).reshape(num_wavs, -1)
    target_length = math.ceil(new * length / orig)
    return out[..., :target_length].reshape(*shape[:-1], -1)


def resample_soxr(samples: np.ndarray, orig_rate: int, new_rate: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample a 1-D float array with libsoxr, exactly as ``librosa.resample(res_type='soxr_hq')``.

    librosa pads or trims the result to ``ceil(n * new_rate / orig_rate)`` samples; so do we.
    """
    import soxr

    if orig_rate == new_rate:
        return samples
    out = soxr.resample(samples, orig_rate, new_rate, quality=quality)
    target = math.ceil(samples.shape[-1] * float(new_rate) / orig_rate)
    if out.shape[-1] > target:
        out = out[..., :target]
    elif out.shape[-1] < target:
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, target - out.shape[-1])])
    return np.asarray(out, dtype=samples.dtype)


# --------------------------------------------------------------------------------------------------
# Kaldi fbank (torchaudio.compliance.kaldi.fbank with dither 0)


def _mel_scale(freq: float) -> float:
    return 1127.0 * math.log(1.0 + freq / 700.0)


@functools.lru_cache(maxsize=8)
def kaldi_mel_banks(
    num_bins: int,
    padded_window_size: int,
    sample_rate: float,
    low_freq: float,
    high_freq: float,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Kaldi triangular mel banks, (num_bins, padded_window_size // 2 + 1) with a zero last column.

    Computed in ``dtype``. :func:`kaldi_fbank` uses float64, the exact values (so does transformers'
    SeamlessM4T feature extractor); torchaudio computes them in float32, where the rounding of
    ``log`` (which differs between CPU kernels) moves a weight by up to ~1.4e-5. The parity bounds
    (``indextts2.parity.spectral``) follow that float32 evaluation step by step.
    """
    num_fft_bins = padded_window_size // 2
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"bad mel band edges: low {low_freq}, high {high_freq}, nyquist {nyquist}")
    fft_bin_width = sample_rate / padded_window_size
    mel_low = _mel_scale(low_freq)
    mel_high = _mel_scale(high_freq)
    mel_delta = (mel_high - mel_low) / (num_bins + 1)

    bins = torch.arange(num_bins, dtype=dtype).unsqueeze(1)
    left = mel_low + bins * mel_delta
    center = mel_low + (bins + 1.0) * mel_delta
    right = mel_low + (bins + 2.0) * mel_delta
    fft_bins = torch.arange(num_fft_bins, dtype=dtype)
    mel = 1127.0 * (1.0 + fft_bin_width * fft_bins / 700.0).log().unsqueeze(0)
    up_slope = (mel - left) / (center - left)
    down_slope = (right - mel) / (right - center)
    banks = torch.max(torch.zeros(1, dtype=dtype), torch.min(up_slope, down_slope))
    return F.pad(banks, (0, 1))


class KaldiSpectrum(NamedTuple):
    """The steps of :func:`kaldi_fbank` up to the power spectrum, float64 (the parity bounds read them)."""

    frames: torch.Tensor  # (frames, window) as cut from the waveform
    centered: torch.Tensor  # (frames, window) DC offset removed
    emphasised: torch.Tensor  # (frames, window) after pre-emphasis
    hann: torch.Tensor  # (window,) symmetric Hann window
    window: torch.Tensor  # (window,) povey window = hann ** 0.85
    power: torch.Tensor  # (frames, padded // 2 + 1) |rfft|^2 of the windowed frames, zero-padded
    padded_size: int  # FFT size: the window rounded up to a power of two


def kaldi_spectrum(
    waveform: torch.Tensor,
    *,
    sample_rate: int = 16000,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
) -> KaldiSpectrum:
    """The power spectrum of :func:`kaldi_fbank`, with the steps before it, in float64.

    ``waveform`` is ``(samples,)`` and holds at least one window.
    """
    waveform = _exact(waveform)
    window_size = int(sample_rate * frame_length_ms * 0.001)
    window_shift = int(sample_rate * frame_shift_ms * 0.001)
    padded_size = 1 << (window_size - 1).bit_length()
    num_frames = 1 + (waveform.numel() - window_size) // window_shift
    frames = waveform.as_strided((num_frames, window_size), (window_shift * waveform.stride(0), 1))
    centered = frames - frames.mean(dim=1, keepdim=True)
    previous = F.pad(centered.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)[:, :-1]
    emphasised = centered - preemphasis * previous
    hann = torch.hann_window(window_size, periodic=False, dtype=torch.float64, device=waveform.device)
    window = hann.pow(0.85)
    windowed = F.pad(emphasised * window, (0, padded_size - window_size))
    power = torch.fft.rfft(windowed).abs().square()
    return KaldiSpectrum(frames, centered, emphasised, hann, window, power, padded_size)


def kaldi_fbank(
    waveform: torch.Tensor,
    *,
    sample_rate: int = 16000,
    num_mel_bins: int = 80,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
) -> torch.Tensor:
    """Log mel filterbank energies as ``torchaudio.compliance.kaldi.fbank`` computes them.

    Fixed as the official pipeline calls it: dither 0, DC offset removed per frame, pre-emphasis,
    povey window, FFT size rounded up to a power of two, ``snip_edges=True``, power spectrum,
    natural log floored at float32 epsilon, no energy term, no mean subtraction.

    Computed in float64 and rounded to the waveform's dtype once: a float32 evaluation rounds
    differently on every CPU (the FFT kernel MKL picks, the vectorised ``pow`` of the window), and in
    near-silent bins of a loud frame those differences reach 4e-4 in the log (docs/parity.md).

    Args:
        waveform: ``(samples,)`` or ``(1, samples)`` at ``sample_rate`` (only the first channel is used).

    Returns:
        ``(frames, num_mel_bins)`` float tensor; ``frames = 1 + (samples - window) // shift``.
    """
    if waveform.dim() == 2:
        waveform = waveform[0]
    if waveform.dim() != 1:
        raise ValueError(f"expected (samples,) or (channels, samples), got shape {tuple(waveform.shape)}")
    dtype, device = waveform.dtype, waveform.device
    if waveform.numel() < int(sample_rate * frame_length_ms * 0.001):
        return torch.empty(0, num_mel_bins, dtype=dtype, device=device)
    spectrum = kaldi_spectrum(
        waveform,
        sample_rate=sample_rate,
        frame_length_ms=frame_length_ms,
        frame_shift_ms=frame_shift_ms,
        preemphasis=preemphasis,
    )
    banks = kaldi_mel_banks(
        num_mel_bins, spectrum.padded_size, float(sample_rate), low_freq, high_freq, torch.float64
    )
    energies = spectrum.power @ banks.to(spectrum.power.device).T
    return energies.clamp(min=KALDI_LOG_FLOOR).log().to(device=device, dtype=dtype)


# --------------------------------------------------------------------------------------------------
# The IndexTTS2 prompt mel (s2mel's mel_spectrogram with librosa slaney filters)


def _hz_to_mel_slaney(freq: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    mels = freq / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_part = freq >= min_log_hz
    mels[log_part] = min_log_mel + np.log(freq[log_part] / min_log_hz) / logstep
    return mels


def _mel_to_hz_slaney(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_part = mels >= min_log_mel
    freqs[log_part] = min_log_hz * np.exp(logstep * (mels[log_part] - min_log_mel))
    return freqs


@functools.lru_cache(maxsize=8)
def slaney_mel_filters(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> torch.Tensor:
    """Mel filters as ``librosa.filters.mel(htk=False, norm='slaney')``: (n_mels, n_fft // 2 + 1) float32.

    Computed in float64 and stored in float32 at the same points as librosa, so the two agree bit
    for bit in practice.
    """
    if fmax is None:
        fmax = sample_rate / 2.0
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fft_freqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_edges = _hz_to_mel_slaney(np.array([fmin, fmax], dtype=np.float64))
    mel_f = _mel_to_hz_slaney(np.linspace(mel_edges[0], mel_edges[1], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return torch.from_numpy(weights)


class MelSpectrum(NamedTuple):
    """The steps of :func:`log_mel_spectrogram` up to the magnitude, float64 (the parity bounds read them)."""

    frames: torch.Tensor  # (batch, frames, n_fft) cut from the reflect-padded waveform
    window: torch.Tensor  # (n_fft,) periodic Hann of win_length, zero-padded to n_fft in the middle
    magnitude: torch.Tensor  # (batch, n_fft // 2 + 1, frames) sqrt(|rfft|^2 + 1e-9)


def mel_spectrum(
    waveform: torch.Tensor, *, n_fft: int = 1024, hop_length: int = 256, win_length: int = 1024
) -> MelSpectrum:
    """The magnitude spectrum of :func:`log_mel_spectrogram` in float64; ``waveform`` is ``(batch, samples)``.

    ``torch.stft(center=False)`` of the reflect-padded waveform, spelled out as frames times the
    window and a real FFT.
    """
    waveform = _exact(waveform)
    pad = (n_fft - hop_length) // 2
    padded = F.pad(waveform.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    frames = padded.unfold(-1, n_fft, hop_length)  # (batch, frames, n_fft)
    hann = torch.hann_window(win_length, dtype=torch.float64, device=waveform.device)
    left = (n_fft - win_length) // 2
    window = F.pad(hann, (left, n_fft - win_length - left))  # as torch.stft centres a short window
    spectrum = torch.fft.rfft(frames * window)
    magnitude = (spectrum.real.square() + spectrum.imag.square() + PROMPT_MAGNITUDE_EPSILON).sqrt()
    return MelSpectrum(frames, window, magnitude.transpose(1, 2))


def log_mel_spectrogram(
    waveform: torch.Tensor,
    *,
    sample_rate: int = 22050,
    n_fft: int = 1024,
    hop_length: int = 256,
    win_length: int = 1024,
    n_mels: int = 80,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> torch.Tensor:
    """The IndexTTS2 prompt mel: ``(batch, samples) -> (batch, n_mels, frames)``.

    Reflect-pads ``(n_fft - hop) / 2`` samples on both sides, STFT with a periodic Hann window and
    ``center=False``, magnitude ``sqrt(re^2 + im^2 + 1e-9)`` (the official epsilon), slaney mel
    filters, then ``log(clamp(x, 1e-5))``. ``frames = 1 + (samples + 2 * pad - n_fft) // hop``.
    The defaults are the s2mel ``spect_params`` of the release config.

    Computed in float64 (with the float32 filters the official code uses) and rounded to the
    waveform's dtype once, so that the result does not depend on the CPU's FFT kernel.
    """
    squeeze = waveform.dim() == 1
    if squeeze:
        waveform = waveform.unsqueeze(0)
    dtype, device = waveform.dtype, waveform.device
    magnitude = mel_spectrum(waveform, n_fft=n_fft, hop_length=hop_length, win_length=win_length).magnitude
    filters = slaney_mel_filters(sample_rate, n_fft, n_mels, fmin, fmax)
    mel = torch.matmul(filters.to(device=magnitude.device, dtype=torch.float64), magnitude)
    mel = mel.clamp(min=PROMPT_MEL_FLOOR).log().to(device=device, dtype=dtype)
    return mel.squeeze(0) if squeeze else mel
