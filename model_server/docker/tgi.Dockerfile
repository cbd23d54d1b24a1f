# syntax=docker/dockerfile:1
# Text Generation Inference, kept for deployments that use it (in maintenance mode since
# December 2025). It sends anonymous usage statistics unless told not to: USAGE_STATS=off here,
# and --usage-stats=off on compose.yaml's command line.
#   docker build -f model_server/docker/tgi.Dockerfile \
#     --build-arg BASE_IMAGE=ghcr.io/huggingface/text-generation-inference:3.3.6 -t charla/tgi:local .
ARG BASE_IMAGE=ghcr.io/huggingface/text-generation-inference:3.3.6
FROM ${BASE_IMAGE}
ENV USAGE_STATS=off \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1
CMD ["--hostname", "127.0.0.1", "--port", "8080", "--usage-stats", "off"]
