"""Models that never stop (random weights) speak for as long as their text takes to read.

The rule (engine.pacing, shared with ``indextts2 bench``): the text's reading time x the model's codes
per second, spread over the segments by their token counts. Real models are never paced.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from indextts2 import SynthesisOptions, Synthesizer, Voice
from indextts2.engine.pacing import codes_for_seconds, paced_codes, speech_seconds, spread_codes
from indextts2.model.s2mel import mel_frames_for_codes
from indextts2.samples import sample_voice

RATE = 22050
HOP = 256
QUICK = SynthesisOptions(diffusion_steps=2, num_beams=1, seed=3)


def audio_seconds(codes: list[int], silence_ms: int = 200) -> float:
    """What the s2mel rule and BigVGAN make of these per-segment code counts, silences included."""
    import torch

    frames = mel_frames_for_codes(torch.tensor(codes)).tolist()
    return sum(f * HOP for f in frames) / RATE + (len(codes) - 1) * silence_ms / 1000


@pytest.mark.parametrize(
    ("pieces", "seconds"),
    [
        # 4 syllables x 0.22 + a comma 0.15 + a full stop 0.35 + 5 letters x 0.075 + "!" 0.35
        (["▁你", "▁好", "▁,", "▁", "世", "▁", "界", "▁.", "HE", "LLO", "!"], 2.105),
        (["▁GO", "OD", "▁M", "OR", "N", "ING", "."], 11 * 0.075 + 0.35),
        (["▁A"], 0.3),  # never under MIN_SECONDS
        (["▁123"], 0.3),
        (["▁", "…"], 0.35),
    ],
)
def test_reading_time_of_pieces(pieces: list[str], seconds: float) -> None:
    assert speech_seconds(pieces) == pytest.approx(seconds)


def test_codes_follow_the_benchmarks_rule() -> None:
    assert codes_for_seconds(2.105, 50) == 105
    assert codes_for_seconds(0.001, 50) == 1
    assert spread_codes([10, 30], 200) == [50, 150]
    # two segments of 2 and 6 tokens: 8 syllables (1.76 s) + "." (0.35 s) = 2.11 s, 25 codes a second
    segments = [["▁一", "▁二"], ["▁三", "▁四", "▁五", "▁六", "▁七", "▁八", "."]]
    total = codes_for_seconds(8 * 0.22 + 0.35, 25)
    assert total == 53
    assert paced_codes(segments, 25) == spread_codes([2, 7], 53) == [12, 41]


@pytest.fixture(scope="module")
def tts() -> Synthesizer:
    return Synthesizer.from_pretrained("dummy:tiny", device="cpu")


@pytest.fixture(scope="module")
def voice(tts: Synthesizer) -> Voice:
    return tts.voice(sample_voice())


def test_the_quick_start_text_takes_two_seconds_without_a_warning(
    tts: Synthesizer, voice: Voice, caplog: pytest.LogCaptureFixture
) -> None:
    assert tts.model.codes_per_second == pytest.approx(22050 / 256 / 1.72)
    with caplog.at_level(logging.INFO):
        audio = tts.synthesize("你好，世界。Hello!", voice=voice, options=QUICK)
    # 2.105 s of reading -> 105 codes -> int(105 x 1.72) = 180 mel frames -> 180 x 256 samples
    assert audio.samples.shape[0] == 180 * HOP
    assert audio.duration == pytest.approx(2.09, abs=0.01)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
    assert any("<unk>" in r.getMessage() for r in caplog.records)  # said, at info level only


def test_a_longer_text_speaks_longer_on_every_path(tts: Synthesizer, voice: Voice) -> None:
    text = "A longer text is cut into segments. Each one is spoken in turn. 这是第二段。"
    options = QUICK.replace(max_text_tokens_per_segment=16)
    segments = tts.text_frontend.prepare(text, max_tokens_per_segment=16)
    assert len(segments) > 1
    codes = paced_codes([s.tokens for s in segments], tts.model.codes_per_second)
    expected = audio_seconds(codes)
    assert expected > 4.0
    streamed = tts.synthesize(text, voice=voice, options=options)
    (batched,) = tts.synthesize_batch([text], voice=voice, options=options)
    alone = Synthesizer(
        tts.model, tts.text_frontend, model_id="dummy:tiny", fingerprint=tts.fingerprint, engine=False
    )
    for audio in (streamed, batched, alone.synthesize(text, voice=voice, options=options)):
        assert audio.duration == pytest.approx(expected, abs=1e-6)
    (alone_batch,) = alone.synthesize_batch([text], voice=voice, options=options)
    assert alone_batch.duration == pytest.approx(expected, abs=1e-6)


def test_max_codes_still_caps_a_paced_model(tts: Synthesizer, voice: Voice) -> None:
    audio = tts.synthesize("你好，世界。Hello!", voice=voice, options=QUICK.replace(max_codes=20))
    assert audio.samples.shape[0] == int(20 * 1.72) * HOP


def test_a_real_model_is_not_paced(tts: Synthesizer, voice: Voice, monkeypatch: pytest.MonkeyPatch) -> None:
    # the same weights, taken for trained ones: its stop code decides when a segment ends. Random
    # weights seldom sample it, so the segment runs to max_codes (or, rarely, stops at random): either
    # way it is not the 105 codes the text would be paced to.
    monkeypatch.setattr(tts.model, "random_weights", False)
    audio = tts.synthesize("你好，世界。Hello!", voice=voice, options=QUICK.replace(max_codes=150))
    assert audio.samples.shape[0] <= int(150 * 1.72) * HOP
    assert audio.samples.shape[0] != 180 * HOP
    assert np.isfinite(audio.samples).all()
