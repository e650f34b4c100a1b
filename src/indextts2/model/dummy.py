"""Seeded random weights for the ``dummy`` load formats (``dummy:tiny``, ``dummy:full``).

Like vLLM's ``--load-format dummy``: every network is built from a config and initialised from a
seeded generator, with no file read, so every code path runs without downloading weights. Each
network gets its own seed derived from the base seed and its name, so adding a network never changes
another one's weights.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["DUMMY_SEED", "network_seed", "perturb_constant_parameters", "seeded"]

DUMMY_SEED = 1234


def network_seed(name: str, base_seed: int = DUMMY_SEED) -> int:
    """A stable seed per network name (``gpt``, ``s2mel``, ``bigvgan``...)."""
    return (base_seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**31)


@contextmanager
def seeded(name: str, base_seed: int = DUMMY_SEED) -> Iterator[None]:
    """Build modules inside this block to get torch's default initialisers, reproducibly seeded.

    The global RNG state is restored afterwards, so callers' own randomness is not disturbed.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(network_seed(name, base_seed))
        yield


@torch.no_grad()
def perturb_constant_parameters(module: torch.nn.Module, *, scale: float = 0.05) -> int:
    """Add ``scale * N(0, 1)`` to every parameter whose values are all equal. Returns how many.

    Default initialisers leave many parameters constant (norm weights at 1, biases at 0, and the
    zero-initialised output layers of the DiT's adaptive norms and final layer). With those, some
    inputs have no effect at all: a dummy s2mel would ignore its conditioning. The golden checkpoint
    was perturbed the same way for the same reason (its zero-initialised layers ended near std 0.07).
    Call it inside :func:`seeded`.
    """
    changed = 0
    for parameter in module.parameters():
        if parameter.numel() and bool((parameter == parameter.flatten()[0]).all()):
            parameter.add_(torch.randn_like(parameter) * scale)
            changed += 1
    return changed
