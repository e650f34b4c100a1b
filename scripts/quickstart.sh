#!/usr/bin/env bash
# From a fresh clone to speech, with nothing but Python 3.10+:
#   1. a virtualenv in .venv (an active virtualenv that already has torch and indextts2 is used as is);
#   2. torch: the CPU wheel (torch==2.13.0 from PyTorch's CPU index) unless an NVIDIA GPU answers
#      nvidia-smi, then the default wheel from PyPI, which brings its CUDA libraries (~3 GB);
#   3. indextts2 from this checkout;
#   4. one sentence spoken on dummy:tiny (random weights: noise, no download) in the sample voice,
#      written to hello.wav in the current directory.
# Usage: bash scripts/quickstart.sh ["text to speak"]
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
TORCH_PIN="torch==2.13.0"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
TEXT="${1:-你好，世界。Hello!}"

say() { printf '==> %s\n' "$*" >&2; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    echo "indextts2 needs Python 3.10 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1)." >&2
    echo "Run with another one: PYTHON=python3.11 bash scripts/quickstart.sh" >&2
    exit 1
fi

if [ -z "${VIRTUAL_ENV:-}" ]; then
    if [ ! -x "$ROOT/.venv/bin/python" ]; then
        say "virtualenv in $ROOT/.venv"
        "$PYTHON" -m venv "$ROOT/.venv"
    fi
    # shellcheck disable=SC1091
    . "$ROOT/.venv/bin/activate"
fi

if ! python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        say "torch for NVIDIA GPUs (PyPI's default wheel, with its CUDA libraries)"
        python -m pip install -q "$TORCH_PIN"
    else
        say "torch, CPU-only wheel (no NVIDIA GPU answered nvidia-smi)"
        python -m pip install -q "$TORCH_PIN" --index-url "$TORCH_CPU_INDEX"
    fi
fi

if ! python -c "import indextts2" 2>/dev/null; then
    say "indextts2 from $ROOT"
    python -m pip install -q -e "$ROOT"
fi

say "speaking on dummy:tiny (random weights: the audio is noise; the pipeline is real)"
indextts2 say "$TEXT" --model dummy:tiny -o hello.wav
