# Inputs of the Charla deployment. Every CIDR and port is validated here, so a typo fails at
# plan time rather than as an unreachable host.

# --- Naming and region -------------------------------------------------------------------------

variable "name" {
  description = "Prefix for every resource's name (lowercase letters, digits and hyphens)."
  type        = string
  default     = "charla"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 characters: lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "aws_region" {
  description = "AWS region to deploy into (one with the GPU instance type you choose)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like us-east-1."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "create_autoscaling_service_linked_role" {
  description = "Create EC2 Auto Scaling's service-linked role AWSServiceRoleForAutoScaling, which the KMS key policy names (a key policy cannot name a role that does not exist yet). Set false if the account already has it (aws iam get-role --role-name AWSServiceRoleForAutoScaling succeeds): creating it twice fails."
  type        = bool
  default     = true
}

# --- Network -----------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be an IPv4 CIDR block of /24 or larger, e.g. 10.40.0.0/16."
  }
}

variable "availability_zones" {
  description = "Availability zones to use, named in full; one private, worker and public subnet in each, in this order. Pinned so the network never moves when AWS adds a zone."
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b"]

  validation {
    condition     = length(var.availability_zones) >= 2 && alltrue([for z in var.availability_zones : startswith(z, var.aws_region)])
    error_message = "availability_zones needs at least two zones of aws_region, e.g. [\"us-east-1a\", \"us-east-1b\"]."
  }
}

variable "private_subnet_cidrs" {
  description = "One CIDR per availability zone for the isolated subnets (GPU hosts, load balancer, database, webhook functions, VPC endpoints): no route to the internet."
  type        = list(string)
  default     = ["10.40.0.0/20", "10.40.16.0/20"]

  validation {
    condition     = length(var.private_subnet_cidrs) == length(var.availability_zones) && alltrue([for c in var.private_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "private_subnet_cidrs needs one valid IPv4 CIDR block per availability zone."
  }
}

variable "worker_subnet_cidrs" {
  description = "One CIDR per availability zone for the worker function's subnets, the only ones routed to the NAT gateway (replies to Slack, Telegram and Discord)."
  type        = list(string)
  default     = ["10.40.32.0/22", "10.40.36.0/22"]

  validation {
    condition     = length(var.worker_subnet_cidrs) == length(var.availability_zones) && alltrue([for c in var.worker_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "worker_subnet_cidrs needs one valid IPv4 CIDR block per availability zone."
  }
}

variable "public_subnet_cidrs" {
  description = "One CIDR per availability zone for the public subnets that hold only the NAT gateway(s)."
  type        = list(string)
  default     = ["10.40.48.0/26", "10.40.48.64/26"]

  validation {
    condition     = length(var.public_subnet_cidrs) == length(var.availability_zones) && alltrue([for c in var.public_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "public_subnet_cidrs needs one valid IPv4 CIDR block per availability zone."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per availability zone (survives a zone outage, costs one NAT per zone) instead of one shared NAT gateway."
  type        = bool
  default     = false
}

variable "gateway_port" {
  description = "Port of the model server gateway on the GPU hosts and on the internal load balancer (MODEL_SERVER_PORT)."
  type        = number
  default     = 8001

  validation {
    condition     = var.gateway_port >= 1024 && var.gateway_port <= 65535 && floor(var.gateway_port) == var.gateway_port
    error_message = "gateway_port must be a whole number from 1024 to 65535."
  }
}

variable "database_port" {
  description = "Port PostgreSQL listens on."
  type        = number
  default     = 5432

  validation {
    condition     = var.database_port >= 1150 && var.database_port <= 65535 && floor(var.database_port) == var.database_port
    error_message = "database_port must be a whole number from 1150 to 65535 (RDS's allowed range)."
  }
}

# --- GPU hosts ---------------------------------------------------------------------------------

variable "gpu_instance_type" {
  description = "EC2 instance type of the GPU hosts (a G or P family type, e.g. g6.xlarge with one L4)."
  type        = string
  default     = "g6.xlarge"

  validation {
    condition     = can(regex("^(g[4-9][a-z]*|p[3-9][a-z]*)\\.[0-9]*x?large$", var.gpu_instance_type))
    error_message = "gpu_instance_type must be a G or P family instance type such as g6.xlarge or g5.2xlarge."
  }
}

# Pinned, not "latest": a launch template that read the newest image on every plan would roll
# every host whenever AWS released one. Changing this is the upgrade (README: "AMI").
variable "gpu_ami_id" {
  description = "AMI of the GPU hosts, in aws_region: e.g. the AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04), which has the driver, Docker, the NVIDIA container toolkit, the AWS CLI and the SSM agent. Its id for your region: aws ssm get-parameter --name /aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id --query Parameter.Value --output text."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.gpu_ami_id))
    error_message = "gpu_ami_id must be an AMI id such as ami-0123456789abcdef0."
  }
}

variable "gpu_hosts" {
  description = "Size of the GPU hosts' auto scaling group."
  type = object({
    min     = number
    max     = number
    desired = number
  })
  default = { min = 1, max = 2, desired = 1 }

  validation {
    condition     = var.gpu_hosts.min >= 0 && var.gpu_hosts.min <= var.gpu_hosts.desired && var.gpu_hosts.desired <= var.gpu_hosts.max && var.gpu_hosts.max <= 20
    error_message = "gpu_hosts needs 0 <= min <= desired <= max <= 20."
  }
}

variable "gpu_volume_size_gb" {
  description = "Size of each GPU host's encrypted root volume in GiB (images and the model copied from S3)."
  type        = number
  default     = 200

  validation {
    condition     = var.gpu_volume_size_gb >= 60 && var.gpu_volume_size_gb <= 4096
    error_message = "gpu_volume_size_gb must be from 60 to 4096."
  }
}

variable "engine" {
  description = "Chat engine on the GPU hosts: llama-cpp (llama.cpp's CUDA server, the default), vllm, or tgi (in maintenance mode; kept for existing deployments)."
  type        = string
  default     = "llama-cpp"

  validation {
    condition     = contains(["llama-cpp", "vllm", "tgi"], var.engine)
    error_message = "engine must be llama-cpp, vllm or tgi."
  }
}

variable "embeddings_engine" {
  description = "Embeddings server on the GPU hosts: tei (Text Embeddings Inference, CPU image) or llama-cpp (llama-server --embeddings)."
  type        = string
  default     = "tei"

  validation {
    condition     = contains(["tei", "llama-cpp"], var.embeddings_engine)
    error_message = "embeddings_engine must be tei or llama-cpp."
  }
}

variable "chat_model_path" {
  description = "The chat model under the models prefix of the artifacts bucket: a GGUF file for llama-cpp, a model folder for vllm and tgi."
  type        = string
  default     = "chat/model.gguf"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]+$", var.chat_model_path)) && !can(regex("\\.\\.", var.chat_model_path))
    error_message = "chat_model_path must be a relative path of letters, digits, '.', '_', '-' and '/', without '..'."
  }
}

variable "embedding_model_path" {
  description = "The embedding model under the models prefix: a model folder for tei, a GGUF file for llama-cpp. It must give 384-dimension vectors (multilingual-e5-small), like the knowledge base's index."
  type        = string
  default     = "embeddings/multilingual-e5-small"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]+$", var.embedding_model_path)) && !can(regex("\\.\\.", var.embedding_model_path))
    error_message = "embedding_model_path must be a relative path of letters, digits, '.', '_', '-' and '/', without '..'."
  }
}

variable "model_name" {
  description = "Name the gateway gives the chat model in /v1/models (CHARLA_MODEL_NAME)."
  type        = string
  default     = "charla-chat"
}

variable "engine_parallel" {
  description = "Chats the engine serves at once (CHARLA_ENGINE_PARALLEL; llama-server -np)."
  type        = number
  default     = 8

  validation {
    condition     = var.engine_parallel >= 1 && var.engine_parallel <= 256
    error_message = "engine_parallel must be from 1 to 256."
  }
}

variable "engine_ctx_size" {
  description = "Total context of the engine in tokens, shared among its parallel chats (CHARLA_ENGINE_CTX_SIZE)."
  type        = number
  default     = 32768

  validation {
    condition     = var.engine_ctx_size >= 2048
    error_message = "engine_ctx_size must be at least 2048."
  }
}

variable "image_tags" {
  description = "Tag of each image in this deployment's ECR repositories (ECR tags are immutable: push a new tag to upgrade). Keys: gateway, llama-cpp, vllm, tgi, tei."
  type        = map(string)
  default = {
    gateway   = "0.1.0"
    llama-cpp = "server-cuda"
    vllm      = "latest"
    tgi       = "3.3.6"
    tei       = "cpu-1.8"
  }

  validation {
    condition     = alltrue([for k in ["gateway", "llama-cpp", "vllm", "tgi", "tei"] : contains(keys(var.image_tags), k)])
    error_message = "image_tags needs the keys gateway, llama-cpp, vllm, tgi and tei."
  }
}

variable "service_public_key_pem" {
  description = "Ed25519 public key (PEM) with which the gateway checks the functions' service tokens (CHARLA_SERVICE_PUBLIC_KEY); its private half goes into the app secret as CHARLA_SERVICE_PRIVATE_KEY."
  type        = string

  validation {
    condition     = can(regex("-----BEGIN PUBLIC KEY-----", var.service_public_key_pem))
    error_message = "service_public_key_pem must be a PEM public key (-----BEGIN PUBLIC KEY-----)."
  }
}

# --- Functions and API -------------------------------------------------------------------------

variable "lambda_zip_paths" {
  description = "Zip of each function, as written by the packaging command; relative paths are taken from the repository root."
  type        = map(string)
  default = {
    slack    = "dist/lambda/slack.zip"
    telegram = "dist/lambda/telegram.zip"
    discord  = "dist/lambda/discord.zip"
    api      = "dist/lambda/api.zip"
    worker   = "dist/lambda/worker.zip"
  }

  validation {
    condition     = alltrue([for k in ["slack", "telegram", "discord", "api", "worker"] : contains(keys(var.lambda_zip_paths), k)])
    error_message = "lambda_zip_paths needs the keys slack, telegram, discord, api and worker."
  }
}

variable "lambda_runtime" {
  description = "Python runtime of the functions."
  type        = string
  default     = "python3.12"

  validation {
    condition     = contains(["python3.11", "python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.11, python3.12 or python3.13."
  }
}

variable "lambda_architecture" {
  description = "CPU architecture of the functions: must match the wheels in the zips."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.lambda_architecture)
    error_message = "lambda_architecture must be x86_64 or arm64."
  }
}

variable "lambda_reserved_concurrency" {
  description = "Most concurrent executions of each function (a cap on cost and on connections to Postgres)."
  type        = map(number)
  default = {
    slack    = 20
    telegram = 20
    discord  = 20
    api      = 20
    worker   = 10
  }

  validation {
    condition     = alltrue([for v in values(var.lambda_reserved_concurrency) : v >= 1 && v <= 1000])
    error_message = "each reserved concurrency must be from 1 to 1000."
  }
}

variable "worker_timeout_s" {
  description = "Timeout of the worker function in seconds: the longest a reply may take to write."
  type        = number
  default     = 180

  validation {
    condition     = var.worker_timeout_s >= 30 && var.worker_timeout_s <= 900
    error_message = "worker_timeout_s must be from 30 to 900."
  }
}

variable "queue_max_receive_count" {
  description = "Times a job is tried before SQS moves it to the dead-letter queue."
  type        = number
  default     = 5

  validation {
    condition     = var.queue_max_receive_count >= 1 && var.queue_max_receive_count <= 1000
    error_message = "queue_max_receive_count must be from 1 to 1000."
  }
}

variable "api_throttle" {
  description = "API Gateway stage throttling: steady requests per second and burst."
  type = object({
    rate_limit  = number
    burst_limit = number
  })
  default = { rate_limit = 50, burst_limit = 100 }

  validation {
    condition     = var.api_throttle.rate_limit > 0 && var.api_throttle.burst_limit >= 1
    error_message = "api_throttle needs rate_limit > 0 and burst_limit >= 1."
  }
}

variable "telegram_bot_username" {
  description = "The Telegram bot's @name (TELEGRAM_BOT_USERNAME): the webhook functions have no route to the internet to ask getMe; empty when Telegram is not used."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^@?[A-Za-z0-9_]{0,64}$", var.telegram_bot_username))
    error_message = "telegram_bot_username is a Telegram username: letters, digits and underscores."
  }
}

variable "discord_application_id" {
  description = "Discord application id (DISCORD_APPLICATION_ID); empty when Discord is not used."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[0-9]*$", var.discord_application_id))
    error_message = "discord_application_id must be digits only."
  }
}

variable "function_environment" {
  description = "Further plain (non-secret) settings for every function, e.g. CHARLA_SYSTEM_PROMPT or CHARLA_API_JWT_AUDIENCE. Secrets go in the app secret instead."
  type        = map(string)
  default     = {}
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the functions', API's and flow logs (logs carry ids and timings, never message text)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch's allowed values (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ...)."
  }
}

# --- Database ----------------------------------------------------------------------------------

variable "create_database" {
  description = "Create an RDS PostgreSQL instance (pgvector through CREATE EXTENSION vector). False: give database_url instead."
  type        = bool
  default     = true
}

variable "database_url" {
  description = "postgresql:// URL of an existing PostgreSQL with pgvector, used when create_database is false. Stored as an SSM SecureString parameter, never in the functions' environment."
  type        = string
  default     = null
  sensitive   = true

  validation {
    condition     = var.create_database || (var.database_url != null && can(regex("^postgres(ql)?://", coalesce(var.database_url, "-"))))
    error_message = "database_url (postgresql://...) is required when create_database is false."
  }
}

variable "database" {
  description = "The RDS instance, when create_database is true."
  type = object({
    engine_version        = string
    instance_class        = string
    allocated_storage_gb  = number
    max_storage_gb        = number
    multi_az              = bool
    backup_retention_days = number
    deletion_protection   = bool
  })
  default = {
    engine_version        = "17"
    instance_class        = "db.t4g.medium"
    allocated_storage_gb  = 50
    max_storage_gb        = 500
    multi_az              = true
    backup_retention_days = 14
    deletion_protection   = true
  }

  validation {
    condition     = can(regex("^(1[6-9])(\\.[0-9]+)?$", var.database.engine_version))
    error_message = "database.engine_version must be PostgreSQL 16 or later (pgvector), e.g. 17 or 16.8."
  }

  validation {
    condition     = var.database.backup_retention_days >= 1 && var.database.backup_retention_days <= 35
    error_message = "database.backup_retention_days must be from 1 to 35."
  }

  validation {
    condition     = var.database.allocated_storage_gb >= 20 && var.database.max_storage_gb >= var.database.allocated_storage_gb
    error_message = "database needs allocated_storage_gb >= 20 and max_storage_gb >= allocated_storage_gb."
  }
}
