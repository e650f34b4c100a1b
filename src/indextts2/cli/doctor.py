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
from rich.markup import escape
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


def _model_rows(home: Path) -> list[tuple[str, str]]:
    """Each known model: not cached, complete, or which files are missing (the store's own view)."""
    from indextts2.errors import IndexTTS2Error
    from indextts2.store import MODELS
    from indextts2.store.inventory import list_models

    try:
        report = list_models(cache_dir=home)
    except (IndexTTS2Error, OSError) as exc:
        return [("models", f"[red]cannot read the cache[/] ({escape(str(exc))})")]
    rows = []
    for model_id in MODELS:
        revisions = [r for r in report.revisions if r.model_id == model_id]
        if not revisions:
            status = "[yellow]not cached[/]  [dim]indextts2 models download --accept-license[/]"
        else:
            parts = []
            for revision in revisions:
                name = f"{'/'.join(revision.refs) or 'commit'} {revision.commit[:8]}, {_gib(revision.size)}"
                if revision.missing:
                    shown = ", ".join(revision.missing[:3]) + (", ..." if len(revision.missing) > 3 else "")
                    parts.append(
                        f"[yellow]incomplete[/] ({name}): {len(revision.missing)} file(s) missing: "
                        f"{escape(shown)}  [dim]indextts2 models download resumes[/]"
                    )
                else:
                    parts.append(f"[green]complete[/] ({name})")
            status = "; ".join(parts)
        rows.append((f"model {model_id}", status))
    dummy = "[green]always available[/]  [dim]random weights: noise[/]"
    rows.append(("model dummy:tiny / dummy:full", dummy))
    return rows


def _checkout() -> Path | None:
    """The source checkout this indextts2 runs from (an editable install), if it is one."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "indextts2").is_dir() else None


def _goldens_row(settings: Settings) -> tuple[str, str]:
    checkout = _checkout()
    path = settings.goldens or (checkout.parent / "shared" / "goldens" if checkout else None)
    hint = "[dim]set INDEXTTS2_GOLDENS; the parity checks and many tests compare against them[/]"
    if path is None:
        return ("goldens", f"[yellow]not found[/]  {hint}")
    if not (path / "checkpoint").is_dir():
        return ("goldens", f"[yellow]missing[/] at {escape(str(path))}  {hint}")
    return ("goldens", f"{escape(str(path))}  [dim]python -m indextts2.parity {escape(str(path))}[/]")


def _chromium_row(settings: Settings) -> tuple[str, str]:
    found = str(settings.chromium) if settings.chromium else shutil.which("chromium")
    purpose = "[dim]the web page tests drive it headless[/]"
    if found and Path(found).is_file():
        return ("chromium", f"{escape(found)}  {purpose}")
    missing = "[yellow]missing[/] (apt-get install chromium, or set INDEXTTS2_CHROMIUM)"
    return ("chromium", f"{missing}  {purpose}")


def doctor(
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Model cache to inspect (default: INDEXTTS2_HOME).")
    ] = None,
) -> None:
    """What this machine has: Python, torch, GPU and its free memory, cached models (complete or what
    is missing), free disk where the cache lives, and the optional pieces (Chromium for the browser
    tests, the goldens for parity)."""
    settings = Settings.from_env().with_overrides(home=cache_dir)
    table = Table(title="indextts2 doctor", show_header=True)
    table.add_column("check", style="bold")
    table.add_column("status")
    table.add_row("indextts2", __version__)
    table.add_row("Python", f"{platform.python_version()} ({sys.executable})")
    table.add_row("platform", platform.platform())
    for name, status in _torch_rows():
        table.add_row(name, status)
    table.add_row("model cache", escape(str(settings.home)))
    table.add_row("cache disk", _free_disk(settings.home))
    table.add_row("default model", escape(settings.model))
    for name, status in _model_rows(settings.home):
        table.add_row(name, status)
    for dist, purpose in OPTIONAL_PIECES:
        version = _version_of(dist)
        status = f"{version}  [dim]{purpose}[/]" if version else f"[yellow]missing[/]  [dim]{purpose}[/]"
        table.add_row(dist, status)
    for name, status in (_chromium_row(settings), _goldens_row(settings)):
        table.add_row(name, status)
    out.print(table)
