"""Fixtures of the engine tests: dummy:tiny on the CPU, a small KV pool, short requests."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from indextts2 import Audio, SynthesisOptions, Synthesizer, Voice
from indextts2.engine import EngineConfig

RATE = 22050
# Random weights rarely stop: few codes, few flow steps keep every request short.
FAST = SynthesisOptions(max_codes=12, diffusion_steps=2, num_beams=1, seed=5)
SMALL_ENGINE = EngineConfig(kv_rows=12, max_positions=512, max_queue=8, max_active=8)


def tone(seconds: float, *, frequency: float = 220.0) -> Audio:
    t = np.arange(int(seconds * RATE)) / RATE
    return Audio((0.3 * np.sin(2 * math.pi * frequency * t)).astype(np.float32), RATE)


def wait_for(condition: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Poll until ``condition()`` holds (the engine works on its own thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the engine did not get there in time")
        time.sleep(0.002)


@pytest.fixture(scope="module")
def tts() -> Iterator[Synthesizer]:
    with Synthesizer.from_pretrained("dummy:tiny", device="cpu", engine=SMALL_ENGINE) as synthesizer:
        yield synthesizer


@pytest.fixture(scope="module")
def alone() -> Iterator[Synthesizer]:
    """The same model without the engine: every request alone (the reference results)."""
    with Synthesizer.from_pretrained("dummy:tiny", device="cpu", engine=False) as synthesizer:
        yield synthesizer


@pytest.fixture(scope="module")
def voice(tts: Synthesizer) -> Voice:
    return tts.voice(tone(1.5))
