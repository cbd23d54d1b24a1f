variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "subnet_ids" {
  description = "Isolated subnets the GPU hosts run in."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the GPU hosts."
  type        = string
}

variable "target_group_arn" {
  description = "Load balancer target group the hosts register in."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for the volumes, the model files, the images and the logs."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the app secret and DATABASE_URL: denied to the hosts."
  type        = string
}

variable "denied_parameter_arns" {
  description = "The deployment's SSM parameters (DATABASE_URL): denied to the hosts, whose SSM managed policy would otherwise allow reading them."
  type        = list(string)
}

variable "instance_type" {
  description = "GPU instance type."
  type        = string
}

variable "ami_id" {
  description = "AMI of the hosts, pinned (a Deep Learning Base OSS Nvidia Driver GPU AMI or one with the same tools)."
  type        = string
}

variable "size" {
  description = "Auto scaling group size."
  type = object({
    min     = number
    max     = number
    desired = number
  })
}

variable "volume_size_gb" {
  description = "Root volume size in GiB."
  type        = number
}

variable "gateway_port" {
  description = "Port the gateway publishes on each host."
  type        = number

  validation {
    condition     = var.gateway_port >= 1 && var.gateway_port <= 65535
    error_message = "gateway_port must be from 1 to 65535."
  }
}

variable "models_bucket" {
  description = "Bucket whose models/ prefix is copied to the host at boot."
  type        = string
}

variable "models_bucket_arn" {
  description = "ARN of the models bucket."
  type        = string
}

variable "registry" {
  description = "ECR registry host the images come from."
  type        = string
}

variable "images" {
  description = "Full image reference (repository URL and tag) of each container, by key: gateway, llama-cpp, vllm, tgi, tei."
  type        = map(string)
}

variable "repository_arns" {
  description = "ECR repositories the hosts may pull from."
  type        = list(string)
}

variable "engine" {
  description = "Chat engine profile: llama-cpp, vllm or tgi."
  type        = string
}

variable "embeddings_engine" {
  description = "Embeddings profile: tei or llama-cpp."
  type        = string
}

variable "chat_model_path" {
  description = "Chat model path under models/."
  type        = string
}

variable "embedding_model_path" {
  description = "Embedding model path under models/."
  type        = string
}

variable "model_name" {
  description = "Served name of the chat model."
  type        = string
}

variable "engine_parallel" {
  description = "Chats served at once."
  type        = number
}

variable "engine_ctx_size" {
  description = "Engine context in tokens, shared among the parallel chats."
  type        = number
}

variable "service_public_key_pem" {
  description = "Ed25519 public key (PEM) that checks the functions' service tokens."
  type        = string
}

variable "compose_file" {
  description = "Text of the docker compose file the hosts run (model_server/docker/compose.yaml)."
  type        = string
}

variable "log_retention_days" {
  description = "Days to keep the containers' logs."
  type        = number
}
