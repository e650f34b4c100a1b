"""Time one decode step of the engine's GPT batch per row count: whole, and without the forward.

    python benchmarks/decode_step.py                                        # dummy:tiny on the CPU
    python benchmarks/decode_step.py --model dummy:full --device cuda --dtype fp16 --rows 1 16 64

Modes: ``eager`` (the forward run op by op), ``graph`` (CUDA only: the forward replayed from a
captured CUDA graph, as the engine does) and ``no forward`` (the step's own work: repetition
penalty, temperature, top-k, top-p, one draw per row, the codes' copy to the host and the
bookkeeping). On a GPU a step overlaps its forward with the bookkeeping, so a step takes about the
larger of the two; at small batches the ``no forward`` time is what graphs cannot remove.

Every row samples (top_k 30, top_p 0.8, temperature 0.8, repetition penalty 10: the official
defaults, one beam) and is refused the stop code, so all rows stay for the whole measurement.
Prints a Markdown table (ms per step, median of ``--repeat`` timed runs of ``--steps`` steps).
``--compare-full-sort`` adds each mode with top-k sorting the whole vocabulary (before 2026-11-25).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import torch

import indextts2.engine.decode
from indextts2 import SynthesisOptions, Synthesizer
from indextts2.engine.bench import reference_clip
from indextts2.engine.decode import DecodeBatch, DecodingSequence, run_decode_forward
from indextts2.engine.graphs import DecodeGraphs
from indextts2.engine.kv_pool import KVPool
from indextts2.model.sampling import top_k_bound

TEXT = "Speech synthesis has improved quickly in recent years."


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def full_sort_top_k() -> Iterator[None]:
    """Top-k sorting the whole vocabulary, as before the host bound existed (a bound of 0)."""
    indextts2.engine.decode.top_k_bound = lambda _options: 0  # type: ignore[assignment]
    try:
        yield
    finally:
        indextts2.engine.decode.top_k_bound = top_k_bound


def time_steps(tts: Synthesizer, voice: object, *, rows: int, mode: str, steps: int, repeat: int) -> float:
    """Median seconds per decode step of ``rows`` sampling rows in ``mode``."""
    model = tts.model
    options = SynthesisOptions(num_beams=1, max_codes=(repeat + 1) * steps + 8)
    positions = 128 + options.max_codes  # the prompt (~60 positions) and every code
    pool = KVPool(model.gpt, rows=rows, positions=positions, device=model.device)
    batch = DecodeBatch(model, pool, max_prefill_rows=rows)
    if mode == "no forward":
        batch.forward = lambda _rows, _span: None
    elif mode == "graph":
        graphs = DecodeGraphs(lambda n, span: run_decode_forward(model, pool, n, span), pool, (rows,))
        graphs.capture()
        batch.forward = graphs.step  # as the engine does
    for index in range(rows):
        request = tts._prepare(TEXT, voice=voice, emotion=None, options=options.replace(seed=index))  # type: ignore[arg-type]
        segment = tts._segments(request)[0]
        batch.add(DecodingSequence(segment, owner=None, min_codes=options.max_codes))
    step: Callable[[], object] = batch.step
    step()  # prefill and the first step
    for _ in range(steps // 2):  # warm-up
        step()
    timings = []
    for _ in range(repeat):
        _sync(model.device)
        started = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(model.device)
        timings.append((time.perf_counter() - started) / steps)
    if batch.sequences and len(batch.sequences) != rows:
        raise RuntimeError("a row left the batch during the measurement")
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="dummy:tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="GPT precision: fp16, bf16, fp32")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--steps", type=int, default=40, help="steps per timed run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell")
    parser.add_argument(
        "--compare-full-sort", action="store_true", help="also time top-k sorting the whole vocabulary"
    )
    args = parser.parse_args()

    tts = Synthesizer.from_pretrained(args.model, device=args.device, dtype=args.dtype, engine=False)
    voice = tts.voice(reference_clip())
    device = tts.device
    modes = ["eager", "no forward"] + (["graph"] if device.type == "cuda" else [])
    if args.compare_full_sort:
        modes = [m for mode in modes for m in (f"{mode} (full sort)", mode)]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.machine()
    print(
        f"{args.model} on {where} ({device.type}), GPT {str(tts.model.gpt_dtype).removeprefix('torch.')}, "
        f"{torch.get_num_threads()} CPU threads; ms per decode step\n"
    )
    print("| rows | " + " | ".join(modes) + " |")
    print("|---|" + "---|" * len(modes))
    with torch.inference_mode():
        for rows in args.rows:
            cells = []
            for mode in modes:
                plain = mode.removesuffix(" (full sort)")
                with full_sort_top_k() if plain != mode else contextlib.nullcontext():
                    seconds = time_steps(
                        tts, voice, rows=rows, mode=plain, steps=args.steps, repeat=args.repeat
                    )
                cells.append(seconds * 1e3)
            print(f"| {rows} | " + " | ".join(f"{c:.2f}" for c in cells) + " |", flush=True)
    tts.close()


if __name__ == "__main__":
    main()
