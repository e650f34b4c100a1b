"""The voice store on disk: atomic writes, restarts, ids and names that cannot escape the directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from indextts2.errors import InvalidInput, VoiceNotFound
from indextts2.server.errors import Conflict
from indextts2.server.voices import VoiceStore, is_voice_id

VOICE_A = "a" * 64
VOICE_B = "b" * 64


def _save(
    store: VoiceStore, voice_id: str = VOICE_A, name: str | None = None, data: bytes = b"RIFF..."
) -> bool:
    _, created = store.save(
        voice_id=voice_id, reference=data, filename="clip.wav", name=name, duration=1.25, model_id="m"
    )
    return created


def test_saved_voices_survive_a_restart(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path)
    store.load()
    assert _save(store, name="alice", data=b"clip-bytes") is True
    assert _save(store) is False  # the same id again: nothing new
    reopened = VoiceStore(tmp_path)
    reopened.load()
    record = reopened.get("alice")
    assert record.id == VOICE_A
    assert record.duration == 1.25
    assert reopened.reference_bytes(VOICE_A) == b"clip-bytes"
    assert sorted(p.name for p in (tmp_path / VOICE_A).iterdir()) == ["meta.json", "reference.wav"]


def test_no_temporary_directories_are_left(tmp_path: Path) -> None:
    (tmp_path / ".tmp-crashed").mkdir()  # as a crash in the middle of a write would leave it
    store = VoiceStore(tmp_path)
    store.load()
    _save(store)
    store.delete(VOICE_A)
    assert list(tmp_path.iterdir()) == []


def test_broken_entries_are_skipped(tmp_path: Path) -> None:
    (tmp_path / VOICE_B).mkdir()
    (tmp_path / VOICE_B / "meta.json").write_text("{not json")
    (tmp_path / "notes.txt").write_text("an operator's file")
    store = VoiceStore(tmp_path)
    store.load()
    assert store.records() == []


def test_names_are_unique(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path)
    store.load()
    _save(store, VOICE_A, name="bob")
    with pytest.raises(Conflict, match="taken by voice"):
        _save(store, VOICE_B, name="bob")


@pytest.mark.parametrize("bad", ["../etc", "a/b", "..", "x" * 65, "", " ", "a\x00b", VOICE_A.upper() + "/"])
def test_malformed_ids_and_names_never_reach_the_disk(tmp_path: Path, bad: str) -> None:
    store = VoiceStore(tmp_path)
    store.load()
    with pytest.raises(InvalidInput, match="not a voice id"):
        store.get(bad)


def test_unknown_voice(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path)
    store.load()
    with pytest.raises(VoiceNotFound, match="GET /v1/voices"):
        store.get(VOICE_A)
    assert is_voice_id(VOICE_A)
    assert not is_voice_id("alice")


def test_conditioning_cache_is_bounded(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path, cache_size=1)
    store.load()
    _save(store, VOICE_A)
    _save(store, VOICE_B)
    store.remember_conditioning(VOICE_A, "conditioning-a")
    store.remember_conditioning(VOICE_B, "conditioning-b")
    assert store.cached_conditioning(VOICE_A) is None
    assert store.cached_conditioning(VOICE_B) == "conditioning-b"
    store.delete(VOICE_B)
    assert store.cached_conditioning(VOICE_B) is None


def test_servers_sharing_a_directory_see_each_others_voices(tmp_path: Path) -> None:
    """Pods of a Deployment (or Ray ingress replicas) on one volume: a voice one saves, the other
    finds on first use; and a half-written entry of one is never removed by the other."""
    first = VoiceStore(tmp_path, rescan_seconds=0)
    second = VoiceStore(tmp_path, rescan_seconds=0)
    first.load()
    second.load()
    writing = tmp_path / ".tmp-being-written-by-another-pod"
    writing.mkdir()
    record, _ = first.save(
        voice_id="a" * 64, reference=b"RIFF", filename="me.wav", name="shared", duration=1.0, model_id="m"
    )
    assert second.get("shared").id == record.id
    assert [r.id for r in second.records()] == [record.id]
    assert writing.exists()
    with pytest.raises(VoiceNotFound):
        second.get("nobody")
