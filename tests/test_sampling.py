"""Score processors and random draws (transformers' semantics; checked bit-exact against
transformers 4.52.1's processors while writing them, on random and tied scores)."""

from __future__ import annotations

import math

import pytest
import torch

from indextts2.model.sampling import (
    SamplingParams,
    apply_repetition_penalty,
    apply_top_k,
    apply_top_p,
    draw_without_replacement,
    process_scores,
    sample_tokens,
)
from indextts2.options import GenerationOptions

INF = math.inf


def _params(*options: GenerationOptions) -> SamplingParams:
    return SamplingParams.from_options(list(options), rows_per_request=1, device="cpu")


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_scores() -> None:
    scores = torch.tensor([[2.0, -2.0, 3.0, -1.0]])
    seen = torch.tensor([[True, True, False, False]])
    out = apply_repetition_penalty(scores, seen, torch.tensor([[10.0]]))
    assert torch.equal(out, torch.tensor([[2.0 / 10.0, -20.0, 3.0, -1.0]]))


def test_top_k_keeps_ties_and_at_least_min_keep() -> None:
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0, 0.0]])
    assert apply_top_k(scores, torch.tensor([[1]])).tolist() == [[-INF, 3.0, 3.0, -INF, -INF]]
    assert apply_top_k(scores, torch.tensor([[3]])).tolist() == [[-INF, 3.0, 3.0, 2.0, -INF]]
    distinct = torch.tensor([[1.0, 4.0, 3.0, 2.0]])
    kept = apply_top_k(distinct, torch.tensor([[1]]), min_keep=2)  # beam search keeps 2 per beam
    assert torch.isfinite(kept).tolist() == [[False, True, True, False]]
    assert torch.equal(apply_top_k(distinct, torch.tensor([[0]])), distinct)  # 0 = no limit


@pytest.mark.parametrize("min_keep", [1, 2])
def test_top_k_with_a_host_bound_ranks_fewer_codes_and_keeps_the_same_ones(min_keep: int) -> None:
    generator = torch.Generator().manual_seed(3)
    # coarse scores, so that ties at the k-th score are common (fp16 logits tie often too)
    scores = (torch.randn(6, 300, generator=generator) * 8).round() / 4
    top_k = torch.tensor([[1], [5], [30], [30], [7], [2]])
    exact = apply_top_k(scores, top_k, min_keep=min_keep)
    for bound in (30, 31, 299, 300, 1000):
        assert torch.equal(apply_top_k(scores, top_k, min_keep=min_keep, bound=bound), exact), bound
    assert int(torch.isfinite(exact).sum()) > int(top_k.clamp(min=min_keep).sum())  # ties were kept
    options = [GenerationOptions(top_k=k) for k in (5, 30, 7)]
    assert _params(*options).top_k_bound == 30
    assert _params(*options, GenerationOptions(top_k=0)).top_k_bound == 0  # a row keeps every code


def test_top_p_keeps_the_smallest_head_reaching_the_mass() -> None:
    probs = torch.tensor([[0.5, 0.25, 0.15, 0.1]])
    scores = probs.log()
    cut = 1 - 0.8
    kept = apply_top_p(scores, torch.tensor([[0.8]]), torch.tensor([[cut]]))
    assert torch.isfinite(kept).tolist() == [[True, True, True, False]]
    tiny = apply_top_p(scores, torch.tensor([[0.01]]), torch.tensor([[0.99]]), min_keep=2)
    assert torch.isfinite(tiny).tolist() == [[True, True, False, False]]


def test_top_p_of_one_changes_nothing_even_for_underflowing_probabilities() -> None:
    scores = torch.tensor([[0.0, -200.0, -1e9]])  # the last two have probability 0 in float32
    out = apply_top_p(scores, torch.tensor([[1.0]]), torch.tensor([[0.0]]))
    assert torch.equal(out, scores)


def test_rows_with_different_settings_match_each_row_alone() -> None:
    torch.manual_seed(0)
    scores = torch.randn(3, 50)
    seen = torch.rand(3, 50) < 0.2
    settings = [
        GenerationOptions(top_k=5, top_p=0.9, temperature=0.7, repetition_penalty=2.0),
        GenerationOptions(top_k=0, top_p=0.5, temperature=1.3, repetition_penalty=1.0),
        GenerationOptions(top_k=1, top_p=1.0, temperature=1.0, repetition_penalty=10.0),
    ]
    together = process_scores(scores, seen=seen, params=_params(*settings), min_keep=1)
    for row, options in enumerate(settings):
        alone = process_scores(
            scores[row : row + 1], seen=seen[row : row + 1], params=_params(options), min_keep=1
        )
        assert torch.equal(together[row : row + 1], alone)


def test_a_single_surviving_code_is_always_drawn() -> None:
    scores = torch.full((4, 10), -INF)
    scores[torch.arange(4), torch.tensor([3, 1, 9, 0])] = 0.5
    for seed in range(5):
        generators = [torch.Generator().manual_seed(seed + row) for row in range(4)]
        assert sample_tokens(scores, generators).tolist() == [3, 1, 9, 0]


def test_draws_follow_the_softmax_distribution() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    rows = 20000
    generators = [torch.Generator().manual_seed(1)] * rows
    drawn = sample_tokens(probs.log().expand(rows, -1).clone(), generators)
    frequencies = torch.bincount(drawn, minlength=4).float() / rows
    assert torch.allclose(frequencies, probs, atol=0.015)


def test_a_rows_draw_depends_only_on_its_own_generator() -> None:
    torch.manual_seed(3)
    scores = torch.randn(3, 100)
    first = sample_tokens(scores, [torch.Generator().manual_seed(s) for s in (11, 12, 13)])
    shuffled = sample_tokens(scores[[2, 0, 1]], [torch.Generator().manual_seed(s) for s in (13, 11, 12)])
    assert first[[2, 0, 1]].tolist() == shuffled.tolist()


@pytest.mark.parametrize("count", [2, 6])
def test_draws_without_replacement_are_distinct_and_prefer_possible_codes(count: int) -> None:
    scores = torch.full((1, 12), -INF)
    scores[0, [4, 7]] = torch.tensor([0.0, -1.0])
    drawn = draw_without_replacement(scores, count, [torch.Generator().manual_seed(0)])[0].tolist()
    assert len(set(drawn)) == count
    assert set(drawn[:2]) == {4, 7}
