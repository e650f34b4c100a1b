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

__all__ = ["DUMMY_SEED", "network_seed", "seeded"]

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
