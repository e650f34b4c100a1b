"""What chunked streaming costs in quality: its audio against the same segment rendered whole.

One segment, the same codes (greedy, forced count), rendered by the engine whole and in chunks
(``StreamingOptions(chunked=True)``); both waveforms go through the IndexTTS2 log-mel and are
compared. For scale, the same segment rendered whole with other flow noise (another seed: greedy
codes do not change) gives the difference the sampling noise alone makes.

Random weights are not trained ones: read the numbers as "how far the pieces stray from the whole
render, next to how far the noise moves it", not as a listening verdict.

    python benchmarks/chunked_streaming_error.py                         # dummy:full on the CPU
    python benchmarks/chunked_streaming_error.py --device cuda --codes 500
"""

from __future__ import annotations

import argparse
import logging
import platform
import time

import numpy as np
import torch

from indextts2 import SynthesisOptions, Synthesizer
from indextts2.audio.dsp import log_mel_spectrogram
from indextts2.engine import EngineConfig, StreamingOptions
from indextts2.engine.bench import reference_clip

TEXT = "Speech synthesis has improved quickly in recent years, and it keeps getting better."


def render(
    tts: Synthesizer, voice: object, *, seed: int, codes: int, steps: int, streaming: StreamingOptions
) -> tuple[np.ndarray, float, float]:
    """The wave, the time to its first chunk and the total time."""
    options = SynthesisOptions(top_k=1, num_beams=1, max_codes=codes, diffusion_steps=steps, seed=seed)
    request = tts._prepare(TEXT, voice=voice, emotion=None, options=options, streaming=streaming)  # type: ignore[arg-type]
    started = time.perf_counter()
    first = None
    pieces = []
    for chunk in tts._generate(request, exact_codes=[codes]):
        if first is None and chunk.samples.size:
            first = time.perf_counter() - started
        pieces.append(chunk.samples)
    return np.concatenate(pieces), first or 0.0, time.perf_counter() - started


def mel(wave: np.ndarray, gain: float) -> torch.Tensor:
    """Log-mel ``(80, frames)`` of the wave scaled by ``gain`` (the dummy vocoder is very quiet)."""
    return log_mel_spectrogram(torch.from_numpy(wave * gain))  # 1-D in: (80, frames) out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="dummy:full")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--codes", type=int, default=200, help="codes of the segment (50 per second)")
    parser.add_argument("--steps", type=int, default=25, help="flow-matching steps (official: 25)")
    args = parser.parse_args()
    logging.getLogger("indextts2.text").setLevel(logging.ERROR)
    engine = EngineConfig(kv_rows=2, max_positions=args.codes + 200, max_active=1)
    with Synthesizer.from_pretrained(args.model, device=args.device, engine=engine) as tts:
        voice = tts.voice(reference_clip())
        whole, whole_first, whole_total = render(
            tts, voice, seed=1, codes=args.codes, steps=args.steps, streaming=StreamingOptions()
        )
        other, _, _ = render(
            tts, voice, seed=2, codes=args.codes, steps=args.steps, streaming=StreamingOptions()
        )
        rows = []
        for name, streaming in (
            ("chunked (defaults: 16, 40, 80... codes, 24-code context)", StreamingOptions(chunked=True)),
            (
                "chunked, equal 40-code pieces, 12-code context",
                StreamingOptions(chunked=True, chunk_growth=1.0, context_codes=12, holdback_frames=6),
            ),
        ):
            wave, first, total = render(
                tts, voice, seed=1, codes=args.codes, steps=args.steps, streaming=streaming
            )
            rows.append((name, wave, first, total))
    gain = 0.5 / float(np.abs(whole).max())
    reference = mel(whole, gain)
    print(
        f"{args.model} on {platform.machine()} ({args.device}), {args.codes} codes, {args.steps} steps; "
        f"waves scaled by {gain:.1f} (peak 0.5) before the log-mel; whole-segment log-mel std "
        f"{float(reference.std()):.3f}\n"
    )
    print(
        "| render | log-mel mean abs diff vs whole | 95th pct | worst frame (mean over bins) "
        "| wave rms diff / rms | first audio s | total s |"
    )
    print("|---|---|---|---|---|---|---|")

    def line(name: str, wave: np.ndarray, first: float | None, total: float | None) -> None:
        if wave.shape != whole.shape:
            print(f"| {name} | {wave.size} samples, whole has {whole.size} | - | - | - | - | - |")
            return
        diff = (mel(wave, gain) - reference).abs()
        relative = float(np.sqrt(np.mean((wave - whole) ** 2)) / np.sqrt(np.mean(whole**2)))
        timing = "-" if first is None else f"{first:.1f}"
        total_s = "-" if total is None else f"{total:.1f}"
        print(
            f"| {name} | {float(diff.mean()):.3f} | {float(diff.quantile(0.95)):.3f} | "
            f"{float(diff.mean(dim=0).max()):.3f} | {relative:.3f} | {timing} | {total_s} |"
        )

    line("whole, other flow noise (scale)", other, None, None)
    line("whole (reference)", whole, whole_first, whole_total)
    for name, wave, first, total in rows:
        line(name, wave, first, total)


if __name__ == "__main__":
    main()
