"""UnifiedVoice: official parity (the `emotion` and `gpt` stages), checkpoint loading, lengths."""

from __future__ import annotations

import pytest
import torch

from indextts2.errors import CheckpointError, InvalidInput
from indextts2.model.config import load_preset
from indextts2.model.gpt import UnifiedVoice, build_dummy_gpt
from indextts2.parity import run_parity


@pytest.fixture(scope="module")
def golden_model(goldens) -> UnifiedVoice:
    return UnifiedVoice.from_checkpoint(goldens / "checkpoint" / "gpt.pth", load_preset("tiny"))


@pytest.mark.goldens
@pytest.mark.slow
@pytest.mark.parametrize("stage", ["emotion", "gpt"])
def test_parity_stage_passes(goldens, stage: str) -> None:
    report = run_parity(goldens, [stage])
    failures = [f"{c.item}: {c.measure} {c.note}" for c in report.failures()]
    assert report.passed, failures
    if stage == "gpt":  # codes of both beam settings, for all three runs
        items = {c.item for c in report.checks}
        assert {f"t{t}.beams{b}.codes" for t in range(3) for b in (1, 3)} <= items


@pytest.mark.goldens
def test_loading_is_strict_and_memory_mapped(goldens, tmp_path, golden_model) -> None:
    state = torch.load(goldens / "checkpoint" / "gpt.pth", map_location="cpu", weights_only=True)
    assert all(not p.is_meta for p in golden_model.parameters())
    assert all(not b.is_meta for b in golden_model.buffers())
    assert torch.equal(golden_model.mel_head.bias, state["mel_head.bias"])

    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": state}, wrapped)
    model = UnifiedVoice.from_checkpoint(wrapped, load_preset("tiny"))
    assert torch.equal(model.gpt.h[0].attn.c_attn.weight, state["gpt.h.0.attn.c_attn.weight"])

    broken = dict(state)
    del broken["gpt.ln_f.bias"]
    torch.save(broken, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing key.*gpt\.ln_f\.bias"):
        UnifiedVoice.from_checkpoint(tmp_path / "missing.pth", load_preset("tiny"))
    broken = dict(state, extra=torch.zeros(1))
    torch.save(broken, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="unexpected key"):
        UnifiedVoice.from_checkpoint(tmp_path / "extra.pth", load_preset("tiny"))
    torch.save(dict(state, **{"mel_head.bias": torch.zeros(5)}), tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"mel_head\.bias has shape \(5,\)"):
        UnifiedVoice.from_checkpoint(tmp_path / "shape.pth", load_preset("tiny"))
    with pytest.raises(CheckpointError, match="missing key"):  # the release config does not fit it
        UnifiedVoice.from_checkpoint(goldens / "checkpoint" / "gpt.pth", load_preset("full"))


@pytest.mark.goldens
@torch.no_grad()
def test_true_lengths_mask_padding_in_a_batch(golden_model, golden_set) -> None:
    features = golden_set.tensors("voice")["ref.spk_cond_emb"][0]  # (207, W)
    short, long = features[:120], features
    padded = torch.nn.utils.rnn.pad_sequence([short, long], batch_first=True)
    lengths = torch.tensor([120, 207])
    latents = golden_model.speaker_conditioning(padded, lengths=lengths)
    emotion = golden_model.emotion_vector(padded, lengths=lengths)
    for row, clip in enumerate((short, long)):
        alone_lengths = lengths[row : row + 1]
        alone = golden_model.speaker_conditioning(clip[None], lengths=alone_lengths)
        torch.testing.assert_close(latents[row : row + 1], alone, atol=1e-5, rtol=0)
        alone_emotion = golden_model.emotion_vector(clip[None], lengths=alone_lengths)
        torch.testing.assert_close(emotion[row : row + 1], alone_emotion, atol=1e-5, rtol=0)


@pytest.mark.goldens
@torch.no_grad()
def test_explicit_lengths_act_as_if_the_clip_were_cut(golden_model, golden_set) -> None:
    features = golden_set.tensors("voice")["ref.spk_cond_emb"]
    cut = torch.tensor([150])
    whole = golden_model.speaker_conditioning(features, lengths=cut)
    torch.testing.assert_close(whole, golden_model.speaker_conditioning(features[:, :150], lengths=cut))
    # By default the official quirk applies (every clip "lasts" W = 64 frames here), which is not
    # the same as cutting the clip there: the official conformer leaks masked frames into its conv.
    official = golden_model.speaker_conditioning(features)
    width = torch.tensor([features.shape[-1]])
    assert not torch.allclose(official, golden_model.speaker_conditioning(features, lengths=width))
    assert not torch.allclose(
        official, golden_model.speaker_conditioning(features, lengths=torch.tensor([207]))
    )


def test_bad_inputs_are_refused() -> None:
    model = build_dummy_gpt(load_preset("tiny"))
    width = model.config.semantic_width
    with pytest.raises(InvalidInput, match="conditioning features"):
        model.speaker_conditioning(torch.zeros(1, 50, width + 1))
    with pytest.raises(InvalidInput, match="too short"):
        model.emotion_vector(torch.zeros(1, 2, width))
    latents, emotion = torch.zeros(1, 32, model.config.model_dim), torch.zeros(1, model.config.model_dim)
    with pytest.raises(InvalidInput, match="more than the model"):
        model.prompt_embeddings(
            latents, emotion, [torch.ones(model.config.max_text_tokens + 1, dtype=torch.long)]
        )
    with pytest.raises(InvalidInput, match="text ids must lie"):
        model.prompt_embeddings(latents, emotion, [torch.tensor([5, 100000])])
    with pytest.raises(InvalidInput, match="codes must lie"):
        model.latents(latents, emotion, [torch.tensor([5])], [torch.tensor([9000])])
    with pytest.raises(InvalidInput, match="batch sizes differ"):
        model.prompt_embeddings(latents, emotion, [torch.tensor([5]), torch.tensor([6])])
