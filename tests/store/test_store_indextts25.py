"""IndexTeam/IndexTTS-2.5 in the store: download, verify, list, import (``hf_cache/`` layout), export, rm.

The families are told apart by their files (``codec.pth`` and the ``.tiktoken`` vocabulary), not by
``version:`` in config.yaml; the auxiliary repos (w2v-BERT, CAMPPlus, BigVGAN) are shared with
IndexTTS-2 and survive removing one of the two.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from fakehub import FakeHub, write_checkpoints

from indextts2.errors import InvalidInput, ModelFilesMissing
from indextts2.store import (
    ModelFiles,
    download_model,
    export_model,
    import_model,
    list_models,
    resolve_model,
    verify_model,
)
from indextts2.store.inventory import plan_removal, remove
from indextts2.store.manifest import ModelSpec, get_model_spec

MODEL = "IndexTeam/IndexTTS-2.5"


@pytest.fixture
def downloaded25(hub: FakeHub, cache: Path) -> ModelFiles:
    return download_model(MODEL, cache_dir=cache, accept_license=True)


def test_download_brings_the_2_5_layout(hub: FakeHub, downloaded25: ModelFiles) -> None:
    files = downloaded25
    assert files.family == "IndexTTS-2.5"
    assert files.model_id == MODEL
    root = files.root
    assert files.codec == root / "codec.pth"
    assert files.vocabulary == root / "multilingual_zh_ja_yue_char_del.tiktoken"
    assert files.w2v_bert_dir == root / "hf_cache" / "w2v-bert-2.0"
    assert files.campplus == root / "hf_cache" / "campplus_cn_common.bin"
    assert files.bigvgan_weights == root / "hf_cache" / "bigvgan" / "bigvgan_generator.pt"
    assert files.bpe is None
    assert files.semantic_codec is None  # MaskGCT's codec is not part of 2.5
    assert files.qwen_emotion == root / "qwen0.6bemo4-merge"
    fake = hub.repos[MODEL].files
    assert files.codec.read_bytes() == fake["codec.pth"]
    assert not (root / "README.md").exists()
    assert files.load_config().section("gpt", "model_dim") == 40


def test_verify_list_and_offline_resolution(downloaded25: ModelFiles, cache: Path) -> None:
    assert verify_model(MODEL, cache_dir=cache).ok
    models = {r.model_id for r in list_models(cache_dir=cache).revisions}
    assert models == {MODEL}
    assert resolve_model(MODEL, cache_dir=cache, offline=True) == downloaded25


def test_import_an_official_2_5_directory_recognised_by_its_files(tmp_path: Path) -> None:
    source = write_checkpoints(tmp_path / "checkpoints", model_id=MODEL)
    assert (source / "hf_cache" / "campplus_cn_common.bin").is_file()
    files = import_model(source, cache_dir=tmp_path / "cache")  # no model named: the files say which
    assert files.model_id == MODEL
    assert files.family == "IndexTTS-2.5"
    assert files.codec is not None
    assert files.codec.read_bytes() == (source / "codec.pth").read_bytes()
    assert verify_model(MODEL, cache_dir=tmp_path / "cache").ok
    # a local directory resolves in place to the same family
    assert ModelFiles.from_directory(source).family == "IndexTTS-2.5"


def test_a_2_5_directory_is_not_imported_as_indextts_2(tmp_path: Path) -> None:
    source = write_checkpoints(tmp_path / "checkpoints", model_id=MODEL)
    with pytest.raises(InvalidInput, match=r"holds an IndexTTS-2\.5 model.*not IndexTeam/IndexTTS-2"):
        import_model(source, model_id="IndexTeam/IndexTTS-2", cache_dir=tmp_path / "cache")
    with pytest.raises(InvalidInput, match=r"holds an IndexTTS-2\.5 model"):
        ModelFiles.from_directory(source, spec=_spec("IndexTeam/IndexTTS-2"))


def test_a_2_5_directory_missing_a_file_names_it(tmp_path: Path) -> None:
    source = write_checkpoints(tmp_path / "checkpoints", model_id=MODEL)
    (source / "hf_cache" / "bigvgan" / "bigvgan_generator.pt").unlink()
    with pytest.raises(ModelFilesMissing, match=r"hf_cache/bigvgan/bigvgan_generator\.pt"):
        import_model(source, cache_dir=tmp_path / "cache")


def test_export_then_import_keeps_the_2_5_layout(
    downloaded25: ModelFiles, cache: Path, tmp_path: Path
) -> None:
    archive = export_model(tmp_path / "model.tar", model_id=MODEL, cache_dir=cache)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "IndexTTS-2.5/codec.pth" in names
    assert "IndexTTS-2.5/hf_cache/w2v-bert-2.0/model.safetensors" in names
    files = import_model(archive, cache_dir=tmp_path / "other")
    assert files.model_id == MODEL
    assert files.revision == downloaded25.revision


def test_removing_one_family_keeps_the_auxiliary_files_of_the_other(
    hub: FakeHub, downloaded25: ModelFiles, cache: Path
) -> None:
    both = download_model("IndexTeam/IndexTTS-2", cache_dir=cache, accept_license=True)
    assert {r.model_id for r in list_models(cache_dir=cache).revisions} == {MODEL, "IndexTeam/IndexTTS-2"}
    remove(plan_removal(MODEL, cache_dir=cache), cache_dir=cache)
    assert {r.model_id for r in list_models(cache_dir=cache).revisions} == {"IndexTeam/IndexTTS-2"}
    assert verify_model("IndexTeam/IndexTTS-2", cache_dir=cache).ok
    assert both.w2v_bert_weights.read_bytes() == hub.repos["facebook/w2v-bert-2.0"].files["model.safetensors"]


def _spec(model_id: str) -> ModelSpec:
    return get_model_spec(model_id)


def test_indextts_2_5_is_the_default_model(hub: FakeHub, cache: Path) -> None:
    from typer.testing import CliRunner

    from indextts2.cli.app import app
    from indextts2.settings import Settings

    assert Settings().model == MODEL
    result = CliRunner().invoke(app, ["models", "download", "--cache-dir", str(cache), "--accept-license"])
    assert result.exit_code == 0, result.output
    root = Path(result.stdout.strip().splitlines()[-1])
    assert (root / "codec.pth").is_file()
    assert (root / "hf_cache" / "bigvgan" / "config.json").is_file()
    assert download_model(cache_dir=cache).model_id == MODEL  # the library's default too, now cached
