"""resolve_model on local directories and other non-hub inputs: no network, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fakehub import write_checkpoints

from indextts2.errors import ModelFilesMissing, ModelNotFound
from indextts2.settings import Settings
from indextts2.store import ModelFiles, dummy_preset, resolve_model
from indextts2.store.files import layout_roles
from indextts2.store.manifest import INDEXTTS_2, INDEXTTS_2_5, get_model_spec


def test_every_role_of_the_manifests_is_a_field_of_model_files() -> None:
    fields = {f.name for f in dataclasses.fields(ModelFiles)} - {"root", "model_id", "revision", "family"}
    assert set(layout_roles(INDEXTTS_2)) | set(layout_roles(INDEXTTS_2_5)) == fields


@pytest.mark.goldens
def test_the_golden_checkpoint_resolves_in_place_without_qwen(goldens: Path, tmp_path: Path) -> None:
    checkpoint = goldens / "checkpoint"
    files = resolve_model(checkpoint, cache_dir=tmp_path / "cache", offline=False)
    assert files.root == checkpoint.resolve()
    assert files.revision is None
    assert files.gpt == checkpoint.resolve() / "gpt.pth"
    assert files.w2v_bert_dir == checkpoint.resolve() / "w2v-bert-2.0"
    assert files.bigvgan_weights == checkpoint.resolve() / "bigvgan" / "bigvgan_generator.pt"
    assert files.campplus == checkpoint.resolve() / "campplus" / "campplus_cn_common.bin"
    assert files.qwen_emotion is None  # the golden checkpoint has no Qwen model: optional
    assert all(path.is_file() for role, path in files.paths().items())
    assert files.load_config().gpt_dim == 48
    assert not (tmp_path / "cache").exists()  # nothing was written or fetched


def test_a_local_directory_with_qwen(tmp_path: Path) -> None:
    files = resolve_model(write_checkpoints(tmp_path / "ckpt"))
    assert files.qwen_emotion == (tmp_path / "ckpt" / "qwen0.6bemo4-merge").resolve()
    assert "qwen_emotion" in files.paths()


def test_a_directory_missing_files_names_all_of_them(tmp_path: Path) -> None:
    directory = write_checkpoints(tmp_path / "ckpt")
    (directory / "s2mel.pth").unlink()
    (directory / "bigvgan" / "config.json").unlink()
    with pytest.raises(ModelFilesMissing) as caught:
        resolve_model(directory)
    assert caught.value.missing == ["s2mel.pth", "bigvgan/config.json"]
    assert "official checkpoints layout" in str(caught.value)


def test_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ModelNotFound, match="is not a model directory"):
        resolve_model(tmp_path / "photos")


def test_a_path_that_does_not_exist_or_is_a_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="no model directory"):
        resolve_model(tmp_path / "nowhere")
    archive = tmp_path / "model.tar"
    archive.write_bytes(b"")
    with pytest.raises(ModelNotFound, match="models import"):
        resolve_model(archive)


def test_dummy_models_have_no_files(tmp_path: Path) -> None:
    assert dummy_preset("dummy:tiny") == "tiny"
    assert dummy_preset("IndexTeam/IndexTTS-2") is None
    with pytest.raises(ModelNotFound, match="random weights"):
        resolve_model("dummy:tiny", cache_dir=tmp_path)


def test_hf_endpoint_is_read_by_settings() -> None:
    assert (
        Settings.from_env({"HF_ENDPOINT": "https://hf-mirror.com/"}).hub_endpoint == "https://hf-mirror.com"
    )
    assert Settings.from_env({}).hub_endpoint is None


def test_unknown_model_ids() -> None:
    with pytest.raises(ModelNotFound, match="IndexTeam/IndexTTS-2"):
        get_model_spec("IndexTeam/IndexTTS-3")
