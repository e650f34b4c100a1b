"""IndexTTS-2.5 parity of the codec decoder: ``EnhancedCodec.decode(codes)`` and its parts.

Inputs are the official codes (num_beams 3) of each stage text and two crafted code sequences
(length 1 and 5: the edges of the convolutions). The parts: ``vq2emb`` (codebook rows through the
weight-normed 1x1 projection), the Vocos decoder and its Linear, the nearest x2 upsampling and the
``up`` convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from indextts2.parity.core import Check, GoldenSet, compare_tensor
from indextts2.parity.stages25._golden import TEXTS, golden_model

STAGE = "codec"
# float32 throughout: a few convolutions and LayerNorms of width <= 1024 on values of order 1, each
# rounding to ~1e-7 relative; 1e-4 leaves three orders of magnitude for the accumulation, as for the
# other networks' stages (the measured error is ~5e-6).
TOLERANCE = 1e-4


@torch.no_grad()
def run(golden: GoldenSet) -> list[Check]:
    codec = golden_model(golden).codec
    if codec is None:  # pragma: no cover - the 2.5 model always has one
        raise RuntimeError("the golden model has no codec decoder")
    expected = golden.tensors("codec")
    checks: list[Check] = []

    def check(key: str, actual: torch.Tensor) -> None:
        checks.append(compare_tensor(STAGE, key, actual, expected[key], TOLERANCE))

    for name in TEXTS:
        codes = expected[f"{name}.codes"]
        embedding = codec.vq2emb(codes)
        decoded = codec.decoded(embedding)
        check(f"{name}.vq_emb", embedding)
        check(f"{name}.decoder_out", decoded)
        check(f"{name}.upsampled", F.interpolate(decoded.transpose(1, 2), scale_factor=2, mode="nearest"))
        check(f"{name}.S_infer", codec.decode(codes))
    for name in ("direct.len1", "direct.edge5"):
        check(f"{name}.S", codec.decode(expected[f"{name}.codes"]))
    return checks
