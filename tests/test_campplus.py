"""CAMPPlus: official speaker style, sizes read from the checkpoint, loading errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from indextts2.errors import CheckpointError
from indextts2.model.campplus import CAMPPlus, CAMPPlusDims


def _path(goldens: Path) -> Path:
    return goldens / "checkpoint" / "campplus" / "campplus_cn_common.bin"


@pytest.mark.goldens
@torch.no_grad()
def test_style_matches_the_official_output(goldens, golden_set) -> None:
    model = CAMPPlus.from_checkpoint(_path(goldens)).eval()
    # the golden checkpoint's sizes (hardcoded_dims.json), found from its shapes
    assert model.dims == CAMPPlusDims(growth_rate=8, bn_size=2, init_channels=32)
    style = model(golden_set.tensors("audio")["ref.fbank_centered"])
    torch.testing.assert_close(style, golden_set.tensors("voice")["ref.style"], atol=1e-4, rtol=0)


def test_default_sizes_are_the_release_ones() -> None:
    with torch.device("meta"):
        model = CAMPPlus()
    assert model.xvector.tdnn.linear.weight.shape == (128, 320, 5)
    assert model.xvector.dense.linear.weight.shape == (192, 1024, 1)
    parameters = sum(p.numel() for p in model.parameters())
    assert 6.5e6 < parameters < 7.5e6  # ~7 M, as the release campplus_cn_common.bin


@pytest.mark.goldens
def test_loading_errors_name_the_file_and_key(goldens, tmp_path) -> None:
    state = torch.load(_path(goldens), weights_only=True)
    path = tmp_path / "campplus_cn_common.bin"

    torch.save({k: v for k, v in state.items() if k != "xvector.tdnn.linear.weight"}, path)
    with pytest.raises(CheckpointError, match=r"campplus_cn_common\.bin: missing key xvector\.tdnn\.linear"):
        CAMPPlus.from_checkpoint(path)

    torch.save({k: v for k, v in state.items() if k != "head.bn2.running_var"}, path)
    with pytest.raises(CheckpointError, match=r"missing key\(s\) head\.bn2\.running_var"):
        CAMPPlus.from_checkpoint(path)

    torch.save({**state, "head.conv1.weight": torch.zeros(16, 1, 3, 3)}, path)
    with pytest.raises(CheckpointError, match=r"key head\.conv1\.weight has shape \(16, 1, 3, 3\)"):
        CAMPPlus.from_checkpoint(path)

    torch.save({**state, "head.extra": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"unexpected key\(s\) head\.extra"):
        CAMPPlus.from_checkpoint(path)

    with pytest.raises(CheckpointError, match="no such file"):
        CAMPPlus.from_checkpoint(tmp_path / "absent.bin")
