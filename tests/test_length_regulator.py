"""The s2mel length regulator: official parity, torch's nearest interpolation, batching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from indextts2.errors import CheckpointError, ConfigError
from indextts2.model.config import load_preset
from indextts2.model.length_regulator import LengthRegulator, nearest_indices
from indextts2.model.loading import read_s2mel_checkpoint


@pytest.fixture(scope="module")
def regulator(goldens) -> LengthRegulator:
    parts = read_s2mel_checkpoint(goldens / "checkpoint" / "s2mel.pth")
    module = LengthRegulator.from_config(load_preset("tiny").section("s2mel", "length_regulator"))
    module.load(parts["length_regulator"], source="s2mel.pth")
    return module.eval()


@pytest.mark.parametrize("input_length", [1, 5, 9, 27, 207])
@pytest.mark.parametrize("output_length", [1, 4, 15, 46, 357, 401])
def test_nearest_indices_match_torch_interpolate(input_length: int, output_length: int) -> None:
    source = torch.arange(input_length, dtype=torch.float32)[None, None]
    expected = F.interpolate(source, size=output_length, mode="nearest")[0, 0].long()
    ours = nearest_indices(torch.tensor([input_length]), torch.tensor([output_length]), output_length)[0]
    assert torch.equal(ours, expected)


@pytest.mark.goldens
@torch.no_grad()
def test_prompt_condition_and_cond_match_the_official_outputs(regulator, golden_set) -> None:
    voice, s2mel = golden_set.tensors("voice"), golden_set.tensors("s2mel")
    prompt = regulator(voice["ref.S_ref"], voice["ref.prompt_ylens"])
    torch.testing.assert_close(prompt, voice["ref.prompt_condition"], atol=1e-4, rtol=0)
    for run in ("t0", "t1", "t2"):
        cond = regulator(s2mel[f"{run}.S_infer"], s2mel[f"{run}.target_lengths"])
        torch.testing.assert_close(cond, s2mel[f"{run}.cond"], atol=1e-4, rtol=0)


@pytest.mark.goldens
@torch.no_grad()
def test_a_batch_of_three_lengths_equals_each_alone(regulator, golden_set) -> None:
    s2mel = golden_set.tensors("s2mel")
    runs = ("t0", "t1", "t2")
    inputs = [s2mel[f"{r}.S_infer"][0] for r in runs]
    targets = torch.cat([s2mel[f"{r}.target_lengths"] for r in runs])
    padded = torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True)
    lengths = torch.tensor([x.shape[0] for x in inputs])
    batched = regulator(padded, targets, lengths)
    for row in range(len(runs)):
        alone = regulator(inputs[row][None], targets[row : row + 1])[0]
        n = int(targets[row])
        torch.testing.assert_close(batched[row, :n], alone, atol=1e-5, rtol=0)
        assert torch.count_nonzero(batched[row, n:]) == 0  # padding stays zero


def test_unsupported_variants_are_refused() -> None:
    section = dict(load_preset("tiny").section("s2mel", "length_regulator"), f0_condition=True)
    with pytest.raises(ConfigError, match="f0_condition"):
        LengthRegulator.from_config(section)


def test_wrong_shapes_name_the_key(tmp_path) -> None:
    module = LengthRegulator(in_channels=8, channels=4, num_blocks=1, codebook_size=3)
    state = module.state_dict()
    state["content_in_proj.weight"] = torch.zeros(4, 9)
    with pytest.raises(CheckpointError, match=r"content_in_proj\.weight"):
        module.load(state, source="s2mel.pth")
    del state["content_in_proj.weight"]
    with pytest.raises(CheckpointError, match="missing key"):
        module.load(state, source="s2mel.pth")


def test_s2mel_file_without_net_is_a_checkpoint_error(tmp_path) -> None:
    path = tmp_path / "s2mel.pth"
    torch.save({"weights": {}}, path)
    with pytest.raises(CheckpointError, match="'net'"):
        read_s2mel_checkpoint(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        read_s2mel_checkpoint(path)
