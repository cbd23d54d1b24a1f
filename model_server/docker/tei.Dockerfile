# syntax=docker/dockerfile:1
# Text Embeddings Inference (the CPU image by default) for the knowledge base's embeddings:
# multilingual-e5-small, 384 dimensions, the same model the local stack uses.
#   docker build -f model_server/docker/tei.Dockerfile \
#     --build-arg BASE_IMAGE=ghcr.io/huggingface/text-embeddings-inference:cpu-1.8 -t charla/tei:local .
ARG BASE_IMAGE=ghcr.io/huggingface/text-embeddings-inference:cpu-1.8
FROM ${BASE_IMAGE}
ENV HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    DO_NOT_TRACK=1
CMD ["--hostname", "127.0.0.1", "--port", "8082"]
