"""How far a float32 evaluation of the spectral features can be from their exact value.

The official pipeline computes kaldi fbank and the prompt mel in float32; our
:func:`~indextts2.audio.kaldi_fbank` and :func:`~indextts2.audio.log_mel_spectrogram` compute them in
float64, which is exact for this purpose. The difference is therefore the reference's own rounding,
and its size depends on the CPU (MKL's FFT kernel on AVX-512, AVX2 or the path it takes on AMD, the
vectorised ``pow`` and ``log``). The functions here bound it from the arithmetic alone: each float32
step of the official computation, in order, with the unit roundoff ``u = 2^-24`` and first-order
error propagation. They return a bound on the error of the feature's *linear* value (mel energy or
mel magnitude) per frame and bin, which :func:`~indextts2.parity.core.log_feature_tolerance` turns
into a tolerance on the log. docs/parity.md has the derivation and the numbers.

The largest term is the FFT's: its error is absolute, ``~ log2(N) u`` times the frame's norm, so a
bin that holds a tiny part of a loud frame's energy is mostly rounding noise, whatever its value.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from indextts2.audio.dsp import kaldi_mel_banks, kaldi_spectrum, mel_spectrum, slaney_mel_filters

__all__ = [
    "FFT_STAGE_ERROR",
    "UNIT_ROUNDOFF",
    "centered_tolerance",
    "input_error",
    "kaldi_bank_error",
    "kaldi_fbank_error",
    "log_mel_error",
]

UNIT_ROUNDOFF = 2.0**-24
"""float32's unit roundoff: a correctly rounded operation is off by at most this, relatively."""

FFT_STAGE_ERROR = (1.0 + 4.0 * math.sqrt(2.0)) * UNIT_ROUNDOFF
"""Relative 2-norm error added by one radix-2 stage of an FFT: ``mu + gamma_4 (sqrt(2) + mu)`` with
twiddle factors off by ``mu = u`` (Higham, Accuracy and Stability of Numerical Algorithms, 24.1).
An N-point real FFT has ``log2(N)`` such stages and one more to unpack the half-length complex one."""


def _fft_error(time_error: torch.Tensor, windowed: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Bound on ``||FFT_float32(y_ref) - FFT(y)||_2`` per frame, ``(..., frames)``.

    ``time_error`` bounds ``|y_ref - y|`` per sample and ``windowed`` is ``y``; Parseval turns a 2-norm
    in time into ``sqrt(N)`` times it over the (full, hence also the one-sided) spectrum.
    """
    growth = (math.log2(n_fft) + 1.0) * FFT_STAGE_ERROR
    return math.sqrt(n_fft) * (time_error.norm(dim=-1) + growth * windowed.norm(dim=-1))


def _hann_error(length: int, *, periodic: bool, device: torch.device) -> torch.Tensor:
    """Bound on ``|torch.hann_window(float32) - hann|`` per sample.

    torch computes ``0.5 - 0.5 cos(n * (2 pi / M))`` in float32: the angle is off by ``2u a`` (the
    rounded constant, the product), which moves the cosine by ``2u a |sin a|``; the cosine itself by
    up to ``2u`` (one ulp); adding 0.5 rounds once more.
    """
    u = UNIT_ROUNDOFF
    span = length if periodic else length - 1
    angle = torch.arange(length, dtype=torch.float64, device=device) * (2.0 * math.pi / span)
    hann = 0.5 - 0.5 * torch.cos(angle)
    return u * (angle * torch.sin(angle).abs() + 1.0 + hann)


def _power_error(value: torch.Tensor, error: torch.Tensor, exponent: float) -> torch.Tensor:
    """Bound on ``|(value + e)^p - value^p|`` for ``|e| <= error`` and ``0 < p < 1``.

    Concavity gives ``error^p`` everywhere; where ``value > error`` the mean value theorem gives the
    tighter ``p (value - error)^(p - 1) error``.
    """
    anywhere = error.pow(exponent)
    room = (value - error).clamp(min=0.0)
    slope = torch.where(
        room > 0,
        exponent * room.clamp(min=1e-300).pow(exponent - 1.0) * error,
        torch.full_like(value, math.inf),
    )
    return torch.minimum(anywhere, slope)


def _framed(samples: torch.Tensor, size: int, shift: int) -> torch.Tensor:
    return samples.unfold(-1, size, shift)


def kaldi_bank_error(
    num_bins: int,
    padded_window_size: int,
    sample_rate: float,
    low_freq: float,
    high_freq: float,
) -> torch.Tensor:
    """Bound on ``|kaldi_mel_banks(float32) - kaldi_mel_banks(float64)|``, ``(bins, padded // 2 + 1)``.

    torchaudio builds the banks in float32: the band edges ``mel_low + b * mel_delta`` (three
    roundings), the mel of each FFT bin ``1127 log(1 + f / 700)`` (the argument off by ``3u``
    relatively, ``log`` by one ulp, the product by one rounding), then the two slopes, each a
    difference divided by a difference. Where the exact weight is zero and the slopes are further
    below zero than their error, the float32 weight is zero too: the bound is zero there.
    """
    u = UNIT_ROUNDOFF
    num_fft_bins = padded_window_size // 2
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    fft_bin_width = sample_rate / padded_window_size
    mel_low = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high = 1127.0 * math.log(1.0 + high_freq / 700.0)
    mel_delta = (mel_high - mel_low) / (num_bins + 1)

    b = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)

    def edge(offset: float) -> tuple[torch.Tensor, torch.Tensor]:
        step = (b + offset) * mel_delta
        value = mel_low + step
        return value, u * (2.0 * step + mel_low + value)  # rounded delta, product, rounded low, sum

    (left, d_left), (center, d_center), (right, d_right) = edge(0.0), edge(1.0), edge(2.0)
    log_arg = torch.log1p(fft_bin_width * torch.arange(num_fft_bins, dtype=torch.float64) / 700.0)
    mel = (1127.0 * log_arg).unsqueeze(0)
    d_mel = 1127.0 * u * (3.0 + 2.0 * log_arg.unsqueeze(0)) + u * mel

    def slope(
        top: torch.Tensor,
        d_top: torch.Tensor,
        bottom: torch.Tensor,
        d_bottom: torch.Tensor,
        span_hi: torch.Tensor,
        d_hi: torch.Tensor,
        span_lo: torch.Tensor,
        d_lo: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        numerator = top - bottom
        denominator = span_hi - span_lo
        value = numerator / denominator
        error = (d_top + d_bottom + u * numerator.abs()) / denominator
        error = error + value.abs() * (d_hi + d_lo + u * denominator) / denominator + u * value.abs()
        return value, error

    up, d_up = slope(mel, d_mel, left, d_left, center, d_center, left, d_left)
    down, d_down = slope(right, d_right, mel, d_mel, right, d_right, center, d_center)
    exact = torch.minimum(up, down)
    error = torch.maximum(d_up, d_down)
    error = torch.where(exact > -error, error, torch.zeros_like(error))
    return F.pad(error, (0, 1))


def kaldi_fbank_error(
    waveform: torch.Tensor,
    *,
    sample_rate: int = 16000,
    num_mel_bins: int = 80,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    preemphasis: float = 0.97,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    input_error: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bound on ``|E_ref - E|`` of torchaudio's float32 kaldi fbank energies (before the log).

    Arguments as :func:`~indextts2.audio.kaldi_fbank`; ``input_error`` optionally bounds, per sample,
    how far the reference's waveform is from ``waveform`` (default: the same samples).

    Returns:
        ``(frames, num_mel_bins)`` float64, for
        :func:`~indextts2.parity.core.compare_log_feature` with ``floor=KALDI_LOG_FLOOR``.
    """
    if waveform.dim() == 2:
        waveform = waveform[0]
    u = UNIT_ROUNDOFF
    steps = kaldi_spectrum(
        waveform,
        sample_rate=sample_rate,
        frame_length_ms=frame_length_ms,
        frame_shift_ms=frame_shift_ms,
        preemphasis=preemphasis,
    )
    size = steps.frames.shape[1]
    shift = int(sample_rate * frame_shift_ms * 0.001)

    # Time domain, per sample. The frame's mean (a sum of `size` terms in any order, then a division)
    # is off by (size + 1) u mean|x|; the same offset in x[n] and x[n-1] leaves (1 - preemphasis) of
    # it after pre-emphasis. Subtracting the mean, scaling x[n-1] by the rounded coefficient and
    # subtracting round once each.
    previous = F.pad(steps.centered.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)[:, :-1]
    mean_error = (size + 1) * u * steps.frames.abs().mean(dim=1, keepdim=True)
    emphasised_error = abs(1.0 - preemphasis) * mean_error + u * (
        steps.centered.abs() + 3.0 * abs(preemphasis) * previous.abs() + steps.emphasised.abs()
    )
    if input_error is not None:
        noise = _framed(input_error.reshape(-1).to(steps.frames), size, shift)[: steps.frames.shape[0]]
        noise_previous = F.pad(noise.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)[:, :-1]
        emphasised_error = emphasised_error + (
            noise + abs(preemphasis) * noise_previous + abs(1.0 - preemphasis) * noise.mean(1, keepdim=True)
        )
    # The povey window: float32 Hann, then pow(0.85) (one ulp).
    hann_error = _hann_error(size, periodic=False, device=steps.frames.device)
    window_error = _power_error(steps.hann, hann_error, 0.85) + 2.0 * u * steps.window
    windowed = steps.emphasised * steps.window
    time_error = steps.window * emphasised_error + steps.emphasised.abs() * window_error + u * windowed.abs()
    spectrum_error = _fft_error(time_error, windowed, steps.padded_size).unsqueeze(1)  # (frames, 1)

    # Power and mel sum. |Y_ref|^2 - |Y|^2 <= 2 |Y||E| + |E|^2 per bin; summed with the band's weights
    # and Cauchy-Schwarz: 2 sqrt(sum_k w_k^2 P_k) ||E|| + max_k w_k ||E||^2. The float32 banks add
    # sum_k |dw_k| P_k. |.| and ^2 round the power by 5u; a sum of K products by (K + 1) u.
    banks = kaldi_mel_banks(
        num_mel_bins, steps.padded_size, float(sample_rate), low_freq, high_freq, torch.float64
    ).to(steps.power.device)
    bank_error = kaldi_bank_error(
        num_mel_bins, steps.padded_size, float(sample_rate), low_freq, high_freq
    ).to(steps.power.device)
    power = steps.power
    energies = power @ banks.T
    terms = ((banks > 0) | (bank_error > 0)).sum(dim=1).to(power.dtype)  # (bins,)
    return (
        2.0 * (power @ banks.square().T).sqrt() * spectrum_error
        + banks.max(dim=1).values * spectrum_error.square()
        + power @ bank_error.T
        + (terms + 6.0) * u * energies
    )


def log_mel_error(
    waveform: torch.Tensor,
    *,
    sample_rate: int = 22050,
    n_fft: int = 1024,
    hop_length: int = 256,
    win_length: int = 1024,
    n_mels: int = 80,
    fmin: float = 0.0,
    fmax: float | None = None,
    input_error: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bound on ``|S_ref - S|`` of the official float32 mel magnitude (before the log).

    Arguments as :func:`~indextts2.audio.log_mel_spectrogram`; ``input_error`` as in
    :func:`kaldi_fbank_error`. The official filters are float32 values we use as they are, so
    only the window, the FFT, the magnitude and the filter sum round.

    Returns:
        ``(batch, n_mels, frames)`` (or ``(n_mels, frames)`` for a 1-D waveform), float64, for
        :func:`~indextts2.parity.core.compare_log_feature` with ``floor=PROMPT_MEL_FLOOR``.
    """
    squeeze = waveform.dim() == 1
    if squeeze:
        waveform = waveform.unsqueeze(0)
    u = UNIT_ROUNDOFF
    steps = mel_spectrum(waveform, n_fft=n_fft, hop_length=hop_length, win_length=win_length)
    device = steps.frames.device
    left = (n_fft - win_length) // 2
    hann_error = F.pad(
        _hann_error(win_length, periodic=True, device=device), (left, n_fft - win_length - left)
    )
    windowed = steps.frames * steps.window
    time_error = steps.frames.abs() * hann_error + u * windowed.abs()
    if input_error is not None:
        pad = (n_fft - hop_length) // 2
        noise = input_error.reshape(waveform.shape).to(steps.frames)
        noise = F.pad(noise.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        time_error = time_error + _framed(noise, n_fft, hop_length) * steps.window
    spectrum_error = _fft_error(time_error, windowed, n_fft).unsqueeze(1)  # (batch, 1, frames)

    # |sqrt(|Y_ref|^2 + c) - sqrt(|Y|^2 + c)| <= |E| per bin (1-Lipschitz); with the band's weights
    # and Cauchy-Schwarz: ||w||_2 ||E||. The squares, their sum, + c and sqrt round the magnitude by 2u;
    # a sum of K products by (K + 1) u.
    filters = slaney_mel_filters(sample_rate, n_fft, n_mels, fmin, fmax).to(
        device=device, dtype=torch.float64
    )
    mel = torch.matmul(filters, steps.magnitude)
    terms = (filters > 0).sum(dim=1).to(mel.dtype).unsqueeze(1)  # (n_mels, 1)
    error = filters.norm(dim=1).unsqueeze(1) * spectrum_error + (terms + 3.0) * u * mel
    return error.squeeze(0) if squeeze else error


def centered_tolerance(feature: torch.Tensor, tolerance: torch.Tensor, *, dim: int = 0) -> torch.Tensor:
    """The tolerance of ``feature - feature.mean(dim)`` computed in float32 from a reference feature.

    Each element keeps its own tolerance and gains the mean of the others'; the float32 mean (a sum of
    T terms in any order) is off by ``(T + 1) u mean|x|`` and the subtraction rounds once.
    """
    u = UNIT_ROUNDOFF
    feature = feature.to(torch.float64)
    count = feature.shape[dim]
    centered = feature - feature.mean(dim=dim, keepdim=True)
    return (
        tolerance
        + tolerance.mean(dim=dim, keepdim=True)
        + (count + 1) * u * feature.abs().mean(dim=dim, keepdim=True)
        + u * centered.abs()
    )


def input_error(ours: torch.Tensor, reference: torch.Tensor) -> torch.Tensor | None:
    """Per sample, how far the reference's input is from ours, for the ``input_error`` arguments.

    None when the shapes differ: the input's own check fails then, and so will the feature's shape.
    """
    if ours.numel() != reference.numel():
        return None
    return (ours.reshape(-1).to(torch.float64) - reference.reshape(-1).to(torch.float64)).abs()
