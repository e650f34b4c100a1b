"""OpenAI's ``response_format="aac"``: AAC through PyAV (the ``aac`` extra), or a 400 naming what works."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from indextts2.audio import Audio, encode, load_audio
from indextts2.server import requests as server_requests

BODY = {"model": "tts-1", "input": "Hello in AAC.", "voice": "sample", "seed": 7}


def decode_aac(data: bytes) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "aac"
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return np.concatenate(frames), stream.rate


def test_encode_aac_keeps_the_sound() -> None:
    rate = 22050
    t = np.arange(rate) / rate
    tone = Audio((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
    data = encode(tone, "aac")
    assert data[:2] == b"\xff\xf1"  # an ADTS frame header: MPEG-4 AAC, no CRC
    samples, decoded_rate = decode_aac(data)
    assert decoded_rate == rate
    # AAC adds priming and padding frames (1024 samples each at most a few), nothing else
    assert rate <= samples.size <= rate + 3 * 1024
    spectrum = np.abs(np.fft.rfft(samples[2048 : 2048 + 16384]))
    assert np.argmax(spectrum) * rate / 16384 == pytest.approx(440, abs=2)


def test_openai_aac_is_aac_of_the_same_speech(make_client: Any) -> None:
    client = make_client(sample_voice=True)
    aac = client.post("/v1/audio/speech", json={**BODY, "response_format": "aac"})
    assert aac.status_code == 200, aac.text
    assert aac.headers["content-type"] == "audio/aac"
    wav = load_audio(client.post("/v1/audio/speech", json={**BODY, "response_format": "wav"}).content)
    samples, rate = decode_aac(aac.content)
    assert rate == wav.sample_rate
    assert samples.size / rate == pytest.approx(wav.duration, abs=3 * 1024 / rate)


def test_without_the_extra_aac_is_a_400_naming_the_formats(
    make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_requests, "aac_available", lambda: False)
    client = make_client(sample_voice=True)
    response = client.post("/v1/audio/speech", json={**BODY, "response_format": "aac"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["message"] == (
        "response_format 'aac' is not supported (aac needs the server's optional encoder: "
        "pip install 'indextts2[aac]'); use one of mp3, opus, flac, wav, pcm"
    )
