"""indextts2.audio: decoding, encoding, errors, and the DSP front end against the official outputs."""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from indextts2.audio import (
    FORMATS,
    Audio,
    StreamingWavWriter,
    encode,
    format_from_path,
    kaldi_fbank,
    load_audio,
    log_mel_spectrogram,
    resample,
    resample_soxr,
)
from indextts2.audio.io import DECODE_BLOCK_FRAMES, MAX_CHANNELS
from indextts2.errors import AudioDecodeError, InvalidInput


def tone(seconds: float = 0.5, rate: int = 22050, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


# ---------------------------------------------------------------------------------------------- values


def test_audio_value_reports_duration_and_keeps_float32_mono() -> None:
    audio = Audio(tone(0.5).astype(np.float64), 22050)
    assert audio.samples.dtype == np.float32
    assert audio.num_samples == 11025
    assert audio.duration == pytest.approx(0.5)


def test_audio_value_rejects_stereo_arrays_and_bad_rates() -> None:
    with pytest.raises(InvalidInput, match="mono"):
        Audio(np.zeros((2, 100), np.float32), 22050)
    with pytest.raises(InvalidInput, match="sample_rate"):
        Audio(np.zeros(100, np.float32), 0)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pcm"])
def test_every_format_round_trips_through_load_audio(fmt: str, tmp_path: Path) -> None:
    original = Audio(tone(0.6, freq=440.0), 22050)
    path = original.save(tmp_path / f"clip.{fmt}")
    decoded = load_audio(path)
    expected_rate = 24000 if fmt == "opus" else 22050  # Opus cannot run at 22.05 kHz
    assert decoded.sample_rate == expected_rate
    assert decoded.duration == pytest.approx(original.duration, abs=0.08)
    assert dominant_frequency(decoded.samples, decoded.sample_rate) == pytest.approx(440.0, abs=5.0)


def test_lossless_formats_are_exact_to_16_bit() -> None:
    original = Audio(tone(0.2), 22050)
    for fmt in ("wav", "flac"):
        decoded = load_audio(encode(original, fmt))
        assert np.abs(decoded.samples - original.samples).max() <= 1.0 / 32767


def test_wav_flac_and_raw_pcm_hold_the_same_16_bit_samples() -> None:
    audio = Audio(tone(0.1, amplitude=0.9), 22050)
    pcm = np.frombuffer(encode(audio, "pcm"), dtype="<i2")
    for fmt in ("wav", "flac"):
        decoded, _ = sf.read(io.BytesIO(encode(audio, fmt)), dtype="int16")
        np.testing.assert_array_equal(decoded, pcm)


def test_pcm_is_raw_little_endian_int16() -> None:
    data = encode(Audio(np.array([0.0, 1.0, -1.0, 0.5, 2.0], np.float32), 22050), "pcm")
    assert struct.unpack("<5h", data) == (0, 32767, -32767, 16384, 32767)


def test_stereo_files_are_mixed_to_mono(tmp_path: Path) -> None:
    left, right = tone(0.3, freq=300.0), tone(0.3, freq=300.0, amplitude=0.1)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 22050, subtype="FLOAT")
    decoded = load_audio(path)
    assert decoded.samples.ndim == 1
    np.testing.assert_allclose(decoded.samples, (left + right) / 2, atol=1e-6)


def test_load_audio_accepts_bytes_file_objects_and_paths(tmp_path: Path) -> None:
    data = encode(Audio(tone(0.2), 22050), "wav")
    path = tmp_path / "a.wav"
    path.write_bytes(data)
    from_bytes = load_audio(data)
    from_file = load_audio(io.BytesIO(data))
    with path.open("rb") as handle:
        from_handle = load_audio(handle)
    from_path = load_audio(str(path))
    for other in (from_file, from_handle, from_path):
        np.testing.assert_array_equal(other.samples, from_bytes.samples)


def test_load_audio_resamples_to_the_target_rate_with_either_resampler() -> None:
    data = encode(Audio(tone(1.0, rate=44100, freq=1000.0), 44100), "flac")
    for method in ("soxr", "sinc"):
        decoded = load_audio(data, 16000, resampler=method)  # type: ignore[arg-type]
        assert decoded.sample_rate == 16000
        assert decoded.num_samples == 16000
        assert dominant_frequency(decoded.samples, 16000) == pytest.approx(1000.0, abs=2.0)


def test_format_from_path_names_the_choices_on_a_bad_suffix() -> None:
    assert format_from_path("x/out.MP3") == "mp3"
    with pytest.raises(InvalidInput, match=r"\.wav"):
        format_from_path("out.aac")


def test_encode_refuses_unknown_formats() -> None:
    with pytest.raises(InvalidInput, match="unknown audio format"):
        encode(Audio(tone(0.1), 22050), "aiff")  # type: ignore[arg-type]


def test_streaming_wav_is_readable_as_one_file() -> None:
    samples = tone(0.4)
    writer = StreamingWavWriter(22050)
    stream = writer.header() + writer.chunk(samples[:3000]) + writer.chunk(samples[3000:])
    decoded = load_audio(stream)
    assert decoded.sample_rate == 22050
    assert decoded.num_samples == samples.size
    assert np.abs(decoded.samples - samples).max() <= 1.0 / 32767


# ---------------------------------------------------------------------------------------------- errors


def _wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, 22050, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


BAD_INPUTS = {
    "truncated.wav": (_wav_bytes(tone(0.5))[:8000], "truncated"),
    "random.wav": (np.random.default_rng(0).bytes(4096), "not a recognised audio file"),
    "empty.wav": (b"", "empty"),
    "silent.wav": (_wav_bytes(np.zeros(0, np.float32)), "no audio samples"),
    "notes.wav": (b"these are my meeting notes, not a recording\n" * 40, "not a recognised audio file"),
    # an MP4/M4A container (ftyp box): a real format, but not one libsndfile reads
    "voice.m4a": (
        struct.pack(">I", 24) + b"ftypM4A \x00\x00\x02\x00M4A isom" + bytes(2000),
        "not a recognised",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_audio_raises_a_typed_error_naming_the_file_and_reason(name: str, tmp_path: Path) -> None:
    data, reason = BAD_INPUTS[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AudioDecodeError) as caught:
        load_audio(path)
    assert str(path) in str(caught.value)
    assert reason in str(caught.value)
    assert caught.value.http_status == 400


def test_missing_files_and_directories_are_named(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match="no such file"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioDecodeError, match="directory"):
        load_audio(tmp_path)


def test_text_mode_file_objects_get_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(_wav_bytes(tone(0.1)))
    with path.open("r", encoding="latin-1") as handle, pytest.raises(InvalidInput, match="'rb'"):
        load_audio(handle)  # type: ignore[arg-type]


def test_streamed_wav_with_unknown_size_is_not_called_truncated() -> None:
    writer = StreamingWavWriter(16000)
    assert load_audio(writer.header() + writer.chunk(tone(0.1, rate=16000))).num_samples == 1600


# ------------------------------------------------------------------------ hostile headers (bombs)


def _flac(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


def _without_length(flac: bytes) -> bytes:
    """The FLAC with STREAMINFO's total-samples field zeroed: "length unknown", as a streamed FLAC."""
    assert flac[:4] == b"fLaC"
    data = bytearray(flac)
    # STREAMINFO starts at byte 8; its bytes 10..17 hold rate (20 bits), channels (3), bits (5) and
    # the total number of samples (36 bits)
    packed = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
    data[18:26] = packed.to_bytes(8, "big")
    return bytes(data)


def test_a_header_over_the_rate_or_channel_limit_is_refused_before_decoding() -> None:
    # the bomb, scaled down: 655,350 Hz and 8 channels pass as audio, but no speech needs them
    fast = _flac(np.full((6_554, 2), 0.25, np.float32), 655_350)
    with pytest.raises(AudioDecodeError, match=r"655,350 Hz; this reads up to 192,000 Hz") as caught:
        load_audio(fast, name="bomb.flac")
    assert "cannot read audio bomb.flac" in str(caught.value)
    wide = io.BytesIO()
    sf.write(wide, np.zeros((100, MAX_CHANNELS + 1), np.float32), 22050, format="WAV")
    with pytest.raises(
        AudioDecodeError, match=f"{MAX_CHANNELS + 1} channels; this reads up to {MAX_CHANNELS}"
    ):
        load_audio(wide.getvalue())


def test_a_file_longer_than_max_seconds_is_refused_from_its_header() -> None:
    data = _flac(tone(3.0), 22050)
    with pytest.raises(AudioDecodeError, match=r"3\.0 s long; clips of up to 2 s are accepted"):
        load_audio(data, max_seconds=2.0)
    assert load_audio(data, max_seconds=3.0).num_samples == 3 * 22050


def test_a_flac_of_unknown_length_gets_a_clear_error() -> None:
    data = _without_length(_flac(tone(1.0), 22050))
    assert sf.info(io.BytesIO(data)).frames >= 2**62  # libsndfile's "unknown"
    with pytest.raises(AudioDecodeError, match="does not say how long it is") as caught:
        load_audio(data, name="stream.flac")
    assert "stream.flac" in str(caught.value)


def test_decoding_many_channels_needs_the_mono_result_and_one_block() -> None:
    import tracemalloc

    frames, channels, rate = 480_000, MAX_CHANNELS, 48_000  # 10 s of 8 channels: 15 MiB as float32
    wave = np.sin(np.arange(frames, dtype=np.float32) * 0.05)[:, None] * np.linspace(0.1, 0.4, channels)
    data = _flac(wave.astype(np.float32), rate)
    tracemalloc.start()
    try:
        audio = load_audio(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert audio.num_samples == frames
    np.testing.assert_allclose(audio.samples, wave.mean(axis=1), atol=1e-4)  # 16-bit FLAC rounding
    # a copy of the (compressed) file, the mono result (4 bytes a frame), one block of every channel
    # and its mono mix, plus 1 MiB for Python's own objects; decoding the whole file at once, as
    # before, needs 4 bytes x 8 channels a frame on top of the result
    bound = len(data) + 4 * frames + 4 * DECODE_BLOCK_FRAMES * (channels + 1) + 2**20
    assert peak < bound < 4 * frames * channels
    del audio


# ---------------------------------------------------------------------------------------------- DSP


def test_sinc_resampler_keeps_a_tone_and_has_torchaudio_length() -> None:
    samples = torch.from_numpy(tone(1.0, rate=22050, freq=440.0))
    out = resample(samples, 22050, 16000)
    assert out.shape == (16000,)
    assert dominant_frequency(out.numpy(), 16000) == pytest.approx(440.0, abs=2.0)
    batch = resample(torch.stack([samples, samples * 0.5]), 22050, 16000)
    torch.testing.assert_close(batch[0], out)
    assert resample(samples, 16000, 16000) is samples


def test_kaldi_fbank_frame_count_and_short_input() -> None:
    wave = torch.from_numpy(tone(1.0, rate=16000))
    assert kaldi_fbank(wave).shape == (98, 80)  # 1 + (16000 - 400) // 160
    assert kaldi_fbank(wave[:300]).shape == (0, 80)


def test_prompt_mel_frame_count() -> None:
    wave = torch.from_numpy(tone(1.0))
    assert log_mel_spectrogram(wave).shape == (80, 1 + (22050 + 768 - 1024) // 256)


# Tolerances the issue asks for; we reach 0 (bit-identical) on the golden clip.
RESAMPLE_TOL, FEATURE_TOL = 1e-5, 1e-4


@pytest.mark.goldens
def test_speaker_clip_chain_matches_the_official_pipeline(golden_set) -> None:
    expected = golden_set.tensors("audio")
    loaded = torch.from_numpy(load_audio(golden_set.inputs / "ref.wav", 22050).samples).unsqueeze(0)
    torch.testing.assert_close(loaded, expected["ref.loaded"], atol=RESAMPLE_TOL, rtol=0)
    audio_16k = resample(loaded, 22050, 16000)
    torch.testing.assert_close(audio_16k, expected["ref.audio_16k"], atol=RESAMPLE_TOL, rtol=0)
    fbank = kaldi_fbank(audio_16k)
    torch.testing.assert_close(fbank, expected["ref.fbank"], atol=FEATURE_TOL, rtol=0)
    mel = log_mel_spectrogram(loaded)
    torch.testing.assert_close(mel, expected["ref.mel"], atol=FEATURE_TOL, rtol=0)


@pytest.mark.goldens
@pytest.mark.parametrize(
    ("clip", "key"), [("emo.wav", "emo.loaded_16k"), ("ref.wav", "ref_as_emo.loaded_16k")]
)
def test_librosa_style_16k_loading_matches(golden_set, clip: str, key: str) -> None:
    loaded = load_audio(golden_set.inputs / clip, 16000, resampler="soxr")
    expected = golden_set.tensors("audio")[key][0].numpy()
    assert loaded.samples.shape == expected.shape
    assert np.abs(loaded.samples - expected).max() <= RESAMPLE_TOL


def test_soxr_resampler_length_follows_librosa() -> None:
    samples = tone(0.3, rate=22050)
    assert resample_soxr(samples, 22050, 16000).shape == (math.ceil(samples.size * 16000 / 22050),)
