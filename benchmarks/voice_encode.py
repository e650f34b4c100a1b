"""Time ``VoiceEncoder.encode_voice`` on dummy weights: latency per batch size and peak memory.

    python benchmarks/voice_encode.py --preset full --device cuda --seconds 10 --batch 1 4 8

Clips are synthetic (a modulated tone), ``--seconds`` long at 22.05 kHz; each batch size is run once
to warm up and then ``--repeat`` times; the median is reported. Prints one JSON line per batch size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from indextts2.audio import Audio
from indextts2.model.config import load_preset
from indextts2.model.voice import VoiceEncoder, load_speaker_clip


def _clip(seconds: float, seed: int) -> Audio:
    rate = 22050
    t = np.arange(int(seconds * rate)) / rate
    pitch = 180 + 20 * seed
    wave = 0.3 * np.sin(2 * np.pi * pitch * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return Audio(wave.astype(np.float32), rate)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    device = torch.device(args.device)
    start = time.perf_counter()
    encoder = VoiceEncoder.dummy(load_preset(args.preset)).to(device)
    build_s = time.perf_counter() - start
    parameters = sum(p.numel() for p in encoder.parameters())

    for batch in args.batch:
        clips = [load_speaker_clip(_clip(args.seconds, seed)) for seed in range(batch)]
        encoder.encode_voice(clips)  # warm-up
        _sync(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(args.repeat):
            begin = time.perf_counter()
            encoder.encode_voice(clips)
            _sync(device)
            times.append(time.perf_counter() - begin)
        median = statistics.median(times)
        result = {
            "preset": args.preset,
            "device": str(device),
            "parameters_m": round(parameters / 1e6, 1),
            "build_s": round(build_s, 2),
            "clip_s": args.seconds,
            "batch": batch,
            "median_s": round(median, 4),
            "clips_per_s": round(batch / median, 2),
            "threads": torch.get_num_threads(),
        }
        if device.type == "cuda":
            result["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
