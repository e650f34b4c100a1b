# indextts2 speech server for a GPU host (see docs/deploy.md and compose.yaml).
#   docker compose build && docker compose run --rm indextts2 keys add me && docker compose up -d
# A first `docker compose up` without a key says in its log how to create one (docker/entrypoint.sh).
# The torch wheel from PyPI brings its own CUDA libraries; the host needs the NVIDIA driver and the
# NVIDIA container toolkit. Model weights are downloaded into the /data volume on first start.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INDEXTTS2_HOME=/data

RUN useradd --create-home --uid 1000 indextts2 \
    && mkdir -p /data && chown indextts2:indextts2 /data

WORKDIR /app
# torch first: the largest layer, and the one that changes least. PyPI's default Linux wheel is the
# CUDA build; a CPU-only image: --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://pypi.org/simple"
RUN pip install "$TORCH_SPEC" --index-url "$TORCH_INDEX"

COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install .
COPY --chmod=755 docker/entrypoint.sh /usr/local/bin/indextts2-entrypoint

USER indextts2
VOLUME ["/data"]
EXPOSE 7860
STOPSIGNAL SIGTERM
# Liveness only: the model may take minutes to download and load; /readyz tells when it serves.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/healthz', timeout=4)"

ENTRYPOINT ["indextts2-entrypoint"]
CMD ["--host", "0.0.0.0", "--device", "cuda", "--api-keys-file", "/data/api-keys"]
