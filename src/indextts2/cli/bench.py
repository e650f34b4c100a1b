"""``indextts2 bench``: throughput, real-time factor and time to first audio under N concurrent clients."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from indextts2.cli._console import err, out
from indextts2.errors import InvalidInput

__all__ = ["bench"]

_MIB = 2**20


def _concurrency(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidInput(f"--concurrency takes client counts like 1,4,16,64, got {text!r}") from None
    if not levels or any(level < 1 for level in levels):
        raise InvalidInput(f"--concurrency takes client counts >= 1, got {text!r}")
    return levels


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _table(report: Any) -> Table:
    table = Table(title=f"indextts2 bench: {report.meta.get('model', '')} on {report.meta.get('device', '')}")
    for column in (
        "clients",
        "requests",
        "audio s/s",
        "speed-up",
        "RTF p50",
        "RTF p95",
        "first audio p50 ms",
        "p95 ms",
        "p99 ms",
        "peak GPU MiB",
    ):
        table.add_column(column, justify="right")
    rows = [(str(level.concurrency), level) for level in report.levels]
    if report.baseline is not None:
        rows.append(("sequential", report.baseline))
    for name, level in rows:
        speedup = report.speedup(level) if level is not report.baseline else None
        table.add_row(
            name,
            f"{level.requests}" + (f" ({level.failed} failed)" if level.failed else ""),
            f"{level.throughput:.2f}",
            "-" if speedup is None else f"{speedup:.1f}x",
            "-" if level.rtf_p50 is None else f"{level.rtf_p50:.3f}",
            "-" if level.rtf_p95 is None else f"{level.rtf_p95:.3f}",
            _ms(level.first_audio_p50),
            _ms(level.first_audio_p95),
            _ms(level.first_audio_p99),
            "-" if level.peak_gpu_bytes is None else f"{level.peak_gpu_bytes / _MIB:.0f}",
        )
    return table


def bench(
    model: Annotated[
        str | None,
        typer.Option(
            help="Model id, directory, or dummy:tiny / dummy:full (-2.5 for IndexTTS-2.5). Default: "
            "dummy:full on a GPU, dummy:tiny on a CPU. With --server: which of the server's models "
            "(/v1/models).",
            show_default=False,
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    dtype: Annotated[str | None, typer.Option(help="GPT precision: fp16 (CUDA default), bf16, fp32.")] = None,
    concurrency: Annotated[
        str | None,
        typer.Option(
            help="Client counts to run, comma-separated. Default: 1,4,16,64 on a GPU or a server, "
            "1,4 on a CPU.",
            show_default=False,
        ),
    ] = None,
    requests_per_client: Annotated[
        int, typer.Option(help="Requests each client sends in turn (4: every text once).")
    ] = 4,
    diffusion_steps: Annotated[
        int | None,
        typer.Option(
            help="Flow-matching steps per request. Default: 25 on a GPU, 10 on a CPU.", show_default=False
        ),
    ] = None,
    beams: Annotated[int, typer.Option(help="num_beams of every request.")] = 1,
    codes_per_second: Annotated[
        float | None,
        typer.Option(
            help="Forced codes per second of intended speech (random weights never stop); "
            "default: the model's code rate (50 for IndexTTS-2, 25 for IndexTTS-2.5)."
        ),
    ] = None,
    force_codes: Annotated[
        bool | None, typer.Option(help="Decode exactly the intended codes (default: for dummy models).")
    ] = None,
    stream: Annotated[bool, typer.Option(help="Read streams: first audio = the first chunk.")] = True,
    low_latency: Annotated[bool, typer.Option(help="Quick first segment and chunked rendering.")] = True,
    baseline: Annotated[
        str, typer.Option(help="'sequential': also run the mix one request at a time, unbatched.")
    ] = "none",
    server: Annotated[
        str | None, typer.Option(help="Benchmark a running server at this URL instead.")
    ] = None,
    api_key: Annotated[str | None, typer.Option(help="API key for --server.")] = None,
    kv_rows: Annotated[int | None, typer.Option(help="KV-cache rows (default: clients x beams).")] = None,
    kv_memory_fraction: Annotated[float, typer.Option(help="Free GPU memory for the KV pool.")] = 0.5,
    cuda_graphs: Annotated[bool, typer.Option(help="Capture the decode step in CUDA graphs.")] = True,
    compile_dit: Annotated[
        bool, typer.Option(help="torch.compile the DiT (experimental; the warm-up request waits for it).")
    ] = False,
    profile: Annotated[bool, typer.Option(help="Time every stage (synchronises after each).")] = False,
    target_first_audio_p95: Annotated[
        float,
        typer.Option(
            help="Seconds: the report states how many clients per GPU kept first audio p95 within it."
        ),
    ] = 1.5,
    gpus: Annotated[
        int, typer.Option(help="GPUs behind --server (its engines or replicas), for clients per GPU.")
    ] = 1,
    json_path: Annotated[
        str | None, typer.Option("--json", help="Write the report as JSON to this file ('-': stdout).")
    ] = None,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write the report as Markdown tables to this file.")
    ] = None,
) -> None:
    """Measure the engine: N concurrent clients, fixed Chinese and English texts, short and long.

    Reports aggregate audio-seconds per second, per-request real-time factor,
    time to first audio and peak GPU memory per concurrency level;
    --baseline sequential adds the same work done one request at a time
    without batching, and the speed-up over it.

    [bold]Examples[/bold]

      indextts2 bench                                        defaults fit the device (said on stderr)
      indextts2 bench --model dummy:full --device cuda --baseline sequential --json bench.json
      indextts2 bench --model dummy:full --concurrency 1,64 --profile     where the time goes
      indextts2 bench --model dummy:tiny --device cpu --concurrency 1,4 --diffusion-steps 4
      indextts2 bench --server http://gpu-box:7860 --api-key K --concurrency 1,16
      indextts2 bench --server http://lb:80 --gpus 4 --target-first-audio-p95 1.0 --json cap.json

    The report states the clients one GPU served within --target-first-audio-p95
    (docs/deploy.md turns it into a number of GPUs).

    Random (dummy) weights never choose to stop, so each text decodes exactly
    --codes-per-second codes per second of its intended speech: runs compare.
    """
    from indextts2.engine.bench import BenchSettings, LevelReport, capacity

    if baseline not in ("none", "sequential"):
        raise InvalidInput(f"--baseline is 'none' or 'sequential', got {baseline!r}")
    if server is None:
        chosen = _local_defaults(device, model, concurrency, diffusion_steps)
        forced = chosen.model.startswith("dummy:") if force_codes is None else force_codes
    else:
        chosen = _Defaults(
            "", concurrency or GPU_DEFAULTS.concurrency, diffusion_steps or GPU_DEFAULTS.diffusion_steps
        )
        # the server's model is not known here: cap every request at its intended codes
        forced = True if force_codes is None else force_codes
    settings = BenchSettings(
        concurrency=_concurrency(chosen.concurrency),
        requests_per_client=requests_per_client,
        diffusion_steps=chosen.diffusion_steps,
        num_beams=beams,
        codes_per_second=codes_per_second,
        force_codes=forced,
        stream=stream,
        low_latency=low_latency,
    )
    meta: dict[str, Any] = {"command": shlex.join(["indextts2", "bench", *sys.argv[2:]])}

    def progress(level: LevelReport) -> None:
        err.print(
            f"{level.concurrency} client(s): {level.requests} requests, {level.throughput:.2f} audio s/s, "
            f"first audio p50 {_ms(level.first_audio_p50)} ms",
            highlight=False,
        )

    if server is not None:
        from indextts2.engine.bench_http import run_over_http

        if baseline != "none":
            raise InvalidInput("--baseline sequential runs in-process; leave out --server to use it")
        report = run_over_http(server, settings, api_key=api_key, meta=meta, on_level=progress, model=model)
    else:
        report = _run_local(
            settings,
            model=chosen.model,
            device=device,
            dtype=dtype,
            sequential=baseline == "sequential",
            kv_rows=kv_rows,
            kv_memory_fraction=kv_memory_fraction,
            cuda_graphs=cuda_graphs,
            compile_dit=compile_dit,
            profile=profile,
            meta=meta,
            progress=progress,
        )
    if server is None and gpus != 1:
        raise InvalidInput("--gpus is for --server; an in-process run measures one device")
    planned = capacity(report, target_first_audio_p95, gpus=gpus)
    out.print(_table(report))
    err.print(_capacity_line(planned), highlight=False)
    if markdown_path is not None:
        from indextts2.engine.bench import markdown

        markdown_path.write_text(markdown(report), encoding="utf-8")
    if json_path is not None:
        data = json.dumps({**report.to_json(), "capacity": planned}, indent=2, ensure_ascii=False)
        if json_path == "-":
            out.print_json(data)
        else:
            Path(json_path).write_text(data + "\n", encoding="utf-8")
            err.print(f"report written to {json_path}")


def _capacity_line(planned: dict[str, Any]) -> str:
    target = f"first audio p95 <= {planned['target_first_audio_p95'] * 1000:.0f} ms"
    if planned["limited_by"] == "none":
        return f"capacity: no measured level kept {target}; try fewer clients or a faster setup"
    more = " (the largest level run: there may be room for more)" if planned["limited_by"] == "levels" else ""
    return (
        f"capacity: {planned['clients_per_gpu']:g} concurrent clients per GPU with {target}, "
        f"measured at {planned['measured_at']} client(s){more}"
    )


@dataclass(frozen=True)
class _Defaults:
    model: str
    concurrency: str
    diffusion_steps: int


# A GPU runs the release-sized dummy at server-like concurrency; a CPU gets a run that ends in minutes.
GPU_DEFAULTS = _Defaults("dummy:full", "1,4,16,64", 25)
CPU_DEFAULTS = _Defaults("dummy:tiny", "1,4", 10)


def _local_defaults(device: str, model: str | None, concurrency: str | None, steps: int | None) -> _Defaults:
    """The flags left out, filled in for the device the run will use; says so on stderr."""
    from indextts2.synthesizer import resolve_device

    on_gpu = resolve_device(device).type == "cuda"
    defaults = GPU_DEFAULTS if on_gpu else CPU_DEFAULTS
    chosen = []
    if model is None:
        model = defaults.model
        chosen.append(f"--model {model}")
    if concurrency is None:
        concurrency = defaults.concurrency
        chosen.append(f"--concurrency {concurrency}")
    if steps is None:
        steps = defaults.diffusion_steps
        chosen.append(f"--diffusion-steps {steps}")
    if chosen:
        where = "a GPU" if on_gpu else "the CPU (no GPU here)" if device == "auto" else "the CPU"
        err.print(f"running on {where}: {' '.join(chosen)} (give them to choose)", highlight=False)
    return _Defaults(model, concurrency, steps)


def _run_local(
    settings: Any,
    *,
    model: str,
    device: str,
    dtype: str | None,
    sequential: bool,
    kv_rows: int | None,
    kv_memory_fraction: float,
    cuda_graphs: bool,
    compile_dit: bool,
    profile: bool,
    meta: dict[str, Any],
    progress: Any,
) -> Any:
    from indextts2 import Synthesizer
    from indextts2.engine import EngineConfig
    from indextts2.engine.bench import SEGMENT_TOKENS, run_in_process
    from indextts2.engine.scheduler import PROMPT_OVERHEAD
    from indextts2.loader import family_of

    settings = settings.with_code_rate(family_of(model).code_rate)
    clients = max(settings.concurrency)
    longest = max(settings.codes_for(text) for text in settings.texts) if settings.force_codes else None
    engine = EngineConfig(
        max_active=clients,
        max_queue=clients,
        kv_rows=kv_rows if kv_rows is not None else clients * settings.num_beams,
        kv_memory_fraction=kv_memory_fraction,
        max_positions=None if longest is None else SEGMENT_TOKENS + PROMPT_OVERHEAD + longest,
        cuda_graphs=cuda_graphs,
        compile_dit=compile_dit,
        profile=profile,
    )
    with Synthesizer.from_pretrained(model, device=device, dtype=dtype, engine=engine) as tts:
        baseline = None
        if sequential:
            baseline = tts.without_engine()
        meta = {
            **meta,
            "model": tts.model_id,
            "gpt_dtype": str(tts.model.gpt_dtype).removeprefix("torch."),
            "engine": {
                "kv_rows": engine.kv_rows,
                "max_positions": engine.max_positions,
                "cuda_graphs": cuda_graphs and tts.device.type == "cuda",
                "compile_dit": compile_dit,
            },
        }
        return run_in_process(tts, settings, baseline=baseline, meta=meta, on_level=progress)
