# syntax=docker/dockerfile:1
# llama.cpp's CUDA server, the default chat engine (and optionally the embeddings server).
# The upstream image as it is, with safe defaults: loopback only, no downloads. compose.yaml
# passes the full command line. Pin the tag you tested:
#   docker build -f model_server/docker/llama-cpp.Dockerfile \
#     --build-arg BASE_IMAGE=ghcr.io/ggml-org/llama.cpp:server-cuda -t charla/llama-cpp:local .
ARG BASE_IMAGE=ghcr.io/ggml-org/llama.cpp:server-cuda
FROM ${BASE_IMAGE}
# llama-server reads its flags from LLAMA_ARG_* too; these hold when no flag is given.
ENV LLAMA_ARG_HOST=127.0.0.1 \
    LLAMA_ARG_PORT=8080 \
    LLAMA_ARG_N_GPU_LAYERS=999 \
    LLAMA_ARG_ENDPOINT_METRICS=1 \
    HF_HUB_OFFLINE=1 \
    DO_NOT_TRACK=1
