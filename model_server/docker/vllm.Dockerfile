# syntax=docker/dockerfile:1
# vLLM's OpenAI-compatible server, with its usage statistics off and no downloads.
#   docker build -f model_server/docker/vllm.Dockerfile \
#     --build-arg BASE_IMAGE=vllm/vllm-openai:<tag> -t charla/vllm:local .
ARG BASE_IMAGE=vllm/vllm-openai:latest
FROM ${BASE_IMAGE}
ENV VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1
