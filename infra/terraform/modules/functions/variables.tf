variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "zip_paths" {
  description = "Absolute path of each function's zip, by function: slack, telegram, discord, api, worker."
  type        = map(string)
}

variable "runtime" {
  description = "Python runtime of the functions."
  type        = string
}

variable "architecture" {
  description = "CPU architecture of the functions (x86_64 or arm64)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Isolated subnets of the webhook and API functions."
  type        = list(string)
}

variable "worker_subnet_ids" {
  description = "Subnets of the worker (routed to the NAT gateway)."
  type        = list(string)
}

variable "functions_sg_id" {
  description = "Security group of all the functions."
  type        = string
}

variable "worker_internet_sg_id" {
  description = "Extra security group of the worker: HTTPS to the chat platforms."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the environment, the secrets, the queue and the logs."
  type        = string
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the app secret and the DATABASE_URL parameter."
  type        = string
}

variable "queue_arn" {
  description = "ARN of the job queue."
  type        = string
}

variable "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue."
  type        = string
}

variable "queue_url" {
  description = "URL of the job queue."
  type        = string
}

variable "app_secret_arn" {
  description = "ARN of the app secret (platform tokens, signing keys)."
  type        = string
}

variable "parameters_path" {
  description = "SSM parameter path read as settings (holds DATABASE_URL)."
  type        = string
}

variable "parameters_path_arns" {
  description = "ARNs that cover reading the parameters under the path."
  type        = list(string)
}

variable "model_server_url" {
  description = "URL of the model gateway behind the internal load balancer."
  type        = string
}

variable "telegram_bot_username" {
  description = "The Telegram bot's @name, or empty."
  type        = string
}

variable "job_max_attempts" {
  description = "Tries per job: the queue's maxReceiveCount, so the last try sends the apology."
  type        = number
}

variable "discord_application_id" {
  description = "Discord application id, or empty."
  type        = string
}

variable "environment" {
  description = "Further plain settings for every function."
  type        = map(string)
}

variable "reserved_concurrency" {
  description = "Most concurrent executions of each function."
  type        = map(number)
}

variable "worker_timeout_s" {
  description = "Timeout of the worker in seconds."
  type        = number
}

variable "log_retention_days" {
  description = "Days to keep the functions' logs."
  type        = number
}
