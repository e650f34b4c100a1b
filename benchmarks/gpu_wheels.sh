#!/usr/bin/env bash
# Gather, here, the wheels the GPU machine lacks for an in-process `indextts2 bench`.
#
#   bash benchmarks/gpu_wheels.sh [DIR] [PYTHON_VERSION]     (defaults: .whl 3.12)
#
# The device image has torch, numpy, transformers, huggingface_hub, typer, rich, safetensors,
# pyyaml, sentencepiece, httpx and prometheus-client; these are the rest (audio I/O, the text
# front end's wetext and its dependencies, the cache directory). No litestar: the in-process bench
# does not start the server. Pinned so that a run is reproducible; ~9 MB. .whl/ is in .gitignore
# (the device tool carries ignored paths named in its carry list).
set -euo pipefail
dir=${1:-.whl}
python_version=${2:-3.12}
wheels=(
  soundfile==0.14.0 cffi==2.1.1 pycparser==3.12
  soxr==1.1.0
  platformdirs==4.14.8
  wetext==0.1.8 kaldifst==1.8.3 contractions==0.1.73 textsearch==0.0.24 anyascii==0.3.3
  pyahocorasick==2.3.1
)
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
  manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done
mkdir -p "$dir"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" \
  --implementation cp "${platforms[@]}" -d "$dir" "${wheels[@]}"
du -sh "$dir"
