output "app_secret_arn" {
  description = "ARN of the app secret (CHARLA_SECRETS_ARN): platform tokens and signing keys, filled in by the operator."
  value       = aws_secretsmanager_secret.app.arn
}

output "parameters_path" {
  description = "SSM parameter path whose parameters the functions read as settings (CHARLA_SSM_PREFIX)."
  value       = local.path
}

output "parameters_path_arns" {
  description = "ARNs that cover reading the parameters under the path."
  value       = ["${local.path_arn}", "${local.path_arn}/*"]
}
