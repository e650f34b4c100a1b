"""Fixtures of the engine tests: dummy:tiny on the CPU, a small KV pool, short requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_helpers import SMALL_ENGINE, tone

from indextts2 import Synthesizer, Voice


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
