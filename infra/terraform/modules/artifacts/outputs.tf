output "repository_urls" {
  description = "ECR repository URL of each image, by key."
  value       = { for k, r in aws_ecr_repository.this : k => r.repository_url }
}

output "repository_arns" {
  description = "ECR repository ARN of each image, by key."
  value       = { for k, r in aws_ecr_repository.this : k => r.arn }
}

output "registry" {
  description = "The account's ECR registry host (for docker login)."
  value       = split("/", values(aws_ecr_repository.this)[0].repository_url)[0]
}

output "bucket" {
  description = "Name of the bucket that holds the model files (under models/)."
  value       = aws_s3_bucket.models.bucket
}

output "bucket_arn" {
  description = "ARN of the bucket that holds the model files."
  value       = aws_s3_bucket.models.arn
}
