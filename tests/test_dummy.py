"""Seeded dummy weights: reproducible per network, independent of the caller's RNG."""

from __future__ import annotations

import torch

from indextts2.model.dummy import network_seed, seeded


def build() -> torch.nn.Linear:
    return torch.nn.Linear(8, 8)


def test_same_name_same_weights_and_global_rng_untouched() -> None:
    torch.manual_seed(7)
    before = torch.rand(3)
    torch.manual_seed(7)
    with seeded("gpt"):
        first = build()
    after = torch.rand(3)
    with seeded("gpt"):
        second = build()
    assert torch.equal(first.weight, second.weight)
    assert torch.equal(before, after)


def test_different_networks_get_different_seeds() -> None:
    assert network_seed("gpt") != network_seed("s2mel")
    with seeded("gpt"):
        a = build()
    with seeded("s2mel"):
        b = build()
    assert not torch.equal(a.weight, b.weight)


def test_constant_parameters_get_noise_and_others_are_left_alone() -> None:
    from indextts2.model.dummy import perturb_constant_parameters

    layer = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    torch.nn.init.zeros_(layer[0].weight)
    bias_before = layer[0].bias.clone()  # random init: not constant
    with seeded("test"):
        changed = perturb_constant_parameters(layer)
    assert changed == 3  # the zeroed weight, the norm's weight (ones) and its bias (zeros)
    assert torch.equal(layer[0].bias, bias_before)
    assert layer[0].weight.abs().max() > 0
    assert not torch.equal(layer[1].weight, torch.ones(4))
