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
