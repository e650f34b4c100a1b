"""Resident size of a whole model (every network) on the CPU, per network and per precision.

Builds ``TTSModel.dummy(PRESET)`` (seeded random weights at the preset's sizes: ``full-2.5`` is
IndexTeam/IndexTTS-2.5 at release sizes, ``full`` IndexTeam/IndexTTS-2) in a fresh process and reports:

- the process's resident set before, at its peak while building, and after (``VmRSS`` / ``VmHWM``);
- each network's parameter and buffer bytes in float32, and what they would be in bf16 / fp16
  (2 bytes per element, the same for both);
- the library's default on CUDA (the GPT in the family's half precision, everything else float32,
  as the official code runs it) and everything in half precision;
- the KV cache one sequence needs at the model's longest (text + prompt + codes) in half precision.

Usage: python benchmarks/model_memory.py [--preset full-2.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

GIB = 1024**3
MIB = 1024**2


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _bytes(module: object, *, half: bool = False) -> tuple[int, int]:
    """(elements, bytes) of a module's parameters and floating buffers; ``half``: 2 bytes each."""
    import torch

    tensors = [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]  # type: ignore[attr-defined]
    seen: dict[int, torch.Tensor] = {id(t): t for t in tensors}
    elements = sum(t.numel() for t in seen.values())
    size = sum(t.numel() * (2 if half else t.element_size()) for t in seen.values())
    return elements, size


def measure(preset: str) -> dict[str, object]:
    import torch

    from indextts2.model.pipeline import TTSModel

    torch.set_num_threads(2)
    before = _status("VmRSS")
    started = time.perf_counter()
    model = TTSModel.dummy(preset)
    seconds = time.perf_counter() - started
    after, peak = _status("VmRSS"), _status("VmHWM")
    encoder = model.voice_encoder
    parts = {
        "gpt (UnifiedVoice)": model.gpt,
        "w2v-BERT 2.0 (17 layers)": encoder.semantic,
        "CAMPPlus": encoder.campplus,
        "s2mel DiT + flow": model.s2mel.cfm,
        "length regulator": model.s2mel.length_regulator,
        "BigVGAN": model.vocoder,
    }
    if model.s2mel.gpt_layer is not None:
        parts["s2mel gpt_layer"] = model.s2mel.gpt_layer
    if encoder.codec is not None:
        parts["semantic codec (RepCodec)"] = encoder.codec
    if model.codec is not None:
        parts["codec decoder (EnhancedCodec)"] = model.codec
    rows = {}
    for name, module in parts.items():
        elements, fp32 = _bytes(module)
        rows[name] = {
            "parameters": elements,
            "fp32_mib": fp32 / MIB,
            "half_mib": _bytes(module, half=True)[1] / MIB,
        }
    total_elements, total_fp32 = _bytes(model)
    gpt_fp32 = rows["gpt (UnifiedVoice)"]["fp32_mib"]
    gpt_half = rows["gpt (UnifiedVoice)"]["half_mib"]
    cfg = model.gpt.config
    positions = cfg.max_text_tokens + model.prompt_overhead + cfg.max_mel_tokens
    kv_half = 2 * cfg.layers * positions * cfg.model_dim * 2  # keys and values, 2 bytes each
    return {
        "preset": preset,
        "family": model.family.name,
        "build_seconds": seconds,
        "rss_before_gib": before / GIB,
        "rss_peak_gib": peak / GIB,
        "rss_after_gib": after / GIB,
        "networks": rows,
        "total_parameters": total_elements,
        "total_fp32_gib": total_fp32 / GIB,
        "total_half_gib": _bytes(model, half=True)[1] / GIB,
        "default_cuda_gib": (total_fp32 / MIB - gpt_fp32 + gpt_half) / 1024,
        "kv_positions": positions,
        "kv_per_sequence_half_mib": kv_half / MIB,
    }


def markdown(result: dict[str, object]) -> str:
    rows = result["networks"]
    assert isinstance(rows, dict)
    lines = [
        f"{result['preset']} ({result['family']}): {result['total_parameters']:,} parameters",
        "",
        "| network | parameters | fp32 MiB | bf16 / fp16 MiB |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['parameters']:,} | {row['fp32_mib']:.0f} | {row['half_mib']:.0f} |")
    lines += [
        f"| **whole model** | {result['total_parameters']:,} | {result['total_fp32_gib'] * 1024:.0f} "
        f"| {result['total_half_gib'] * 1024:.0f} |",
        "",
        f"- process RSS: {result['rss_before_gib']:.2f} GiB before, {result['rss_peak_gib']:.2f} GiB "
        f"peak while building, {result['rss_after_gib']:.2f} GiB after ({result['build_seconds']:.0f} s)",
        "- library default on CUDA (GPT in half precision, the rest float32): "
        f"{result['default_cuda_gib']:.2f} GiB",
        f"- everything in half precision: {result['total_half_gib']:.2f} GiB",
        f"- KV cache of one sequence at {result['kv_positions']} positions, half precision: "
        f"{result['kv_per_sequence_half_mib']:.0f} MiB",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset", default="full-2.5", help="a dummy preset (full-2.5, full, tiny-2.5, tiny)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    result = measure(args.preset)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
