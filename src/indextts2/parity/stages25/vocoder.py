"""IndexTTS-2.5 parity of the vocoder: BigVGAN v2 on the official mels, and the PCM scaling (Q9).

The 2.5 golden BigVGAN has 48 initial channels over five upsampling stages: the official generator
halves the channels with floor division (48, 24, 12, 6, 3, 1), and so do we.
"""

from __future__ import annotations

import torch

from indextts2.model.bigvgan import official_pcm
from indextts2.parity.core import Check, GoldenSet, compare_tensor
from indextts2.parity.stages.vocoder import PCM_TOLERANCE, WAVE_TOLERANCE
from indextts2.parity.stages25._golden import TEXTS, golden_model

STAGE = "vocoder"


@torch.inference_mode()
def run(golden: GoldenSet) -> list[Check]:
    expected = golden.tensors("vocoder")
    mels = golden.tensors("s2mel")
    vocoder = golden_model(golden).vocoder
    checks: list[Check] = []
    for name in TEXTS:
        wave = vocoder(mels[f"{name}.mel"])  # (1, samples)
        checks.append(
            compare_tensor(STAGE, f"{name}.wave", wave[:, None], expected[f"{name}.wave"], WAVE_TOLERANCE)
        )
        checks.append(
            compare_tensor(
                STAGE, f"{name}.wave_pcm", official_pcm(wave), expected[f"{name}.wave_pcm"], PCM_TOLERANCE
            )
        )
    return checks
