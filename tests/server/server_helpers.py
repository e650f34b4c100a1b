"""Small helpers shared by the server tests."""

from __future__ import annotations

import numpy as np

from indextts2.audio import Audio


def tone(seconds: float = 1.0, *, rate: int = 22050, frequency: float = 220.0) -> Audio:
    """A sine tone: a stand-in reference clip that is neither silent nor too short."""
    t = np.arange(int(seconds * rate)) / rate
    return Audio((0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)


def multipart(**fields: str) -> dict[str, tuple[None, str]]:
    """Form fields sent as multipart/form-data even without a file (httpx's ``files=``)."""
    return {name: (None, value) for name, value in fields.items()}
