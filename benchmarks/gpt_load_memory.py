"""Peak resident memory of building and loading the release-size (dummy:full) GPT on the CPU.

Each phase runs in its own process, so each peak (VmHWM) is that phase's alone:

1. ``build``: build the dummy:full GPT (seeded random weights) and save its state dict to a file;
2. ``load``: ``UnifiedVoice.from_checkpoint`` (meta-device build + memory-mapped checkpoint, assigned),
   then read every weight once (a sum), so that all pages are resident;
3. ``naive`` (with ``--naive``): what we avoid — build on the CPU, ``torch.load`` without mmap and
   ``load_state_dict`` (copying): two copies of the weights at the peak.

Usage: python benchmarks/gpt_load_memory.py [--naive] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1024**3


def peak_rss() -> int:
    """This process's peak resident set size in bytes (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _phase(name: str, path: Path) -> dict[str, float]:
    import torch

    from indextts2.model.config import load_preset
    from indextts2.model.gpt import UnifiedVoice, build_dummy_gpt

    config = load_preset("full")
    baseline = current_rss()
    start = time.perf_counter()
    result: dict[str, float] = {"baseline_gib": baseline / GIB}
    if name == "build":
        model = build_dummy_gpt(config)
        result["weights_gib"] = sum(p.numel() * p.element_size() for p in model.parameters()) / GIB
        result["seconds"] = time.perf_counter() - start
        result["peak_after_build_gib"] = peak_rss() / GIB
        torch.save(model.state_dict(), path)
    elif name == "load":
        model = UnifiedVoice.from_checkpoint(path, config)
        result["seconds"] = time.perf_counter() - start
        result["rss_after_load_gib"] = current_rss() / GIB
        with torch.no_grad():
            checksum = sum(float(p.sum()) for p in model.parameters())  # touch every page
        result["checksum"] = checksum
    elif name == "naive":
        model = UnifiedVoice.from_config(config)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
        model.load_state_dict(state)
        result["seconds"] = time.perf_counter() - start
    result["peak_gib"] = peak_rss() / GIB
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--naive", action="store_true", help="also measure the copying loader (2x memory)")
    parser.add_argument("--keep", type=Path, help="directory for the checkpoint (default: a temporary one)")
    parser.add_argument("--phase", choices=["build", "load", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(_phase(args.phase, args.path)))
        return

    with tempfile.TemporaryDirectory(dir=args.keep) as directory:
        path = Path(directory) / "gpt.pth"
        phases = ["build", "load"] + (["naive"] if args.naive else [])
        results = {}
        for phase in phases:
            output = subprocess.run(
                [sys.executable, __file__, "--phase", phase, "--path", str(path)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[phase] = json.loads(output.strip().splitlines()[-1])
        results["checkpoint_gib"] = {"size": path.stat().st_size / GIB}
    print(json.dumps(results, indent=1))
    weights = results["build"]["weights_gib"]
    print(f"\nweights (fp32): {weights:.2f} GiB")
    for phase in phases:
        r = results[phase]
        extra = r["peak_gib"] - r["baseline_gib"]
        print(
            f"{phase:6s} peak RSS {r['peak_gib']:.2f} GiB (python+torch before: {r['baseline_gib']:.2f} GiB, "
            f"+{extra:.2f} GiB = {extra / weights:.2f}x the weights), {r['seconds']:.1f} s"
        )


if __name__ == "__main__":
    main()
