"""Parity of s2mel: gpt_layer, length regulator, the CFM condition, the DiT and the Euler solver.

Inputs are the official intermediates: the GPT latent and codes (``gpt.safetensors``, num_beams 3),
the voice's prompt condition, prompt mel and style, and the noise the official solver drew. The
semantic embedding of the codes comes from our semantic codec's ``vq2emb`` and is checked against
the recorded ``vq_emb``.
"""

from __future__ import annotations

import torch

from indextts2.model.codec import SemanticCodec
from indextts2.model.config import load_config
from indextts2.model.s2mel import S2Mel, mel_frames_for_codes
from indextts2.parity.core import Check, GoldenSet, compare_exact, compare_tensor

STAGE = "s2mel"
TOLERANCE = 1e-4  # mel and every intermediate
RUNS = ("t0", "t1", "t2")
DIT_CALLS = ("step0", "step24")  # recorded for t0: the first and the last estimator call


def load_model(golden: GoldenSet) -> tuple[S2Mel, SemanticCodec]:
    checkpoint = golden.checkpoint
    config = load_config(
        checkpoint / "config.yaml",
        w2v_bert_dir=checkpoint / "w2v-bert-2.0",
        bigvgan_dir=checkpoint / "bigvgan",
    )
    codec = SemanticCodec.from_config(config.section("semantic_codec"))
    codec.load(checkpoint / "semantic_codec" / "model.safetensors")
    return S2Mel.from_checkpoint(config, checkpoint / "s2mel.pth"), codec.eval()


def _dit_checks(model: S2Mel, expected: dict[str, torch.Tensor]) -> list[Check]:
    checks = []
    first = "t0.dit.step0"
    for call in DIT_CALLS:
        prefix = f"t0.dit.{call}"
        out = model.cfm.estimator(
            expected[f"{prefix}.x"],
            expected[f"{first}.prompt_x"],
            expected[f"{prefix}.t"],
            expected[f"{first}.style"],
            expected[f"{first}.mu"],
        )
        checks.append(compare_tensor(STAGE, f"{prefix}.out", out, expected[f"{prefix}.out"], TOLERANCE))
    return checks


@torch.inference_mode()
def run(golden: GoldenSet) -> list[Check]:
    expected = golden.tensors("s2mel")
    gpt, voice = golden.tensors("gpt"), golden.tensors("voice")
    model, codec = load_model(golden)
    prompt_condition = voice["ref.prompt_condition"]
    checks: list[Check] = []
    for run_name in RUNS:
        codes = gpt[f"{run_name}.beams3.codes"]
        latent = gpt[f"{run_name}.beams3.latent"]
        prompt_mel = expected[f"{run_name}.cfm.prompt"]
        style = expected[f"{run_name}.cfm.style"]
        code_lengths = torch.tensor([codes.shape[1]])
        prompt_lengths = torch.tensor([prompt_mel.shape[2]])
        embedding = codec.vq2emb(codes)  # (1, n_codes, width)

        def check(item: str, actual: torch.Tensor, run_name: str = run_name) -> None:
            key = f"{run_name}.{item}"
            checks.append(compare_tensor(STAGE, key, actual, expected[key], TOLERANCE))

        check("vq_emb", embedding.transpose(1, 2))
        assert model.gpt_layer is not None  # IndexTTS-2's s2mel has one
        check("latent_gpt_layer", model.gpt_layer(latent))
        content = model.content_features(latent, embedding)
        check("S_infer", content)
        checks.append(
            compare_exact(
                STAGE,
                f"{run_name}.target_lengths",
                mel_frames_for_codes(code_lengths),
                expected[f"{run_name}.target_lengths"],
            )
        )
        check("cond", model.length_regulator(content, mel_frames_for_codes(code_lengths)))
        mu, lengths, _ = model.condition(
            content,
            code_lengths=code_lengths,
            prompt_condition=prompt_condition,
            prompt_lengths=prompt_lengths,
        )
        check("cfm.mu", mu)
        noise = expected[f"{run_name}.cfm.noise"]
        out = model.cfm.solve(
            mu,
            lengths=lengths,
            prompt_mel=prompt_mel,
            prompt_lengths=prompt_lengths,
            style=style,
            noise=noise,
        )
        check("cfm.out", out)
        generated = model.generate(
            latent,
            embedding,
            prompt_condition=prompt_condition,
            prompt_mel=prompt_mel,
            style=style,
            noise=noise,
        )
        check("mel", generated.mel)
        if run_name == "t0":
            checks.extend(_dit_checks(model, expected))
    return checks
