"""dummy:full: the release-size GPT builds on the CPU and decodes (slow: ~3.5 GB, about a minute)."""

from __future__ import annotations

import pytest
import torch

from indextts2.model.config import load_preset
from indextts2.model.decoding import generate_codes
from indextts2.model.gpt import build_dummy_gpt
from indextts2.options import GenerationOptions

STEPS = 20


@pytest.mark.slow
@torch.no_grad()
def test_release_size_gpt_decodes_twenty_steps() -> None:
    model = build_dummy_gpt(load_preset("full"))
    parameters = sum(p.numel() for p in model.parameters())
    assert 860e6 < parameters < 870e6  # the release GPT has ~866 M
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(1, 200, model.config.semantic_width, generator=generator)  # 4 s of speech
    latents = model.speaker_conditioning(features)
    emotion = model.emotion_vector(features)
    text = torch.randint(2, 12000, (16,), generator=generator)
    prompt = model.prompt_embeddings(latents, emotion, [text])
    greedy = GenerationOptions(top_k=1, num_beams=1, max_codes=STEPS)
    result = generate_codes(model, prompt, options=greedy)[0]
    assert result.stopped or result.codes.numel() == STEPS
    assert int(result.codes.min()) >= 0
    assert int(result.codes.max()) < model.config.number_mel_codes
    latent = model.latents(latents, emotion, [text], [result.codes])
    assert latent[0].shape == (result.codes.numel(), model.config.model_dim)
