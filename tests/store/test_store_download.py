"""Downloads from a fake hub through huggingface_hub: files, resumption, offline use, licence, errors."""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import pytest
from fakehub import MODEL, FakeHub, FakeRepo, indextts2_repos, serve, sha256

from indextts2.errors import LicenseNotAccepted, ModelFilesMissing, ModelNotFound, StoreError
from indextts2.store import ModelFiles, download_model, list_models, resolve_model, verify_model
from indextts2.store.hub import _ReportingFile
from indextts2.store.layout import Store
from indextts2.store.manifest import INDEXTTS_2


def _repo(hub: FakeHub, repo_id: str) -> FakeRepo:
    return hub.repos[repo_id]


def test_download_brings_every_file_of_the_manifest(hub: FakeHub, downloaded: ModelFiles) -> None:
    main = _repo(hub, "IndexTeam/IndexTTS-2")
    assert downloaded.gpt.read_bytes() == main.files["gpt.pth"]
    assert downloaded.speaker_matrix.read_bytes() == main.files["feat1.pt"]
    assert (
        downloaded.w2v_bert_weights.read_bytes()
        == _repo(hub, "facebook/w2v-bert-2.0").files["model.safetensors"]
    )
    assert (
        downloaded.semantic_codec.read_bytes()
        == _repo(hub, "amphion/MaskGCT").files["semantic_codec/model.safetensors"]
    )
    assert downloaded.campplus.name == "campplus_cn_common.bin"
    assert downloaded.qwen_emotion is not None
    assert (downloaded.qwen_emotion / "tokenizer.json").read_bytes() == main.files[
        "qwen0.6bemo4-merge/tokenizer.json"
    ]
    assert downloaded.revision == main.commit
    # Only what the model uses: no README, no other codec of the MaskGCT repo.
    fetched = {r.path.rsplit("/resolve/", 1)[1].split("/", 1)[1] for r in hub.resolve_gets()}
    assert "README.md" not in fetched
    assert "acoustic_codec/model.safetensors" not in fetched
    assert len(hub.resolve_gets()) == 17


def test_downloaded_model_loads_its_configs(downloaded: ModelFiles) -> None:
    config = downloaded.load_config()
    assert config.gpt_dim == 48
    assert config.sample_rate == 22050
    assert "hidden_size" in config.w2v_bert


def test_a_second_download_fetches_nothing(hub: FakeHub, downloaded: ModelFiles, cache: Path) -> None:
    before = len(hub.resolve_gets())
    again = download_model(MODEL, cache_dir=cache)
    assert len(hub.resolve_gets()) == before
    assert again.root == downloaded.root


def test_resolve_model_uses_a_complete_cache_without_the_network(
    hub: FakeHub, downloaded: ModelFiles, cache: Path
) -> None:
    before = len(hub.requests)
    files = resolve_model("IndexTeam/IndexTTS-2", cache_dir=cache)
    assert len(hub.requests) == before
    assert files == downloaded


def test_a_connection_cut_mid_file_is_resumed_with_a_range_request(
    hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    # huggingface_hub hands over 10 MB chunks; small ones make a 300 kB file arrive in pieces.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16_384)
    main = _repo(hub, "IndexTeam/IndexTTS-2")
    hub.cut_once("IndexTeam/IndexTTS-2", "gpt.pth", after_bytes=100_000)
    files = download_model(MODEL, cache_dir=cache, accept_license=True)
    assert files.gpt.read_bytes() == main.files["gpt.pth"]
    gets = hub.file_gets("IndexTeam/IndexTTS-2", "gpt.pth")
    assert len(gets) == 2
    assert gets[0].range is None
    assert gets[1].range is not None
    resumed_at = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 100_000


def test_a_download_interrupted_by_ctrl_c_resumes_next_time(
    hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    main = _repo(hub, "IndexTeam/IndexTTS-2")
    original_write = _ReportingFile.write
    written = {"n": 0}

    def interrupt_after_some_bytes(self: _ReportingFile, data: bytes) -> int:
        room = 50_000 - written["n"]
        if len(data) > room:  # Ctrl-C arrives in the middle of this chunk
            original_write(self, data[:room])
            raise KeyboardInterrupt
        written["n"] += len(data)
        return original_write(self, data)

    # Files come in path order: bpe.model, config.yaml, feat1.pt, feat2.pt (11.6 kB), then gpt.pth.
    monkeypatch.setattr(_ReportingFile, "write", interrupt_after_some_bytes)
    with pytest.raises(KeyboardInterrupt):
        download_model(MODEL, cache_dir=cache, accept_license=True)
    monkeypatch.setattr(_ReportingFile, "write", original_write)

    store = Store(cache)
    partial = store.partial_path(sha256(main.files["gpt.pth"]))
    kept = partial.stat().st_size
    assert 0 < kept < len(main.files["gpt.pth"])
    missing = list_models(cache_dir=cache).revisions[0].missing
    assert "IndexTeam/IndexTTS-2/gpt.pth" in missing

    files = download_model(MODEL, cache_dir=cache)
    assert files.gpt.read_bytes() == main.files["gpt.pth"]
    assert hub.file_gets("IndexTeam/IndexTTS-2", "gpt.pth")[-1].range == f"bytes={kept}-"
    assert not partial.exists()
    assert verify_model(MODEL, cache_dir=cache).ok


def test_offline_with_an_empty_cache_names_every_missing_file(hub: FakeHub, cache: Path) -> None:
    with pytest.raises(ModelFilesMissing) as caught:
        resolve_model("IndexTeam/IndexTTS-2", cache_dir=cache, offline=True)
    assert hub.requests == []
    required = [f"{c.repo_id}/{f.repo_path}" for c in INDEXTTS_2.components for f in c.files]
    assert sorted(caught.value.missing) == sorted(required)
    assert "models import" in str(caught.value)


def test_offline_after_a_partial_download_names_exactly_what_is_missing(
    hub: FakeHub, downloaded: ModelFiles, cache: Path
) -> None:
    downloaded.bigvgan_weights.resolve().unlink()
    with pytest.raises(ModelFilesMissing) as caught:
        resolve_model("IndexTeam/IndexTTS-2", cache_dir=cache, offline=True)
    assert caught.value.missing == ["nvidia/bigvgan_v2_22khz_80band_256x/bigvgan_generator.pt"]


def test_hf_hub_offline_in_the_environment_means_offline(
    hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFilesMissing):
        resolve_model("IndexTeam/IndexTTS-2", cache_dir=cache)
    assert hub.requests == []


def test_online_resolve_downloads_only_the_missing_files(
    hub: FakeHub, downloaded: ModelFiles, cache: Path
) -> None:
    downloaded.campplus.resolve().unlink()
    before = len(hub.resolve_gets())
    files = resolve_model("IndexTeam/IndexTTS-2", cache_dir=cache)
    assert files.campplus.read_bytes() == _repo(hub, "funasr/campplus").files["campplus_cn_common.bin"]
    assert len(hub.resolve_gets()) == before + 1


def test_the_first_download_needs_the_licence_and_remembers_it(hub: FakeHub, cache: Path) -> None:
    with pytest.raises(LicenseNotAccepted) as caught:
        download_model(MODEL, cache_dir=cache)
    assert INDEXTTS_2.license_url in str(caught.value)
    assert "--accept-license" in str(caught.value)
    assert hub.requests == []
    download_model(MODEL, cache_dir=cache, accept_license=True)
    assert download_model(MODEL, cache_dir=cache, accept_license=False).gpt.is_file()


def test_the_licence_can_be_accepted_through_the_environment(
    hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INDEXTTS2_ACCEPT_LICENSE", "1")
    assert download_model(MODEL, cache_dir=cache).gpt.is_file()


def test_revision_pins_a_commit(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repos = indextts2_repos()
    old_commit = "1" * 40
    repos[0].refs["v1"] = old_commit  # the fake hub serves the same files at every commit
    with serve(repos) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        files = download_model(MODEL, cache_dir=cache, accept_license=True, revision="v1")
        assert files.revision == old_commit
        assert Store(cache).read_ref("IndexTeam/IndexTTS-2", "v1") == old_commit
        assert Store(cache).read_ref("IndexTeam/IndexTTS-2", "main") is None
        assert hub.requests[0].path == "/api/models/IndexTeam/IndexTTS-2/revision/v1"


def test_unknown_model_id_is_refused_before_any_request(hub: FakeHub, cache: Path) -> None:
    with pytest.raises(ModelNotFound, match="unknown model 'someone/other-tts'"):
        download_model("someone/other-tts", cache_dir=cache, accept_license=True)
    with pytest.raises(ModelNotFound, match="unknown model"):
        resolve_model("someone/other-tts", cache_dir=cache)
    assert hub.requests == []


def test_a_revision_the_hub_does_not_have(hub: FakeHub, cache: Path) -> None:
    with pytest.raises(ModelNotFound, match="no revision 'v9'"):
        download_model(MODEL, cache_dir=cache, accept_license=True, revision="v9")


def test_a_repo_missing_on_a_mirror(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repos = [r for r in indextts2_repos() if r.repo_id != "funasr/campplus"]
    with serve(repos) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(ModelNotFound, match="has no repository funasr/campplus"):
            download_model(MODEL, cache_dir=cache, accept_license=True)


def test_a_hub_error_is_a_store_error_and_keeps_the_cache_consistent(hub: FakeHub, cache: Path) -> None:
    hub.fail("nvidia/bigvgan_v2_22khz_80band_256x", "bigvgan_generator.pt", 500)
    with pytest.raises(StoreError, match="HTTP 500"):
        download_model(MODEL, cache_dir=cache, accept_license=True)
    revision = list_models(cache_dir=cache).revisions[0]
    assert "nvidia/bigvgan_v2_22khz_80band_256x/bigvgan_generator.pt" in revision.missing
    assert all(name.startswith("nvidia/") for name in revision.missing)
    problems = verify_model(MODEL, cache_dir=cache).problems
    assert {p.status for p in problems} == {"missing"}


def test_an_unreachable_hub_says_so(cache: Path) -> None:
    with serve() as hub:
        endpoint = hub.url
    with pytest.raises(StoreError, match="cannot reach"):
        download_model(MODEL, cache_dir=cache, accept_license=True, endpoint=endpoint)


def test_bytes_that_do_not_match_the_hub_hash_are_never_stored(hub: FakeHub, cache: Path) -> None:
    real = _repo(hub, "funasr/campplus")
    listed = hub.info

    def lying_listing(repo: FakeRepo, commit: str) -> dict[str, object]:
        info = listed(repo, commit)
        if repo is real:
            for sibling in info["siblings"]:  # type: ignore[attr-defined]
                sibling["lfs"]["sha256"] = "0" * 64
        return info

    hub.info = lying_listing  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="does not match the hub"):
        download_model(MODEL, cache_dir=cache, accept_license=True)
    store = Store(cache)
    assert not store.blob_path(sha256(real.files["campplus_cn_common.bin"])).exists()
    assert not any(store.partial_dir.iterdir())


def test_a_full_disk_during_a_download_is_clear_and_nothing_half_written_counts(
    hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: _ReportingFile, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_ReportingFile, "write", disk_full)
    with pytest.raises(StoreError, match="disk is full"):
        download_model(MODEL, cache_dir=cache, accept_license=True)
    store = Store(cache)
    assert not store.blobs_dir.exists() or not any(store.blobs_dir.iterdir())
    with pytest.raises(ModelFilesMissing):
        resolve_model("IndexTeam/IndexTTS-2", cache_dir=cache, offline=True)


def test_a_download_waits_for_another_process_holding_the_store(hub: FakeHub, cache: Path) -> None:
    from filelock import FileLock

    store = Store(cache)
    store.base.mkdir(parents=True)
    other = FileLock(str(store.base / ".lock"))
    other.acquire()
    result: dict[str, object] = {}

    def run() -> None:
        result["files"] = download_model(MODEL, cache_dir=cache, accept_license=True)

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(0.5)
    assert hub.requests == []  # waiting for the lock, not downloading
    other.release()
    worker.join(timeout=60)
    assert isinstance(result["files"], ModelFiles)


def test_a_commit_id_as_revision_works_offline_afterwards(hub: FakeHub, cache: Path) -> None:
    commit = _repo(hub, "IndexTeam/IndexTTS-2").commit
    files = download_model(MODEL, cache_dir=cache, accept_license=True, revision=commit)
    assert files.revision == commit
    store = Store(cache)
    assert store.refs("IndexTeam/IndexTTS-2") == {}  # a commit needs no ref
    assert resolve_model("IndexTeam/IndexTTS-2", revision=commit, cache_dir=cache, offline=True) == files
