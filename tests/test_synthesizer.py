"""The Synthesizer on dummy:tiny: voices, validation, streaming, batching, emotions, determinism."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from indextts2 import Audio, Emotion, IndexTTS2Error, SynthesisOptions, Synthesizer, Voice
from indextts2.errors import AudioDecodeError, InvalidInput, TextTooLong
from indextts2.parity import run_parity

# Random weights rarely emit the stop code: cap the codes and the solver steps to keep tests fast.
FAST = SynthesisOptions(max_codes=16, diffusion_steps=3, num_beams=1, seed=11)
RATE = 22050


def tone(seconds: float, *, frequency: float = 220.0, rate: int = RATE, amplitude: float = 0.3) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    return Audio((amplitude * np.sin(2 * math.pi * frequency * t)).astype(np.float32), rate)


@pytest.fixture(scope="module")
def tts() -> Synthesizer:
    return Synthesizer.from_pretrained("dummy:tiny", device="cpu")


@pytest.fixture(scope="module")
def voice(tts: Synthesizer) -> Voice:
    return tts.voice(tone(2.0))


class CallCounter:
    """Counts calls of a method of an object while keeping its behaviour."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        self.calls = 0
        original = getattr(owner, name)

        def counted(*args: object, **kwargs: object) -> object:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


# ---------------------------------------------------------------------------------------------- loading


def test_dummy_tiny_loads_on_the_cpu_in_fp32(tts: Synthesizer) -> None:
    assert tts.model_id == "dummy:tiny"
    assert tts.device.type == "cpu"
    assert tts.sample_rate == RATE
    assert tts.model.gpt_dtype == torch.float32


def test_unknown_devices_and_dtypes_are_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown device"):
        Synthesizer.from_pretrained("dummy:tiny", device="tpu:9")
    with pytest.raises(InvalidInput, match="precision"):
        Synthesizer.from_pretrained("dummy:tiny", device="cpu", dtype="fp8")


def test_close_frees_the_model_and_the_context_manager_closes() -> None:
    with Synthesizer.from_pretrained("dummy:tiny", device="cpu") as tts:
        tts.voice(tone(1.0))
    with pytest.raises(IndexTTS2Error, match="closed"):
        tts.voice(tone(1.0))


# ---------------------------------------------------------------------------------------------- voices


def test_the_same_recording_is_encoded_once_whatever_its_container(
    tts: Synthesizer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import soundfile as sf

    encoder = CallCounter(monkeypatch, tts.model.voice_encoder, "encode_voice")
    pcm = np.round(tone(1.5, frequency=330.0).samples * 32767).astype(np.int16)
    sf.write(tmp_path / "clip.flac", pcm, RATE)
    sf.write(tmp_path / "clip.wav", pcm, RATE)
    first = tts.voice(tmp_path / "clip.flac")
    second = tts.voice((tmp_path / "clip.wav").read_bytes())  # same samples, another container
    assert encoder.calls == 1
    assert first is second
    assert len(first.id) == 64
    assert first.duration == pytest.approx(1.5, abs=1e-3)


def test_different_recordings_get_different_voices(tts: Synthesizer) -> None:
    assert tts.voice(tone(1.0, frequency=200.0)).id != tts.voice(tone(1.0, frequency=210.0)).id


def test_short_silent_and_broken_references_are_refused(tts: Synthesizer) -> None:
    with pytest.raises(InvalidInput, match=r"0\.30 s long; give at least 0\.5 s"):
        tts.voice(tone(0.3))
    with pytest.raises(InvalidInput, match="silent"):
        tts.voice(Audio(np.zeros(RATE, np.float32), RATE))
    with pytest.raises(AudioDecodeError, match="not a recognised audio file"):
        tts.voice(b"this is not audio" * 100)


def test_a_long_reference_is_trimmed_to_15_seconds_with_a_warning(
    tts: Synthesizer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="indextts2.synthesizer"):
        voice = tts.voice(tone(16.5, frequency=180.0))
    assert voice.duration == pytest.approx(15.0)
    assert "only its first 15 s are used" in caplog.text


def test_a_saved_voice_loads_back_and_speaks_the_same(tts: Synthesizer, voice: Voice, tmp_path: Path) -> None:
    path = voice.save(tmp_path / "speaker.safetensors")
    loaded = tts.load_voice(path)
    assert (loaded.id, loaded.model_id, loaded.duration) == (voice.id, voice.model_id, voice.duration)
    original = tts.synthesize("你好。", voice=voice, options=FAST)
    again = tts.synthesize("你好。", voice=loaded, options=FAST)
    np.testing.assert_array_equal(original.samples, again.samples)


def test_a_voice_of_another_model_is_refused(voice: Voice, goldens: Path) -> None:
    with Synthesizer.from_pretrained(goldens / "checkpoint", device="cpu") as other:
        with pytest.raises(InvalidInput, match="made with model dummy:tiny"):
            other.synthesize("Hello.", voice=voice, options=FAST)
        with pytest.raises(InvalidInput, match="create the voice again"):
            other.check_voice(voice)


def test_files_that_are_not_voices_are_refused(tts: Synthesizer, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    bogus = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(2)}, str(bogus))
    with pytest.raises(InvalidInput, match="not an indextts2 voice"):
        tts.load_voice(bogus)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(InvalidInput, match="not a voice file"):
        tts.load_voice(broken)
    with pytest.raises(InvalidInput, match="does not exist"):
        tts.load_voice(tmp_path / "missing.safetensors")


# ---------------------------------------------------------------------------------------------- requests


def test_synthesize_returns_22khz_audio_and_a_seed_fixes_it(tts: Synthesizer, voice: Voice) -> None:
    first = tts.synthesize("Hello there, nice to meet you!", voice=voice, options=FAST)
    again = tts.synthesize("Hello there, nice to meet you!", voice=voice, options=FAST)
    other = tts.synthesize("Hello there, nice to meet you!", voice=voice, options=FAST.replace(seed=12))
    assert first.sample_rate == RATE
    assert first.num_samples > 0
    assert np.abs(first.samples).max() <= 1.0
    np.testing.assert_array_equal(first.samples, again.samples)
    assert not np.array_equal(first.samples, other.samples)


@pytest.mark.parametrize(
    ("text", "error"),
    [("", "empty"), ("   \n\t", "empty"), ("x" * 10_001, "10,001 characters")],
)
def test_bad_text_fails_before_any_audio(tts: Synthesizer, voice: Voice, text: str, error: str) -> None:
    before = segments_started(tts)
    with pytest.raises(InvalidInput, match=error):
        tts.stream(text, voice=voice, options=FAST)  # raises at the call, not when iterated
    assert segments_started(tts) == before


def test_the_per_call_text_limit_and_model_limits(tts: Synthesizer, voice: Voice) -> None:
    with pytest.raises(TextTooLong, match="limit of 5"):
        tts.validate("Hello there.", voice=voice, max_text_chars=5)
    with pytest.raises(InvalidInput, match="max_codes 5000"):
        tts.validate("Hi.", voice=voice, options=SynthesisOptions(max_codes=5000))
    with pytest.raises(InvalidInput, match="max_text_tokens_per_segment 900"):
        tts.validate("Hi.", voice=voice, options=SynthesisOptions(max_text_tokens_per_segment=900))
    with pytest.raises(InvalidInput, match="options must be SynthesisOptions"):
        tts.validate("Hi.", voice=voice, options={"seed": 1})  # type: ignore[arg-type]


def test_stream_yields_segments_with_the_official_silence_between(tts: Synthesizer, voice: Voice) -> None:
    options = FAST.replace(max_text_tokens_per_segment=12)
    text = "你好。今天天气不错，我们出去走走吧！Hello world."
    chunks = list(tts.stream(text, voice=voice, options=options))
    segments = len(tts.text_frontend.prepare(text, max_tokens_per_segment=12))
    assert segments == 2
    assert [c.segment for c in chunks] == [0, 1, 1]
    assert [c.final for c in chunks] == [False, False, True]
    assert chunks[1].samples.shape == (int(RATE * 200 / 1000),)  # 4410 zeros, as official
    assert not chunks[1].samples.any()
    whole = tts.synthesize(text, voice=voice, options=options)
    np.testing.assert_array_equal(np.concatenate([c.samples for c in chunks]), whole.samples)
    quiet = list(tts.stream(text, voice=voice, options=options.replace(interval_silence_ms=0)))
    assert len(quiet) == 2


def segments_started(tts: Synthesizer) -> int:
    """Segments the engine has begun to decode (for every request of this Synthesizer so far)."""
    return tts.engine.stats().segments_started


def test_a_long_article_streams_segment_by_segment(tts: Synthesizer, voice: Voice) -> None:
    article = ("今天的天气很好，我们一起去公园散步。The weather is lovely today. " * 60)[:3000]
    options = FAST.replace(max_codes=4, diffusion_steps=1)
    before = segments_started(tts)
    chunks = tts.stream(article, voice=voice, options=options)
    first = next(chunks)
    assert first.segment == 0
    # the first segment arrives while at most the next one is being decoded (a stream reads ahead
    # by one segment, so the GPT decodes it while the first is rendered)
    assert segments_started(tts) - before <= 2
    rest = list(chunks)
    segments = len(tts.text_frontend.prepare(article, max_tokens_per_segment=120))
    assert segments > 10
    assert segments_started(tts) - before == segments
    assert rest[-1].final
    assert len(rest) + 1 == 2 * segments - 1


def test_closing_a_stream_stops_the_work(tts: Synthesizer, voice: Voice) -> None:
    text = "One. Two. Three. Four. Five. Six. Seven. Eight."
    options = FAST.replace(max_text_tokens_per_segment=2)
    segments = len(tts.text_frontend.prepare(text, max_tokens_per_segment=2))
    before = segments_started(tts)
    chunks = tts.stream(text, voice=voice, options=options)
    next(chunks)
    chunks.close()  # type: ignore[attr-defined]
    started = segments_started(tts) - before
    assert started <= 2
    deadline = time.monotonic() + 60  # a bound against a hang: the engine drops it at its next step
    while tts.engine.stats().active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tts.engine.stats().active == 0  # the request has left the engine
    assert segments_started(tts) - before == started < segments


def test_synthesize_batch_gives_each_text_its_solo_audio(tts: Synthesizer, voice: Voice) -> None:
    texts = ["你好，世界。", "Hello there, nice to meet you! How are you today?", "再见。"]
    options = FAST.replace(max_text_tokens_per_segment=8)
    batch = tts.synthesize_batch(texts, voice=voice, options=options, batch_segments=4)
    assert len(batch) == 3
    for text, audio in zip(texts, batch, strict=True):
        alone = tts.synthesize(text, voice=voice, options=options)
        assert audio.num_samples == alone.num_samples
        np.testing.assert_allclose(audio.samples, alone.samples, atol=1e-5)
    with pytest.raises(InvalidInput, match="list of texts"):
        tts.synthesize_batch("one text", voice=voice)  # type: ignore[arg-type]


def test_speed_changes_the_length_not_the_codes(tts: Synthesizer, voice: Voice) -> None:
    normal = tts.synthesize("Hello there.", voice=voice, options=FAST)
    fast = tts.synthesize("Hello there.", voice=voice, options=FAST.replace(speed=2.0))
    slow = tts.synthesize("Hello there.", voice=voice, options=FAST.replace(speed=0.5))
    assert fast.duration == pytest.approx(normal.duration / 2, rel=0.1)
    assert slow.duration == pytest.approx(normal.duration * 2, rel=0.1)
    with pytest.raises(InvalidInput, match=r"speed must be between 0\.5 and 2\.0"):
        FAST.replace(speed=3.0)


# ---------------------------------------------------------------------------------------------- emotions


def test_every_emotion_source_runs_and_changes_the_speech(tts: Synthesizer, voice: Voice) -> None:
    text = "I can't believe it!"
    plain = tts.synthesize(text, voice=voice, options=FAST).samples
    variants = {
        "clip": Emotion(audio=tone(1.2, frequency=500.0), alpha=0.6),
        "vector": Emotion(vector={"happy": 0.6, "surprised": 0.2}),
        "random": Emotion(vector={"angry": 0.5}, random=True),
        "text": Emotion(text="She is absolutely thrilled!", alpha=0.8),
    }
    for name, emotion in variants.items():
        samples = tts.synthesize(text, voice=voice, emotion=emotion, options=FAST).samples
        assert samples.size > 0, name
        assert not np.array_equal(samples, plain), name


def test_an_emotion_clip_is_encoded_once(
    tts: Synthesizer, voice: Voice, monkeypatch: pytest.MonkeyPatch
) -> None:
    encoder = CallCounter(monkeypatch, tts.model.voice_encoder, "encode_emotion")
    emotion = Emotion(audio=tone(1.0, frequency=610.0).to_bytes("wav"), alpha=0.5)
    for _ in range(2):
        tts.synthesize("Again.", voice=voice, emotion=emotion, options=FAST)
    assert encoder.calls == 1


def test_bad_emotions_say_what_to_fix(tts: Synthesizer, voice: Voice) -> None:
    with pytest.raises(InvalidInput, match=r"sum to 1\.2"):
        Emotion(vector={"happy": 0.7, "sad": 0.5})
    with pytest.raises(InvalidInput, match="one emotion source"):
        Emotion(text="happy", vector={"happy": 0.5})
    with pytest.raises(InvalidInput, match="non-empty"):
        Emotion(text="  ")
    with pytest.raises(AudioDecodeError):
        tts.validate("Hi.", voice=voice, emotion=Emotion(audio=b"not audio at all" * 50))


def test_emotion_text_needs_the_qwen_model_of_a_real_checkpoint(goldens: Path) -> None:
    # the golden checkpoint has no qwen0.6bemo4-merge/: a clear error, not a crash
    from indextts2.errors import ModelFilesMissing

    with Synthesizer.from_pretrained(goldens / "checkpoint", device="cpu") as tts:
        voice = tts.voice(goldens / "inputs" / "ref.wav")
        with pytest.raises(ModelFilesMissing, match="emotion from text needs the Qwen emotion model"):
            tts.synthesize("Hi.", voice=voice, emotion=Emotion(text="cheerful"), options=FAST)


# ------------------------------------------------------------------------------ precision, parity


@pytest.mark.parametrize(("dtype", "torch_dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_a_half_precision_gpt_runs_and_returns_float32(
    voice: Voice, dtype: str, torch_dtype: torch.dtype
) -> None:
    # fp16 is the GPU default: its code path (half KV pool and logits, float32 sampling) runs here too
    with Synthesizer.from_pretrained("dummy:tiny", device="cpu", dtype=dtype) as tts:
        assert tts.model.gpt_dtype == torch_dtype
        assert tts.engine.pool is not None
        assert tts.engine.pool.cache.keys.dtype == torch_dtype
        audio = tts.synthesize("Hello.", voice=voice, options=FAST)
    assert audio.samples.dtype == np.float32
    assert audio.num_samples > 0


@pytest.mark.goldens
def test_end_to_end_parity_with_the_official_pipeline(goldens: Path) -> None:
    report = run_parity(goldens, ["e2e"])
    failures = report.failures()
    assert report.passed, [f"{c.item}: {c.measure} {c.note}" for c in failures]
    waves = [c for c in report.checks if c.item.endswith(".wave")]
    assert len(waves) == 2
    assert all(c.max_abs_error is not None and c.max_abs_error <= 1e-3 for c in waves)
