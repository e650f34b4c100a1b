"""Parity of the vocoder: BigVGAN v2 on the official mels, and the official PCM scaling (Q10)."""

from __future__ import annotations

import torch

from indextts2.model.bigvgan import PCM_PEAK, BigVGAN, official_pcm
from indextts2.model.config import load_config
from indextts2.parity.core import Check, GoldenSet, compare_tensor

STAGE = "vocoder"
WAVE_TOLERANCE = 1e-4
# The same error on the PCM scale: the waveform tolerance times 32767 (about 3.3 LSB of 16-bit PCM).
PCM_TOLERANCE = WAVE_TOLERANCE * PCM_PEAK
RUNS = ("t0", "t1", "t2")


def load_model(golden: GoldenSet) -> BigVGAN:
    checkpoint = golden.checkpoint
    config = load_config(
        checkpoint / "config.yaml",
        w2v_bert_dir=checkpoint / "w2v-bert-2.0",
        bigvgan_dir=checkpoint / "bigvgan",
    )
    return BigVGAN.from_checkpoint(config, checkpoint / "bigvgan" / "bigvgan_generator.pt")


@torch.inference_mode()
def run(golden: GoldenSet) -> list[Check]:
    expected = golden.tensors("vocoder")
    model = load_model(golden)
    checks: list[Check] = []
    for run_name in RUNS:
        wave = model(expected[f"{run_name}.mel"])  # (1, samples)
        checks.append(
            compare_tensor(
                STAGE, f"{run_name}.wave", wave[:, None], expected[f"{run_name}.wave"], WAVE_TOLERANCE
            )
        )
        checks.append(
            compare_tensor(
                STAGE,
                f"{run_name}.wave_pcm",
                official_pcm(wave),
                expected[f"{run_name}.wave_pcm"],
                PCM_TOLERANCE,
            )
        )
    return checks
