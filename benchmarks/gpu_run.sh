#!/usr/bin/env bash
# The engine's GPU benchmark (issue 10), in parts that each fit one 10-minute device call.
#
#   bash benchmarks/gpu_run.sh OUTDIR [PART ...]
#
# PART (default: sweep profile):
#   sweep    dummy:full, fp16 GPT, 1/4/16/64 clients, with the sequential baseline (the headline table)
#   profile  1 and 64 clients with per-stage timing (where the time goes)
#   eager    1 and 64 clients without CUDA graphs (what graph capture buys)
#   compile  1 and 64 clients with the DiT under torch.compile (experimental)
#   stream   chunked streaming's log-mel error against whole segments, 500 codes
#   steps    one decode step per row count: eager, graph-replayed, and without the forward
#
# Each part writes OUTDIR/PART.md (the tables for docs/benchmarks.md), OUTDIR/PART.json where the
# bench writes one, and OUTDIR/PART.log. Run from the repository root. Wheels the machine lacks
# (benchmarks/gpu_wheels.sh gathers them into .whl) are installed first when .whl exists.
#
# On the device tool: carry [".whl"] and run e.g.
#   bash benchmarks/gpu_run.sh $OUT sweep
#
# PYTHON, WHEELS (.whl), MODEL, DEVICE, DTYPE, SWEEP (client counts), PAIR (the other parts'
# counts), CODES (stream), ROWS (steps) and BENCH_ARGS (more bench options) override the
# defaults; a quick dry run on a CPU (tests/test_gpu_run_script.py takes one):
#   MODEL=dummy:tiny DEVICE=cpu DTYPE=fp32 SWEEP=1,2 PAIR=1,2 CODES=40 ROWS="1 2" \
#     BENCH_ARGS="--diffusion-steps 2 --requests-per-client 1" bash benchmarks/gpu_run.sh /tmp/run sweep steps
set -euo pipefail
out=${1:?usage: gpu_run.sh OUTDIR [sweep|profile|eager|compile|stream|steps ...]}
shift
parts=("$@")
[[ ${#parts[@]} -gt 0 ]] || parts=(sweep profile)
for part in "${parts[@]}"; do
  case $part in
    sweep | profile | eager | compile | stream | steps) ;;
    *) echo "unknown part: $part (sweep, profile, eager, compile, stream, steps)" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
python=${PYTHON:-python3}

wheels=${WHEELS:-.whl}
if [[ -d $wheels ]]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 COLUMNS=${COLUMNS:-160}  # wide tables in the logs
{
  date -u +"%Y-%m-%d %H:%M UTC"
  git rev-parse --short HEAD 2>/dev/null || true
  nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
  "$python" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
} | tee "$out/machine.txt"

model=${MODEL:-dummy:full} device=${DEVICE:-cuda} sweep=${SWEEP:-1,4,16,64} pair=${PAIR:-1,64}
# shellcheck disable=SC2206 # BENCH_ARGS is split into words on purpose
bench=("$python" -m indextts2 bench --model "$model" --device "$device" --dtype "${DTYPE:-fp16}" ${BENCH_ARGS:-})
for part in "${parts[@]}"; do
  echo "== $part" >&2
  case $part in
    sweep) "${bench[@]}" --concurrency "$sweep" --baseline sequential \
             --json "$out/sweep.json" --markdown "$out/sweep.md" ;;
    profile) "${bench[@]}" --concurrency "$pair" --profile --json "$out/profile.json" --markdown "$out/profile.md" ;;
    eager) "${bench[@]}" --concurrency "$pair" --no-cuda-graphs --profile \
             --json "$out/eager.json" --markdown "$out/eager.md" ;;
    compile) "${bench[@]}" --concurrency "$pair" --compile-dit --profile \
               --json "$out/compile.json" --markdown "$out/compile.md" ;;
    stream) "$python" benchmarks/chunked_streaming_error.py --model "$model" --device "$device" \
              --codes "${CODES:-500}" >"$out/stream.md" ;;
    # shellcheck disable=SC2086 # ROWS is a list of numbers
    steps) "$python" benchmarks/decode_step.py --model "$model" --device "$device" --dtype "${DTYPE:-fp16}" \
             --rows ${ROWS:-1 4 16 64} >"$out/steps.md" ;;
  esac 2>&1 | tee "$out/$part.log"
done
