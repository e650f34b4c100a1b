"""The semantic codec (RepCodec encoder + factorised VQ): parity, vq2emb, batching, loading errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from indextts2.errors import CheckpointError, ConfigError, InvalidInput
from indextts2.model.codec import SemanticCodec
from indextts2.model.config import load_preset


def _path(goldens: Path) -> Path:
    return goldens / "checkpoint" / "semantic_codec" / "model.safetensors"


def _fresh() -> SemanticCodec:
    return SemanticCodec.from_config(load_preset("tiny").section("semantic_codec")).eval()


@pytest.fixture(scope="module")
def codec(goldens) -> SemanticCodec:
    module = _fresh()
    module.load(_path(goldens))
    return module


@pytest.mark.goldens
@torch.no_grad()
def test_quantize_reproduces_s_ref_and_the_exact_codes(codec, golden_set) -> None:
    voice = golden_set.tensors("voice")
    embedding, codes = codec.quantize(voice["ref.spk_cond_emb"])
    torch.testing.assert_close(embedding, voice["ref.S_ref"], atol=1e-4, rtol=0)
    assert codes.dtype == torch.int64
    assert torch.equal(codes, voice["ref.semantic_codes"])


@pytest.mark.goldens
@torch.no_grad()
def test_vq2emb_is_the_official_embedding_channels_last(codec, golden_set) -> None:
    gpt, s2mel = golden_set.tensors("gpt"), golden_set.tensors("s2mel")
    for run in ("t0", "t1", "t2"):
        ours = codec.vq2emb(gpt[f"{run}.beams3.codes"])  # (1, T, W)
        torch.testing.assert_close(ours.transpose(1, 2), s2mel[f"{run}.vq_emb"], atol=1e-5, rtol=0)


@pytest.mark.goldens
@torch.no_grad()
def test_vq2emb_of_a_batch_equals_each_row_alone(codec, golden_set) -> None:
    """The official call only works for a batch of one (quirk Q8); ours embeds every row."""
    codes = golden_set.tensors("voice")["ref.semantic_codes"][0]
    batch = torch.stack([codes[:50], codes[100:150], codes[150:200]])
    out = codec.vq2emb(batch)
    for row in range(3):
        torch.testing.assert_close(out[row], codec.vq2emb(batch[row : row + 1])[0], atol=1e-6, rtol=0)


@pytest.mark.goldens
@torch.no_grad()
def test_a_padded_batch_gives_each_clip_its_own_codes(codec, golden_set) -> None:
    voice = golden_set.tensors("voice")
    short = voice["emo.emo_cond_emb"]  # 53 frames
    garbage = torch.randn(1, 207 - 53, short.shape[-1], generator=torch.Generator().manual_seed(0)) * 5
    batch = torch.cat([voice["ref.spk_cond_emb"], torch.cat([short, garbage], dim=1)])
    embedding, codes = codec.quantize(batch, torch.tensor([207, 53]))
    alone_embedding, alone_codes = codec.quantize(short)
    assert torch.equal(codes[0], voice["ref.semantic_codes"][0])
    assert torch.equal(codes[1, :53], alone_codes[0])
    torch.testing.assert_close(embedding[1, :53], alone_embedding[0], atol=1e-6, rtol=0)


def test_vq2emb_refuses_codes_outside_the_codebook() -> None:
    codec = _fresh()
    with pytest.raises(InvalidInput, match=r"\[0, 8192\)"):
        codec.vq2emb(torch.tensor([[0, 8192]]))
    with pytest.raises(InvalidInput, match="shape"):
        codec.vq2emb(torch.tensor([1, 2, 3]))


def test_unsupported_codec_variants_are_refused() -> None:
    section = dict(load_preset("tiny").section("semantic_codec"), num_quantizers=2)
    with pytest.raises(ConfigError, match="one quantizer"):
        SemanticCodec.from_config(section)


@pytest.mark.goldens
def test_the_decoder_is_not_needed_and_other_extra_keys_are_refused(goldens, tmp_path) -> None:
    state = load_file(str(_path(goldens)))
    path = tmp_path / "model.safetensors"
    save_file({k: v for k, v in state.items() if not k.startswith("decoder.")}, str(path))
    _fresh().load(path)  # no decoder: fine

    save_file({**state, "quantizer.extra": torch.zeros(1)}, str(path))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: unexpected key\(s\) quantizer\.extra"):
        _fresh().load(path)


@pytest.mark.goldens
def test_missing_and_misshaped_keys_name_the_file_and_key(goldens, tmp_path) -> None:
    state = load_file(str(_path(goldens)))
    path = tmp_path / "model.safetensors"
    key = "quantizer.quantizers.0.out_project.weight_g"
    save_file({k: v for k, v in state.items() if k != key}, str(path))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: missing key\(s\) {key}"):
        _fresh().load(path)
    save_file({**state, "encoder.1.weight": torch.zeros(64, 47)}, str(path))
    with pytest.raises(CheckpointError, match=r"key encoder\.1\.weight has shape \(64, 47\)"):
        _fresh().load(path)
    with pytest.raises(CheckpointError, match="no such file"):
        _fresh().load(tmp_path / "absent.safetensors")


def test_a_corrupt_file_is_a_checkpoint_error(tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"definitely not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        _fresh().load(path)
