"""models import / export: directories, tarballs, round trips, and archives that try to escape."""

from __future__ import annotations

import errno
import io
import os
import tarfile
from pathlib import Path

import pytest
from fakehub import MODEL, FakeHub, write_checkpoints

from indextts2.errors import InvalidInput, ModelFilesMissing, ModelNotFound, StoreError
from indextts2.store import ModelFiles, export_model, import_model, list_models, resolve_model, verify_model
from indextts2.store import archive as archive_module
from indextts2.store.layout import Store


def _tar(path: Path, directory: Path, *, top: str = "checkpoints", gzip: bool = False) -> Path:
    with tarfile.open(path, "w:gz" if gzip else "w") as tar:
        tar.add(directory, arcname=top)
    return path


def _files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_import_a_directory(tmp_path: Path) -> None:
    source = write_checkpoints(tmp_path / "ckpt")
    files = import_model(source, cache_dir=tmp_path / "cache")
    assert files.gpt.read_bytes() == (source / "gpt.pth").read_bytes()
    assert files.revision is not None
    assert files.revision.startswith("imported-")
    assert files.qwen_emotion is not None
    assert verify_model(MODEL, cache_dir=tmp_path / "cache").ok
    # Offline resolution finds it, as an air-gapped server would.
    assert resolve_model("IndexTeam/IndexTTS-2", cache_dir=tmp_path / "cache", offline=True) == files
    assert list_models(cache_dir=tmp_path / "cache").revisions[0].refs == ("main",)


def test_import_a_directory_by_hard_links(tmp_path: Path) -> None:
    source = write_checkpoints(tmp_path / "ckpt")
    files = import_model(source, cache_dir=tmp_path / "cache", link=True)
    assert os.path.samefile(files.gpt, source / "gpt.pth")


def test_import_a_gzipped_tarball_with_a_top_directory(tmp_path: Path) -> None:
    source = write_checkpoints(tmp_path / "ckpt", with_qwen=False)
    archive = _tar(tmp_path / "ckpt.tar.gz", source, gzip=True)
    files = import_model(archive, cache_dir=tmp_path / "cache")
    assert files.campplus.read_bytes() == (source / "campplus" / "campplus_cn_common.bin").read_bytes()
    assert files.qwen_emotion is None


def test_export_then_import_round_trip_keeps_commits(
    downloaded: ModelFiles, cache: Path, tmp_path: Path
) -> None:
    archive = export_model(tmp_path / "model.tar", model_id=MODEL, cache_dir=cache)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "IndexTTS-2/indextts2-manifest.json" in names
    assert "IndexTTS-2/w2v-bert-2.0/model.safetensors" in names
    assert all(tar_member.startswith("IndexTTS-2/") for tar_member in names)

    other = tmp_path / "other-machine"
    files = import_model(archive, cache_dir=other)
    assert files.revision == downloaded.revision
    for role, path in downloaded.paths().items():
        if path.is_file():
            assert getattr(files, role).read_bytes() == path.read_bytes(), role
    assert verify_model(MODEL, cache_dir=other).ok
    before = {r.commit for r in list_models(cache_dir=cache).revisions}
    assert {r.commit for r in list_models(cache_dir=other).revisions} == before


def test_export_writes_gzip_and_refuses_to_overwrite(
    downloaded: ModelFiles, cache: Path, tmp_path: Path
) -> None:
    archive = export_model(tmp_path / "model.tgz", model_id=MODEL, cache_dir=cache)
    with tarfile.open(archive, "r:gz") as tar:
        assert tar.getmember("IndexTTS-2/gpt.pth").size == downloaded.gpt.stat().st_size
    with pytest.raises(StoreError, match="already exists"):
        export_model(archive, model_id=MODEL, cache_dir=cache)
    with pytest.raises(InvalidInput, match=r"\.tar"):
        export_model(tmp_path / "model.zip", model_id=MODEL, cache_dir=cache)


def test_export_refuses_a_damaged_store(downloaded: ModelFiles, cache: Path, tmp_path: Path) -> None:
    blob = downloaded.s2mel.resolve()
    data = bytearray(blob.read_bytes())
    data[100] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged"):
        export_model(tmp_path / "model.tar", model_id=MODEL, cache_dir=cache)
    assert list(tmp_path.glob("*model.tar*")) == []  # no half-written archive


def test_export_of_an_incomplete_store_names_what_is_missing(
    hub: FakeHub, cache: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelFilesMissing, match=r"gpt\.pth"):
        export_model(tmp_path / "model.tar", model_id=MODEL, cache_dir=cache)


def test_an_archive_whose_file_does_not_match_its_manifest(
    downloaded: ModelFiles, cache: Path, tmp_path: Path
) -> None:
    good = export_model(tmp_path / "model.tar", model_id=MODEL, cache_dir=cache)
    bad = tmp_path / "bad.tar"
    with tarfile.open(good) as source, tarfile.open(bad, "w") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("feat2.pt"):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            target.addfile(member, io.BytesIO(data))
    other = tmp_path / "other"
    with pytest.raises(StoreError, match=r"feat2\.pt does not match"):
        import_model(bad, cache_dir=other)
    assert list_models(cache_dir=other).revisions == ()


def _evil_tar(path: Path, source: Path, add_evil) -> Path:
    with tarfile.open(path, "w") as tar:
        tar.add(source, arcname="checkpoints")
        add_evil(tar)
    return path


def _file_member(name: str, data: bytes = b"owned") -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, io.BytesIO(data)


@pytest.mark.parametrize(
    "case",
    ["dotdot", "absolute", "symlink-out", "symlink-absolute", "hardlink-out", "device"],
)
def test_an_archive_that_reaches_outside_is_refused_and_writes_nothing(tmp_path: Path, case: str) -> None:
    source = write_checkpoints(tmp_path / "ckpt", with_qwen=False)
    victim = tmp_path / "victim.txt"

    def add_evil(tar: tarfile.TarFile) -> None:
        if case == "dotdot":
            tar.addfile(*_file_member("checkpoints/../../victim.txt"))
        elif case == "absolute":
            tar.addfile(*_file_member(str(victim)))
        elif case in ("symlink-out", "symlink-absolute"):
            info = tarfile.TarInfo("checkpoints/bigvgan/extra.pt")
            info.type = tarfile.SYMTYPE
            info.linkname = "../../../victim.txt" if case == "symlink-out" else str(victim)
            tar.addfile(info)
        elif case == "hardlink-out":
            info = tarfile.TarInfo("checkpoints/extra.pt")
            info.type = tarfile.LNKTYPE
            info.linkname = "../victim.txt"
            tar.addfile(info)
        else:
            info = tarfile.TarInfo("checkpoints/null")
            info.type = tarfile.CHRTYPE
            tar.addfile(info)

    archive = _evil_tar(tmp_path / "evil.tar", source, add_evil)
    cache = tmp_path / "cache"

    def outside_the_cache() -> set[str]:
        return {p for p in _files_under(tmp_path) if p.split("/")[0] != "cache"}

    before = outside_the_cache()
    with pytest.raises(StoreError, match="refusing to import"):
        import_model(archive, cache_dir=cache)
    assert not victim.exists()
    assert outside_the_cache() == before
    assert not (cache / "models" / "blobs").exists()
    assert list_models(cache_dir=cache).revisions == ()


def test_links_inside_an_archive_are_followed(tmp_path: Path) -> None:
    source = write_checkpoints(tmp_path / "ckpt", with_qwen=False)
    (source / "feat2.pt").rename(source / "emotion.pt")
    (source / "feat2.pt").symlink_to("emotion.pt")
    archive = _tar(tmp_path / "linked.tar", source)
    files = import_model(archive, cache_dir=tmp_path / "cache")
    assert files.emotion_matrix.read_bytes() == (source / "emotion.pt").read_bytes()


def test_sources_that_are_not_models(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(ModelNotFound, match="does not exist"):
        import_model(tmp_path / "nothing.tar", cache_dir=cache)
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive" * 40)
    with pytest.raises(StoreError, match="neither a directory nor a readable tar"):
        import_model(junk, cache_dir=cache)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("hi")
    with pytest.raises(ModelNotFound, match="no model in the official checkpoints layout"):
        import_model(tmp_path / "docs", cache_dir=cache)
    partial = write_checkpoints(tmp_path / "partial")
    (partial / "campplus" / "campplus_cn_common.bin").unlink()
    with pytest.raises(ModelFilesMissing, match=r"campplus/campplus_cn_common\.bin"):
        import_model(partial, cache_dir=cache)
    assert list_models(cache_dir=cache).revisions == ()


def test_a_full_disk_during_import_is_clear_and_leaves_the_cache_as_it_was(
    downloaded: ModelFiles, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_checkpoints(tmp_path / "ckpt")
    (source / "gpt.pth").write_bytes(b"a different gpt" * 1000)  # a new blob must be written
    calls = {"n": 0}
    real_write = archive_module._write_chunk

    def fills_up(handle, chunk: bytes) -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(handle, chunk)

    monkeypatch.setattr(archive_module, "_write_chunk", fills_up)
    before = list_models(cache_dir=cache)
    with pytest.raises(StoreError, match="disk is full"):
        import_model(source, cache_dir=cache)
    assert list_models(cache_dir=cache).revisions == before.revisions
    assert verify_model(MODEL, cache_dir=cache).ok
    assert not [p for p in Store(cache).partial_dir.glob("tmp-*")]  # no half-written file left
