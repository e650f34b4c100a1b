"""Helpers of the engine tests (a module of its own: ``conftest`` names clash between test folders)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from indextts2 import Audio, SynthesisOptions
from indextts2.engine import EngineConfig

RATE = 22050
# Random weights rarely stop: few codes, few flow steps keep every request short.
FAST = SynthesisOptions(max_codes=12, diffusion_steps=2, num_beams=1, seed=5)
SMALL_ENGINE = EngineConfig(kv_rows=12, max_positions=512, max_queue=8, max_active=8)


def tone(seconds: float, *, frequency: float = 220.0) -> Audio:
    t = np.arange(int(seconds * RATE)) / RATE
    return Audio((0.3 * np.sin(2 * math.pi * frequency * t)).astype(np.float32), RATE)


def wait_for(condition: Callable[[], bool], *, timeout: float = 60.0) -> None:
    """Poll until ``condition()`` holds (the engine works on its own thread).

    ``timeout`` only bounds a hang: a busy machine may take many times longer than an idle one.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the engine did not get there in time")
        time.sleep(0.002)
