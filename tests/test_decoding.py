"""Decoding on dummy:tiny weights: the KV cache, batching, seeds, stopping, errors."""

from __future__ import annotations

import pytest
import torch

from indextts2.errors import InvalidInput
from indextts2.model.config import load_preset
from indextts2.model.decoding import decode_step, generate_codes, prefill
from indextts2.model.gpt import UnifiedVoice, build_dummy_gpt
from indextts2.options import GenerationOptions

GREEDY = GenerationOptions(top_k=1, max_codes=16, num_beams=1)
TEXT_LENGTHS = (5, 30, 12)


@pytest.fixture(scope="module")
def model() -> UnifiedVoice:
    return build_dummy_gpt(load_preset("tiny"))


@pytest.fixture(scope="module")
def inputs(model: UnifiedVoice) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Conditioning latents, emotion vectors and texts of three requests of different lengths."""
    generator = torch.Generator().manual_seed(5)
    width = model.config.semantic_width
    with torch.no_grad():
        features = torch.randn(len(TEXT_LENGTHS), 90, width, generator=generator)
        latents = model.speaker_conditioning(features)
        emotion = model.emotion_vector(features)
    texts = [torch.randint(2, 1000, (n,), generator=generator) for n in TEXT_LENGTHS]
    return latents, emotion, texts


@pytest.fixture(scope="module")
def prompts(model: UnifiedVoice, inputs) -> list[torch.Tensor]:
    latents, emotion, texts = inputs
    with torch.no_grad():
        return model.prompt_embeddings(latents, emotion, texts)


def _codes(results) -> list[list[int]]:
    return [r.codes.tolist() for r in results]


@torch.no_grad()
def test_cached_steps_match_a_full_forward(model: UnifiedVoice, prompts) -> None:
    prompt = prompts[1]
    state = prefill(model, [prompt], capacity=prompt.shape[0] + 8)
    codes = [17, 4000, 8000, 3]
    step_logits = [state.logits[0]]
    for code in codes:
        decode_step(model, state, torch.tensor([code]))
        step_logits.append(state.logits[0])
    # Without a cache: the whole sequence at once, codes at the official decoding positions 0, 2, 3, ...
    mel = torch.tensor([model.config.start_mel_token, *codes])
    positions = torch.tensor([0, *range(2, len(codes) + 2)])
    sequence = torch.cat((prompt, model.mel_embeddings(mel, positions)))
    full = model.mel_logits(model.gpt(sequence.unsqueeze(0)))[0, prompt.shape[0] :]
    torch.testing.assert_close(torch.stack(step_logits), full, atol=1e-4, rtol=0)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_a_batch_gives_each_request_the_codes_it_gets_alone(
    model: UnifiedVoice, prompts, num_beams: int
) -> None:
    options = GenerationOptions(top_k=1, max_codes=16, num_beams=num_beams)
    together = generate_codes(model, prompts, options=options)
    alone = [generate_codes(model, [p], options=options)[0] for p in prompts]
    assert _codes(together) == _codes(alone)
    assert [r.stopped for r in together] == [r.stopped for r in alone]


def test_sampling_is_reproducible_per_request_seed(model: UnifiedVoice, prompts) -> None:
    seeded = [GenerationOptions(num_beams=1, max_codes=12, seed=s) for s in (1, 2, 3)]
    first = generate_codes(model, prompts, options=seeded)
    again = generate_codes(model, prompts, options=seeded)
    assert _codes(first) == _codes(again)
    # A request's draws come from its own generator: alone, it gets what it got in the batch.
    assert _codes(generate_codes(model, [prompts[2]], options=seeded[2])) == _codes(first)[2:]
    other_seed = generate_codes(
        model, [prompts[2]], options=GenerationOptions(num_beams=1, max_codes=12, seed=99)
    )
    assert _codes(other_seed) != _codes(first)[2:]


def test_beam_sampling_is_reproducible(model: UnifiedVoice, prompts) -> None:
    options = GenerationOptions(max_codes=10, seed=7)  # the official default: sampling in 3 beams
    assert _codes(generate_codes(model, prompts[:2], options=options)) == _codes(
        generate_codes(model, prompts[:2], options=options)
    )


def test_decoding_stops_at_max_codes(model: UnifiedVoice, prompts) -> None:
    for num_beams in (1, 3):
        result = generate_codes(
            model, prompts[:1], options=GenerationOptions(top_k=1, max_codes=5, num_beams=num_beams)
        )
        assert result[0].codes.shape == (5,)
        assert not result[0].stopped
        assert torch.equal(result[0].generated, result[0].codes)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_decoding_stops_at_the_stop_code(prompts, num_beams: int) -> None:
    model = build_dummy_gpt(load_preset("tiny"))
    stop = model.config.stop_mel_token
    with torch.no_grad():
        model.mel_head.bias[stop] = 1e4  # the stop code wins from the first step
    result = generate_codes(
        model, prompts, options=GenerationOptions(top_k=1, max_codes=9, num_beams=num_beams)
    )
    for row in result:
        assert row.stopped
        assert row.codes.numel() == 0
        assert row.generated.tolist() == [stop]


@pytest.mark.parametrize("code", [1, 8192])
def test_repetition_penalty_sees_the_placeholder_prompt_and_start_code(prompts, code: int) -> None:
    """As officially, code 1 (the placeholder prompt id) and the start code count as already seen."""
    model = build_dummy_gpt(load_preset("tiny"))
    first = prefill(model, prompts[:1], capacity=prompts[0].shape[0] + 1).logits[0]
    others = torch.cat((first[:code], first[code + 1 :])).max()
    with torch.no_grad():
        model.mel_head.bias[code] += others + 1 - first[code]  # now the best code, by a margin of 1
    one_code = {"top_k": 1, "max_codes": 1, "num_beams": 1}
    unpenalised = generate_codes(
        model, prompts[:1], options=GenerationOptions(repetition_penalty=1.0, **one_code)
    )
    penalised = generate_codes(
        model, prompts[:1], options=GenerationOptions(repetition_penalty=10.0, **one_code)
    )
    assert unpenalised[0].codes.tolist() == [code]
    assert penalised[0].codes.tolist() != [code]


def test_latents_of_a_batch_equal_each_alone(model: UnifiedVoice, inputs) -> None:
    latents, emotion, texts = inputs
    codes = [torch.randint(0, 8192, (n,), generator=torch.Generator().manual_seed(n)) for n in (7, 3, 11)]
    with torch.no_grad():
        together = model.latents(latents, emotion, texts, codes)
        for row in range(3):
            alone = model.latents(
                latents[row : row + 1], emotion[row : row + 1], texts[row : row + 1], codes[row : row + 1]
            )
            assert together[row].shape == (codes[row].numel(), model.config.model_dim)
            torch.testing.assert_close(together[row], alone[0], atol=1e-5, rtol=0)


def test_bad_requests_are_refused(model: UnifiedVoice, prompts) -> None:
    with pytest.raises(InvalidInput, match="same num_beams"):
        generate_codes(model, prompts[:2], options=[GREEDY, GenerationOptions(num_beams=3)])
    with pytest.raises(InvalidInput, match="max_codes"):
        generate_codes(
            model, prompts[:1], options=GenerationOptions(max_codes=model.config.max_mel_tokens + 1)
        )
    with pytest.raises(InvalidInput, match="no prompts"):
        generate_codes(model, [], options=GREEDY)
    with pytest.raises(InvalidInput, match="prompt must be"):
        generate_codes(model, [torch.zeros(4, 7)], options=GREEDY)


@torch.no_grad()
def test_a_step_over_the_whole_capacity_matches_the_eager_span(model: UnifiedVoice, prompts) -> None:
    """span=None (static shapes, as a captured step runs) gives the same logits as the host-side span."""
    eager = prefill(model, prompts, capacity=80)
    static = prefill(model, prompts, capacity=80)
    static.span = None
    for code in (5, 600, 7000):
        codes = torch.full((len(prompts),), code)
        decode_step(model, eager, codes)
        decode_step(model, static, codes)
        torch.testing.assert_close(static.logits, eager.logits, atol=1e-5, rtol=0)
    assert torch.equal(static.positions, eager.positions)
    assert static.positions.tolist() == [5] * len(prompts)  # the third code went to position 4
