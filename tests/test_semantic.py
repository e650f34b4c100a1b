"""w2v-BERT input features and the truncated encoder: transformers' extractor, the goldens, loading."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from indextts2.errors import CheckpointError, ConfigError
from indextts2.model.semantic import SEMANTIC_LAYER, SemanticEncoder, seamless_features


def _reference_extractor(waveforms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """transformers' SeamlessM4TFeatureExtractor with the w2v-BERT 2.0 settings."""
    from transformers import SeamlessM4TFeatureExtractor

    extractor = SeamlessM4TFeatureExtractor(
        feature_size=80, num_mel_bins=80, padding_value=1.0, sampling_rate=16000, stride=2
    )
    out = extractor(waveforms, sampling_rate=16000, return_tensors="np", padding=True)
    return out["input_features"], out["attention_mask"]


@pytest.mark.parametrize("lengths", [(16000,), (16160,), (12345, 4000, 24321)])
def test_features_match_transformers_extractor_for_single_clips_and_padded_batches(lengths) -> None:
    generator = np.random.default_rng(sum(lengths))
    waves = [(0.3 * generator.standard_normal(n)).astype(np.float32) for n in lengths]
    expected_features, expected_mask = _reference_extractor(waves)
    ours = seamless_features([torch.from_numpy(w) for w in waves])
    np.testing.assert_allclose(ours.features.numpy(), expected_features, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(ours.attention_mask.numpy(), expected_mask)
    # each clip's own frame count: ceil(fbank frames / 2), the half-padded last frame included
    fbank_frames = [1 + (n - 400) // 160 for n in lengths]
    assert ours.lengths.tolist() == [-(-f // 2) for f in fbank_frames]


def test_an_odd_frame_count_masks_the_half_padded_last_frame() -> None:
    ours = seamless_features([torch.zeros(400 + 2 * 160)])  # 3 fbank frames -> 2 stacked frames
    assert ours.attention_mask.tolist() == [[1, 0]]
    assert ours.lengths.tolist() == [2]
    assert torch.all(ours.features[0, 1, 80:] == 1.0)  # padding_value fills the missing half


@pytest.mark.goldens
def test_features_match_the_goldens(golden_set) -> None:
    audio = golden_set.tensors("audio")
    for name, key in (
        ("ref", "ref.audio_16k"),
        ("emo", "emo.loaded_16k"),
        ("ref_as_emo", "ref_as_emo.loaded_16k"),
    ):
        ours = seamless_features([audio[key][0]])
        torch.testing.assert_close(ours.features, audio[f"{name}.input_features"], atol=1e-4, rtol=0)
        assert torch.equal(ours.attention_mask, audio[f"{name}.attention_mask"])


def _w2v_dir(goldens: Path) -> Path:
    return goldens / "checkpoint" / "w2v-bert-2.0"


def _encoder(goldens: Path) -> SemanticEncoder:
    directory = _w2v_dir(goldens)
    config = json.loads((directory / "config.json").read_text())
    preprocessor = json.loads((directory / "preprocessor_config.json").read_text())
    encoder = SemanticEncoder(config, preprocessor=preprocessor)
    encoder.load_weights(directory)
    encoder.load_stats(goldens / "checkpoint" / "wav2vec2bert_stats.pt")
    return encoder.eval()


@pytest.mark.goldens
@torch.no_grad()
def test_only_17_layers_are_built_and_they_give_hidden_states_17_of_the_full_model(
    goldens, golden_set
) -> None:
    from transformers import Wav2Vec2BertModel

    encoder = _encoder(goldens)
    assert len(encoder.model.encoder.layers) == SEMANTIC_LAYER
    assert encoder.checkpoint_layers == 18
    assert not any(key.startswith("encoder.layers.17.") for key in encoder.state_dict())

    full = Wav2Vec2BertModel.from_pretrained(_w2v_dir(goldens), attn_implementation="eager").eval()
    audio = golden_set.tensors("audio")
    features, mask = audio["ref.input_features"], audio["ref.attention_mask"]
    expected = full(input_features=features, attention_mask=mask, output_hidden_states=True).hidden_states[17]
    torch.testing.assert_close(encoder.hidden_states(features, mask), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        encoder.hidden_states(features, mask),
        golden_set.tensors("voice")["ref.w2v_hidden17"],
        atol=1e-4,
        rtol=0,
    )


@pytest.mark.goldens
@torch.no_grad()
def test_a_padded_batch_gives_each_clip_its_own_features(goldens, golden_set) -> None:
    encoder = _encoder(goldens)
    audio, voice = golden_set.tensors("audio"), golden_set.tensors("voice")
    inputs = encoder.features([audio["emo.loaded_16k"][0], audio["ref.audio_16k"][0]])
    out = encoder(inputs.features, inputs.attention_mask)
    torch.testing.assert_close(out[0, :53], voice["emo.emo_cond_emb"][0], atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1], voice["ref.spk_cond_emb"][0], atol=1e-4, rtol=0)


def test_a_config_with_too_few_layers_is_refused() -> None:
    with pytest.raises(ConfigError, match="layer 17"):
        SemanticEncoder({"hidden_size": 8, "num_hidden_layers": 12})


# --------------------------------------------------------------------------------------------------
# Loading errors name the file and the key


@pytest.fixture
def w2v_copy(goldens: Path, tmp_path: Path) -> Path:
    target = tmp_path / "w2v-bert-2.0"
    shutil.copytree(_w2v_dir(goldens), target)
    return target


def _edit(directory: Path, change) -> Path:
    path = directory / "model.safetensors"
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))
    return path


def _fresh(goldens: Path) -> SemanticEncoder:
    config = json.loads((_w2v_dir(goldens) / "config.json").read_text())
    return SemanticEncoder(config)


@pytest.mark.goldens
def test_missing_weights_file(goldens, w2v_copy) -> None:
    (w2v_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors: no such file"):
        _fresh(goldens).load_weights(w2v_copy)


@pytest.mark.goldens
def test_wrong_shape_names_file_and_key(goldens, w2v_copy) -> None:
    key = "encoder.layers.3.ffn1.intermediate_dense.weight"
    _edit(w2v_copy, lambda s: s.__setitem__(key, torch.zeros(5, 64)))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: key {key} has shape \(5, 64\)"):
        _fresh(goldens).load_weights(w2v_copy)


@pytest.mark.goldens
def test_unexpected_key_names_file_and_key(goldens, w2v_copy) -> None:
    _edit(w2v_copy, lambda s: s.__setitem__("encoder.extra.weight", torch.zeros(3)))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors: unexpected key\(s\) encoder\.extra\.weight"
    ):
        _fresh(goldens).load_weights(w2v_copy)


@pytest.mark.goldens
def test_missing_key_names_file_and_key(goldens, w2v_copy) -> None:
    key = "encoder.layers.16.final_layer_norm.bias"
    _edit(w2v_copy, lambda s: s.pop(key))
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: missing key\(s\) {key}"):
        _fresh(goldens).load_weights(w2v_copy)


@pytest.mark.goldens
def test_a_missing_unused_layer_is_fine(goldens, w2v_copy, golden_set) -> None:
    """Layer 18 is never read, so a file without it loads (a truncated export is valid)."""
    _edit(w2v_copy, lambda s: [s.pop(k) for k in list(s) if k.startswith("encoder.layers.17.")])
    encoder = _fresh(goldens)
    encoder.load_weights(w2v_copy)


@pytest.mark.goldens
def test_stats_file_errors(goldens, tmp_path) -> None:
    encoder = _fresh(goldens)
    path = tmp_path / "stats.pt"
    torch.save({"mean": torch.zeros(64)}, path)
    with pytest.raises(CheckpointError, match=r"stats\.pt: missing key var"):
        encoder.load_stats(path)
    torch.save({"mean": torch.zeros(64), "var": torch.ones(32)}, path)
    with pytest.raises(CheckpointError, match=r"key var has shape \(32,\)"):
        encoder.load_stats(path)
    torch.save({"mean": torch.zeros(64), "var": torch.ones(64), "count": torch.ones(1)}, path)
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\) count"):
        encoder.load_stats(path)
    with pytest.raises(CheckpointError, match="no such file"):
        encoder.load_stats(tmp_path / "absent.pt")
