"""list, verify and rm on a store filled from the fake hub."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakehub import MODEL, FakeHub

from indextts2.errors import ModelNotFound
from indextts2.store import (
    ModelFiles,
    download_model,
    list_models,
    plan_removal,
    remove,
    resolve_model,
    verify_model,
)
from indextts2.store.layout import Store


def _flip_a_byte(path: Path, at: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_list_shows_a_complete_model(downloaded: ModelFiles, cache: Path) -> None:
    report = list_models(cache_dir=cache)
    assert len(report.revisions) == 1
    item = report.revisions[0]
    assert item.model_id == "IndexTeam/IndexTTS-2"
    assert item.commit == downloaded.revision
    assert item.refs == ("main",)
    assert item.complete
    assert item.size == sum(p.stat().st_size for p in Store(cache).blobs_dir.iterdir())
    assert report.partial_bytes == 0


def test_list_names_missing_files(downloaded: ModelFiles, cache: Path) -> None:
    assert downloaded.qwen_emotion is not None
    (downloaded.qwen_emotion / "model.safetensors").resolve().unlink()
    item = list_models(cache_dir=cache).revisions[0]
    assert not item.complete
    assert item.missing == ("IndexTeam/IndexTTS-2/qwen0.6bemo4-merge/model.safetensors",)
    # The Qwen model is optional: resolving offline still works, without it.
    files = resolve_model("IndexTeam/IndexTTS-2", cache_dir=cache, offline=True)
    assert files.qwen_emotion is None
    assert files.gpt.is_file()


def test_list_of_an_empty_store(cache: Path) -> None:
    assert list_models(cache_dir=cache).revisions == ()


def test_verify_passes_on_an_intact_store(downloaded: ModelFiles, cache: Path) -> None:
    report = verify_model(MODEL, cache_dir=cache)
    assert report.ok
    assert len(report.checks) == 17


def test_verify_catches_a_flipped_byte(downloaded: ModelFiles, cache: Path) -> None:
    _flip_a_byte(downloaded.gpt.resolve(), at=123_456)
    report = verify_model(MODEL, cache_dir=cache)
    assert not report.ok
    assert [(p.name, p.status) for p in report.problems] == [("IndexTeam/IndexTTS-2/gpt.pth", "damaged")]


def test_verify_catches_a_truncated_and_a_missing_file(downloaded: ModelFiles, cache: Path) -> None:
    blob = downloaded.bpe.resolve()
    blob.write_bytes(blob.read_bytes()[:-1])
    downloaded.emotion_matrix.resolve().unlink()
    problems = {p.name: p.status for p in verify_model(MODEL, cache_dir=cache).problems}
    assert problems == {
        "IndexTeam/IndexTTS-2/bpe.model": "wrong size",
        "IndexTeam/IndexTTS-2/feat2.pt": "missing",
    }


def test_verify_fix_removes_damaged_files_so_download_fetches_them_again(
    hub: FakeHub, downloaded: ModelFiles, cache: Path
) -> None:
    _flip_a_byte(downloaded.s2mel.resolve())
    report = verify_model(MODEL, cache_dir=cache, repair=True)
    assert len(report.removed) == 1
    assert [p.status for p in verify_model(MODEL, cache_dir=cache).problems] == ["missing"]
    download_model(MODEL, cache_dir=cache)
    assert verify_model(MODEL, cache_dir=cache).ok


def test_rm_dry_run_changes_nothing_and_says_what_it_frees(downloaded: ModelFiles, cache: Path) -> None:
    store = Store(cache)
    total = sum(p.stat().st_size for p in store.blobs_dir.iterdir())
    before = sorted(p for p in store.base.rglob("*"))
    plan = plan_removal("IndexTeam/IndexTTS-2", cache_dir=cache)
    assert plan.freed_bytes == total
    assert len(plan.records) == 5
    assert sorted(p for p in store.base.rglob("*")) == before


def test_rm_removes_the_model_and_keeps_the_licence(downloaded: ModelFiles, cache: Path) -> None:
    plan = plan_removal("IndexTeam/IndexTTS-2", cache_dir=cache)
    done = remove(plan, cache_dir=cache)
    assert done.freed_bytes == plan.freed_bytes
    store = Store(cache)
    assert list(store.blobs_dir.iterdir()) == []
    assert list_models(cache_dir=cache).revisions == ()
    assert not downloaded.root.exists()
    assert (store.licenses_dir / "IndexTeam--IndexTTS-2.json").is_file()
    assert plan_removal("IndexTeam/IndexTTS-2", cache_dir=cache).empty


def test_rm_one_revision_keeps_the_auxiliary_models(
    downloaded: ModelFiles, cache: Path, hub: FakeHub
) -> None:
    assert downloaded.revision is not None
    plan = plan_removal("IndexTeam/IndexTTS-2", revision="main", cache_dir=cache)
    assert plan.records == (("IndexTeam/IndexTTS-2", downloaded.revision),)
    w2v_blob, gpt_blob = downloaded.w2v_bert_weights.resolve(), downloaded.gpt.resolve()
    remove(plan, cache_dir=cache)
    assert w2v_blob.is_file()  # an auxiliary model's file: kept for the next revision
    assert not gpt_blob.exists()
    assert not downloaded.root.exists()


def test_rm_a_revision_the_store_does_not_have(downloaded: ModelFiles, cache: Path) -> None:
    with pytest.raises(ModelNotFound, match="no revision 'v7'"):
        plan_removal("IndexTeam/IndexTTS-2", revision="v7", cache_dir=cache)


def test_rm_everything_also_drops_interrupted_downloads(downloaded: ModelFiles, cache: Path) -> None:
    store = Store(cache)
    store.partial_dir.mkdir(parents=True, exist_ok=True)
    store.partial_path("a" * 64).write_bytes(b"x" * 1000)
    plan = plan_removal(everything=True, cache_dir=cache)
    assert plan.freed_bytes == sum(p.stat().st_size for p in store.blobs_dir.iterdir()) + 1000
    remove(plan, cache_dir=cache)
    assert list(store.partial_dir.iterdir()) == []
