"""BigVGAN v2: official parity, padding that does not leak, weight-norm folding, filters, loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn.utils.parametrizations import weight_norm
from torch.nn.utils.rnn import pad_sequence

from indextts2.errors import CheckpointError, ConfigError, InvalidInput
from indextts2.model.alias_free import AntiAliasedActivation, hold_last, kaiser_sinc_filter
from indextts2.model.bigvgan import PCM_PEAK, BigVGAN, official_pcm
from indextts2.model.config import load_preset
from indextts2.model.weight_norm import fold_weight_norm
from indextts2.parity import run_parity

RUNS = ("t0", "t1", "t2")
# Padding must not change an item's samples beyond float rounding of differently sized convolutions:
# measured ~3e-7 on the golden vocoder; 1e-5 is far below anything audible (1 LSB of 16-bit PCM is 3e-5).
BATCH_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def vocoder(goldens: Path) -> BigVGAN:
    return BigVGAN.from_checkpoint(
        load_preset("tiny"), goldens / "checkpoint" / "bigvgan" / "bigvgan_generator.pt"
    )


@pytest.fixture(scope="module")
def generator_state(goldens: Path) -> dict[str, torch.Tensor]:
    path = goldens / "checkpoint" / "bigvgan" / "bigvgan_generator.pt"
    return torch.load(path, map_location="cpu", weights_only=True)["generator"]


@pytest.mark.goldens
def test_parity_stage_matches_the_official_waveform_and_pcm(goldens: Path) -> None:
    report = run_parity(goldens, ["vocoder"])
    assert {c.item for c in report.checks} == {f"{r}.{k}" for r in RUNS for k in ("wave", "wave_pcm")}
    assert report.passed, report.failures()


@pytest.mark.goldens
def test_output_is_float32_in_range_with_hop_samples_per_frame(vocoder: BigVGAN, golden_set) -> None:
    mel = golden_set.tensors("vocoder")["t1.mel"]
    wave = vocoder(mel)
    assert wave.dtype == torch.float32
    assert wave.shape == (1, mel.shape[2] * 256)
    assert float(wave.abs().max()) <= 1.0
    torch.testing.assert_close(wave[:, None], golden_set.tensors("vocoder")["t1.wave"], atol=1e-4, rtol=0)


@pytest.mark.goldens
@torch.inference_mode()
def test_padding_in_a_batch_does_not_leak(vocoder: BigVGAN, golden_set) -> None:
    expected = golden_set.tensors("vocoder")
    mels = [expected[f"{run}.mel"][0].T for run in RUNS]
    lengths = torch.tensor([len(m) for m in mels])
    batch = pad_sequence(mels, batch_first=True).transpose(1, 2)
    # Loud garbage in the padding: with proper masking it cannot reach a valid sample.
    padded = torch.arange(batch.shape[2])[None, None, :] >= lengths[:, None, None]
    batch = torch.where(padded, torch.full_like(batch, 7.0), batch)
    waves = vocoder(batch, lengths)
    for row, run in enumerate(RUNS):
        samples = int(lengths[row]) * vocoder.hop_size
        alone = vocoder(expected[f"{run}.mel"])[0]
        torch.testing.assert_close(waves[row, :samples], alone, atol=BATCH_TOLERANCE, rtol=0)
        assert torch.count_nonzero(waves[row, samples:]) == 0


def test_bad_mels_and_lengths_are_invalid_input() -> None:
    model = BigVGAN.dummy(load_preset("tiny"))
    with pytest.raises(InvalidInput, match="80"):
        model(torch.zeros(1, 100, 4))
    with pytest.raises(InvalidInput, match="lengths"):
        model(torch.zeros(2, 80, 4), torch.tensor([4, 5]))


def test_folded_weight_norm_equals_torch_weight_norm() -> None:
    torch.manual_seed(0)
    for layer in (torch.nn.Conv1d(3, 5, 7), torch.nn.ConvTranspose1d(6, 4, 8, 4), torch.nn.Linear(9, 2)):
        normed = weight_norm(layer)
        with torch.no_grad():
            normed.parametrizations.weight.original0.mul_(
                torch.rand_like(normed.parametrizations.weight.original0) + 0.5
            )
        state = {
            "layer.weight_g": normed.parametrizations.weight.original0.detach(),
            "layer.weight_v": normed.parametrizations.weight.original1.detach(),
            "layer.bias": normed.bias.detach(),
        }
        folded = fold_weight_norm(state, source="test")
        assert set(folded) == {"layer.weight", "layer.bias"}
        torch.testing.assert_close(folded["layer.weight"], normed.weight.detach(), atol=1e-7, rtol=1e-6)


def test_unpaired_weight_norm_factors_are_checkpoint_errors() -> None:
    with pytest.raises(CheckpointError, match=r"no matching conv\.weight_v"):
        fold_weight_norm({"conv.weight_g": torch.ones(2, 1, 1)}, source="f.pt")
    with pytest.raises(CheckpointError, match="no matching weight_g"):
        fold_weight_norm({"conv.weight_v": torch.ones(2, 1, 1)}, source="f.pt")
    with pytest.raises(CheckpointError, match="shape"):
        fold_weight_norm(
            {"conv.weight_g": torch.ones(3, 1, 1), "conv.weight_v": torch.ones(2, 1, 1)}, source="f.pt"
        )


@pytest.mark.goldens
def test_our_kaiser_filter_is_the_one_stored_in_the_checkpoint(generator_state) -> None:
    ours = kaiser_sinc_filter(0.25, 0.3, 12)
    stored = [v for k, v in generator_state.items() if k.endswith("filter")]
    assert len(stored) == 2 * (6 * 3 * 6 + 1)  # up and down, per activation of 18 blocks plus the last
    for tensor in stored:
        assert torch.equal(tensor, ours)
    assert abs(float(ours.sum()) - 1.0) < 1e-6


def test_hold_last_repeats_each_rows_last_valid_sample() -> None:
    x = torch.tensor([[[1.0, 2.0, 3.0, 4.0]], [[5.0, 6.0, 7.0, 8.0]]])
    assert hold_last(x, torch.tensor([2, 4]))[:, 0].tolist() == [[1, 2, 2, 2], [5, 6, 7, 8]]


@torch.inference_mode()
def test_activation_of_a_padded_row_equals_the_short_row() -> None:
    torch.manual_seed(1)
    act = AntiAliasedActivation(3, logscale=True)
    short = torch.randn(1, 3, 9)
    padded = torch.cat([short, torch.randn(1, 3, 5) * 10], dim=2)
    torch.testing.assert_close(act(padded, torch.tensor([9]))[..., :9], act(short), atol=1e-6, rtol=0)


def _save_generator(path: Path, state: dict) -> Path:
    torch.save({"generator": state}, path)
    return path


@pytest.mark.goldens
def test_loading_is_strict_and_checks_the_filters(generator_state, tmp_path: Path) -> None:
    config = load_preset("tiny")
    torch.save({"weights": generator_state}, tmp_path / "layout.pt")
    with pytest.raises(CheckpointError, match="'generator'"):
        BigVGAN.from_checkpoint(config, tmp_path / "layout.pt")
    other_filter = dict(generator_state, **{"activation_post.upsample.filter": torch.ones(1, 1, 12) / 12})
    with pytest.raises(CheckpointError, match=r"activation_post\.upsample\.filter"):
        BigVGAN.from_checkpoint(config, _save_generator(tmp_path / "f.pt", other_filter))
    missing = {
        k: v for k, v in generator_state.items() if not k.startswith("resblocks.4.activations.1.act.beta")
    }
    with pytest.raises(CheckpointError, match=r"missing key.*resblocks\.4\.activations\.1\.act\.beta"):
        BigVGAN.from_checkpoint(config, _save_generator(tmp_path / "m.pt", missing))
    wrong = dict(generator_state, **{"conv_pre.bias": torch.zeros(3)})
    with pytest.raises(CheckpointError, match=r"conv_pre\.bias"):
        BigVGAN.from_checkpoint(config, _save_generator(tmp_path / "w.pt", wrong))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"resblock": "2"}, "resblock"),
        ({"activation": "snake"}, "activation"),
        ({"hop_size": 300}, "hop_size"),
        ({"num_mels": None}, "malformed"),
    ],
)
def test_unsupported_configs_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BigVGAN.from_config(dict(load_preset("tiny").bigvgan, **change))


@torch.inference_mode()
def test_dummy_full_has_the_release_size_and_renders() -> None:
    model = BigVGAN.dummy(load_preset("full"))
    parameters = sum(p.numel() for p in model.parameters())
    assert 112_000_000 < parameters < 112_500_000  # bigvgan_v2_22khz_80band_256x: 112.2 M
    wave = model(torch.randn(1, 80, 2))
    assert wave.shape == (1, 512)
    assert float(wave.abs().max()) <= 1.0


def test_official_pcm_scaling_clamps_symmetrically() -> None:
    pcm = official_pcm(torch.tensor([-2.0, -1.0, 0.5, 1.0, 3.0]))
    assert pcm.tolist() == [-PCM_PEAK, -PCM_PEAK, 0.5 * PCM_PEAK, PCM_PEAK, PCM_PEAK]
