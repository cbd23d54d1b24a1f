variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the secrets."
  type        = string
}

variable "database_url" {
  description = "postgresql:// URL stored as the DATABASE_URL parameter."
  type        = string
  sensitive   = true
}
