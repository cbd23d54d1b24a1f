# syntax=docker/dockerfile:1
# The model server gateway: this repository's model_server package, started with
# `python -m model_server`. It checks the functions' service tokens and rate limits, then
# forwards to the engines on 127.0.0.1 (see compose.yaml). Build from the repository root:
#   docker build -f model_server/docker/gateway.Dockerfile -t charla/gateway:local .
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY functions ./functions
COPY model_server ./model_server
COPY charla ./charla
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/charla --create-home charla
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels charla \
    && rm -rf /wheels
USER charla
WORKDIR /var/lib/charla
# The engines run beside it and are reached over loopback; HF_HUB_OFFLINE is not set here
# because huggingface_hub's offline mode would refuse those loopback calls too.
ENV PYTHONUNBUFFERED=1 \
    CHARLA_HOME=/var/lib/charla \
    CHARLA_MODEL_SERVER_HOST=0.0.0.0 \
    MODEL_SERVER_PORT=8001 \
    CHARLA_ENGINE=openai \
    CHARLA_ENGINE_URL=http://127.0.0.1:8080 \
    CHARLA_EMBEDDINGS=upstream \
    CHARLA_EMBEDDINGS_URL=http://127.0.0.1:8082 \
    HF_HUB_DISABLE_TELEMETRY=1
EXPOSE 8001
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MODEL_SERVER_PORT', '8001'), timeout=4)"]
ENTRYPOINT ["python", "-m", "model_server"]
