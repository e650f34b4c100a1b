"""Error of bf16 / fp16 against fp32 for s2mel (the DiT) and BigVGAN on ``dummy:full`` weights.

Each stage gets the same input in every precision (the vocoder gets the fp32 mel), so the numbers
are the stage's own error. Random weights are not trained ones: read the figures as "the reduced
precision path works and its error is of this order", not as a listening-quality verdict.

    python benchmarks/s2mel_precision.py                     # CPU, a short run
    python benchmarks/s2mel_precision.py --device cuda --steps 25 --codes 200
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from indextts2.model.bigvgan import BigVGAN
from indextts2.model.config import load_preset
from indextts2.model.flow import FlowOptions
from indextts2.model.s2mel import S2Mel, mel_frames_for_codes

PRECISIONS = ("fp32", "bf16", "fp16")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=4, help="Euler steps (official: 25)")
    parser.add_argument("--codes", type=int, default=20, help="GPT codes (mel frames = int(codes * 1.72))")
    parser.add_argument("--prompt-frames", type=int, default=100, help="reference mel frames")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    config = load_preset("full")

    generator = torch.Generator().manual_seed(args.seed)
    target = int(mel_frames_for_codes(torch.tensor([args.codes])))
    total = args.prompt_frames + target
    inputs = {
        "latent": torch.randn(1, args.codes, config.gpt_dim, generator=generator),
        "semantic_embedding": torch.randn(1, args.codes, config.semantic_width, generator=generator),
        "prompt_condition": torch.randn(1, args.prompt_frames, 512, generator=generator),
        "prompt_mel": torch.randn(1, 80, args.prompt_frames, generator=generator) - 5.0,
        "style": torch.randn(1, 192, generator=generator),
        "noise": torch.randn(1, 80, total, generator=generator),
    }
    inputs = {k: v.to(device) for k, v in inputs.items()}
    options = FlowOptions(steps=args.steps)

    s2mel = S2Mel.dummy(config).to(device)
    vocoder = BigVGAN.dummy(config).to(device)
    mels: dict[str, torch.Tensor] = {}
    waves: dict[str, torch.Tensor] = {}
    seconds: dict[str, tuple[float, float]] = {}
    reference_mel: torch.Tensor | None = None
    # One untimed pass first, so that the fp32 timing does not include first-call costs.
    s2mel.generate(
        inputs["latent"],
        inputs["semantic_embedding"],
        prompt_condition=inputs["prompt_condition"],
        prompt_mel=inputs["prompt_mel"],
        style=inputs["style"],
        options=FlowOptions(steps=1),
    )
    vocoder(inputs["prompt_mel"][:, :, :8])
    for precision in PRECISIONS:
        s2mel.set_precision(precision)
        vocoder.set_precision(precision)
        _sync(device)
        start = time.perf_counter()
        mels[precision] = s2mel.generate(
            inputs["latent"],
            inputs["semantic_embedding"],
            prompt_condition=inputs["prompt_condition"],
            prompt_mel=inputs["prompt_mel"],
            style=inputs["style"],
            noise=inputs["noise"],
            options=options,
        ).mel
        _sync(device)
        middle = time.perf_counter()
        reference_mel = mels["fp32"] if reference_mel is None else reference_mel
        waves[precision] = vocoder(reference_mel)
        _sync(device)
        seconds[precision] = (middle - start, time.perf_counter() - middle)

    print(f"device: {device} ({platform.processor() or platform.machine()}), torch {torch.__version__}")
    print(
        f"dummy:full, {args.codes} codes -> {target} mel frames after a {args.prompt_frames}-frame prompt, "
        f"{args.steps} Euler steps with CFG 0.7; vocoder on the fp32 mel ({target * 256} samples)"
    )
    print()
    print(
        "| precision | s2mel mel: max abs err | mean abs err | mel std | s2mel s "
        "| wave: max abs err | mean abs err | wave peak | vocoder s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for precision in PRECISIONS:
        mel_error = (mels[precision] - mels["fp32"]).abs()
        wave_error = (waves[precision] - waves["fp32"]).abs()
        print(
            f"| {precision} | {mel_error.max():.3g} | {mel_error.mean():.3g} | {mels['fp32'].std():.3g} "
            f"| {seconds[precision][0]:.2f} | {wave_error.max():.3g} | {wave_error.mean():.3g} "
            f"| {waves['fp32'].abs().max():.3g} | {seconds[precision][1]:.2f} |"
        )


if __name__ == "__main__":
    main()
