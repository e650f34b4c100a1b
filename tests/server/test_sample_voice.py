"""The sample voice shipped with indextts2, offered by the server as the built-in voice ``sample``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from server_helpers import multipart

from indextts2.audio import load_audio
from indextts2.samples import sample_voice
from indextts2.server.errors import Conflict
from indextts2.server.voices import VoiceStore, is_voice_id


def test_the_store_lists_a_builtin_voice_first_and_never_writes_or_deletes_it(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path)
    store.load()
    builtin = store.add_builtin("sample", sample_voice(), duration=5.797)
    store.save(voice_id="a" * 64, reference=b"RIFF", filename="me.wav", name="me", duration=1.0, model_id="m")
    assert [(r.name, r.builtin) for r in store.records()] == [("sample", True), ("me", False)]
    assert is_voice_id(builtin.id)
    assert store.get("sample") == store.get(builtin.id) == builtin
    assert store.reference_bytes("sample") == sample_voice().read_bytes()
    with pytest.raises(Conflict, match="built in and cannot be deleted"):
        store.delete("sample")
    with pytest.raises(Conflict, match="belongs to a built-in voice"):
        store.save(
            voice_id="b" * 64, reference=b"RIFF", filename="x.wav", name="sample", duration=1, model_id="m"
        )
    # the sample clip uploaded again stays the built-in voice: no saved copy, no second name
    assert store.save(
        voice_id=builtin.id, reference=b"RIFF", filename="s.wav", name=None, duration=1, model_id="m"
    ) == (builtin, False)
    with pytest.raises(Conflict, match="cannot take another name"):
        store.save(
            voice_id=builtin.id, reference=b"RIFF", filename="s.wav", name="s2", duration=1, model_id="m"
        )
    store.remember_conditioning(builtin.id, "encoded")
    assert store.cached_conditioning(builtin.id) == "encoded"  # encoded once, like a saved voice
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a" * 64]  # nothing of it on disk


def test_a_server_with_the_sample_voice_speaks_in_it(make_client: Any) -> None:
    client = make_client(sample_voice=True)
    voices = client.get("/v1/voices").json()["data"]
    assert [(v["name"], v["builtin"], v["duration"]) for v in voices] == [("sample", True, 5.797)]
    response = client.post("/v1/tts", files=multipart(text="Hello.", voice="sample"))
    assert response.status_code == 200, response.text
    assert load_audio(response.content).duration > 0.3
    refused = client.delete("/v1/voices/sample")
    assert refused.status_code == 409
    assert "--no-sample-voice" in refused.json()["error"]["message"]


def test_without_it_the_server_has_no_voices(make_client: Any) -> None:
    assert make_client().get("/v1/voices").json()["data"] == []
