"""``indextts2 doctor``: what this machine has, in one table."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from indextts2.__about__ import __version__
from indextts2.cli._console import out
from indextts2.settings import Settings

# (distribution, what it is for); missing ones are reported, never fatal here.
OPTIONAL_PIECES: tuple[tuple[str, str], ...] = (
    ("soundfile", "audio files (wav, flac, ogg, mp3)"),
    ("soxr", "high-quality resampling"),
    ("safetensors", "checkpoints and saved voices"),
    ("sentencepiece", "text tokenizer"),
    ("wetext", "text normalization"),
    ("transformers", "w2v-BERT and the Qwen emotion model"),
    ("huggingface_hub", "model downloads"),
    ("litestar", "the server"),
    ("uvicorn", "the server"),
    ("prometheus_client", "server metrics"),
    ("httpx", "the remote client"),
)


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _version_of(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _free_disk(path: Path) -> str:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return f"unknown ({exc.strerror})"
    return f"{_gib(usage.free)} free of {_gib(usage.total)}"


def _torch_rows() -> list[tuple[str, str]]:
    if importlib.util.find_spec("torch") is None:
        return [("torch", "[red]not installed[/] (pip install torch)")]
    import torch

    rows: list[tuple[str, str]] = [("torch", str(torch.__version__))]
    if torch.cuda.is_available():
        rows.append(("CUDA", f"available, runtime {torch.version.cuda}"))
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            name = torch.cuda.get_device_name(index)
            rows.append((f"GPU {index}", f"{name}, {_gib(free)} free of {_gib(total)}"))
    else:
        rows.append(("CUDA", "not available (synthesis runs on the CPU, slowly)"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        rows.append(("MPS", "available"))
    rows.append(("CPU threads", str(torch.get_num_threads())))
    return rows


def doctor(
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Model cache to inspect (default: INDEXTTS2_HOME).")
    ] = None,
) -> None:
    """Show Python, torch, CUDA and GPU memory, the model cache and its free disk, and optional pieces."""
    settings = Settings.from_env().with_overrides(home=cache_dir)
    table = Table(title="indextts2 doctor", show_header=True)
    table.add_column("check", style="bold")
    table.add_column("status")
    table.add_row("indextts2", __version__)
    table.add_row("Python", f"{platform.python_version()} ({sys.executable})")
    table.add_row("platform", platform.platform())
    for name, status in _torch_rows():
        table.add_row(name, status)
    table.add_row("model cache", str(settings.home))
    table.add_row("cache disk", _free_disk(settings.home))
    table.add_row("default model", settings.model)
    for dist, purpose in OPTIONAL_PIECES:
        version = _version_of(dist)
        status = f"{version}  [dim]{purpose}[/]" if version else f"[yellow]missing[/]  [dim]{purpose}[/]"
        table.add_row(dist, status)
    out.print(table)
