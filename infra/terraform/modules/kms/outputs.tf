output "key_arn" {
  description = "ARN of the deployment's KMS key."
  value       = aws_kms_key.this.arn
}

output "secrets_key_arn" {
  description = "ARN of the key of the app secret and the DATABASE_URL parameter; the GPU hosts may not use it."
  value       = aws_kms_key.secrets.arn
}
