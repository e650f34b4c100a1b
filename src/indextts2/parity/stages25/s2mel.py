"""IndexTTS-2.5 parity of s2mel: the duration rule, length regulator, CFM condition, DiT and solver.

Inputs are the official intermediates: the codec decoder's output ``S_infer`` (``codec.safetensors``,
num_beams 3), the voice's prompt condition, prompt mel and style, and the noise the official solver
drew. ``duration_factor`` 1.0, 0.8 and 1.25 (text ``zh``): only the target frames change,
``int(2N * 1.72 * duration_factor)`` in float64, left to right (quirk Q8), compared exactly.
"""

from __future__ import annotations

import torch

from indextts2.model.s2mel import mel_frames_for_content
from indextts2.parity.core import Check, GoldenSet, compare_exact, compare_tensor
from indextts2.parity.stages.s2mel import TOLERANCE
from indextts2.parity.stages25._golden import TEXTS, golden_model

STAGE = "s2mel"
# (tag, the stage text whose codes it uses, duration_factor)
RUNS = (*((name, name, 1.0) for name in TEXTS), ("zh.df0.8", "zh", 0.8), ("zh.df1.25", "zh", 1.25))
DIT_CALLS = ("step0", "step24")  # recorded for zh: the first and the last estimator call


@torch.inference_mode()
def run(golden: GoldenSet) -> list[Check]:
    s2mel = golden_model(golden).s2mel
    expected, codec = golden.tensors("s2mel"), golden.tensors("codec")
    voice, audio = golden.tensors("voice"), golden.tensors("audio")
    prompt_condition, prompt_mel, style = voice["ref.prompt_condition"], audio["ref.mel"], voice["ref.style"]
    prompt_lengths = torch.tensor([prompt_mel.shape[-1]])
    checks: list[Check] = []

    def check(key: str, actual: torch.Tensor) -> None:
        checks.append(compare_tensor(STAGE, key, actual, expected[key], TOLERANCE))

    for tag, source, factor in RUNS:
        content = codec[f"{source}.S_infer"]
        frames = content.shape[1]
        target = torch.tensor([mel_frames_for_content(frames, factor)])
        checks.append(
            compare_exact(STAGE, f"{tag}.target_lengths", target, expected[f"{tag}.target_lengths"])
        )
        check(f"{tag}.cond", s2mel.length_regulator(content, target))
        mu, lengths, _ = s2mel.condition(
            content,
            code_lengths=torch.tensor([frames]),
            prompt_condition=prompt_condition,
            prompt_lengths=prompt_lengths,
            target_lengths=target,
        )
        check(f"{tag}.cfm.mu", mu)
        checks.append(compare_exact(STAGE, f"{tag}.cfm.x_lens", lengths, expected[f"{tag}.cfm.x_lens"]))
        noise = expected[f"{tag}.cfm.noise"]
        out = s2mel.cfm.solve(
            mu,
            lengths=lengths,
            prompt_mel=prompt_mel,
            prompt_lengths=prompt_lengths,
            style=style,
            noise=noise,
        )
        check(f"{tag}.cfm.out", out)
        generated = s2mel.begin_content(
            content,
            content_lengths=torch.tensor([frames]),
            prompt_condition=prompt_condition,
            prompt_mel=prompt_mel,
            style=style,
            noise=noise,
            target_lengths=target,
        ).run()
        check(f"{tag}.mel", generated.mel)
    first = "zh.dit.step0"
    for call in DIT_CALLS:
        prefix = f"zh.dit.{call}"
        out = s2mel.cfm.estimator(
            expected[f"{prefix}.x"],
            expected[f"{first}.prompt_x"],
            expected[f"{prefix}.t"],
            expected[f"{first}.style"],
            expected[f"{first}.mu"],
        )
        check(f"{prefix}.out", out)
    return checks
