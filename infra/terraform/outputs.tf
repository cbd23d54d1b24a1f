output "api_endpoint" {
  description = "Public base URL of the API Gateway: the platforms' webhooks and the OpenAI-compatible API hang off it."
  value       = module.api.endpoint
}

output "webhook_urls" {
  description = "URL to give each chat platform."
  value = {
    slack    = "${module.api.endpoint}/slack/events"
    telegram = "${module.api.endpoint}/telegram/webhook"
    discord  = "${module.api.endpoint}/discord/interactions"
  }
}

output "openai_base_url" {
  description = "base_url for OpenAI clients."
  value       = "${module.api.endpoint}/v1"
}

output "model_server_url" {
  description = "MODEL_SERVER_URL the functions use: the internal load balancer in front of the GPU hosts."
  value       = local.model_server_url
}

output "app_secret_arn" {
  description = "Secret to fill with the platform tokens and signing keys (CHARLA_SECRETS_ARN)."
  value       = module.secrets.app_secret_arn
}

output "parameters_path" {
  description = "SSM parameter path the functions read settings from (CHARLA_SSM_PREFIX); DATABASE_URL lives there."
  value       = module.secrets.parameters_path
}

output "queue_url" {
  description = "URL of the job queue."
  value       = module.queue.queue_url
}

output "dead_letter_queue_url" {
  description = "URL of the dead-letter queue, where jobs that kept failing wait."
  value       = module.queue.dead_letter_queue_url
}

output "dead_letter_queue_arn" {
  description = "ARN of the dead-letter queue: the source of aws sqs start-message-move-task."
  value       = module.queue.dead_letter_queue_arn
}

output "ecr_repositories" {
  description = "ECR repository URL of each image the GPU hosts run."
  value       = module.artifacts.repository_urls
}

output "models_bucket" {
  description = "Bucket to upload the model files to, under models/."
  value       = module.artifacts.bucket
}

output "gpu_autoscaling_group" {
  description = "Name of the GPU hosts' auto scaling group."
  value       = module.gpu_hosts.autoscaling_group_name
}

output "worker_egress_ips" {
  description = "Public addresses the worker's replies leave from."
  value       = module.network.nat_public_ips
}

output "database_endpoint" {
  description = "Host and port of the RDS instance, or null when database_url was given."
  value       = var.create_database ? module.database[0].endpoint : null
}

output "function_names" {
  description = "Name of each Lambda function."
  value       = module.functions.function_names
}
