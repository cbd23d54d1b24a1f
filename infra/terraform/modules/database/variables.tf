variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "subnet_ids" {
  description = "Isolated subnets for the database (at least two availability zones)."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the database."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for storage, Performance Insights and logs."
  type        = string
}

variable "port" {
  description = "Port PostgreSQL listens on."
  type        = number

  validation {
    condition     = var.port >= 1150 && var.port <= 65535
    error_message = "port must be from 1150 to 65535."
  }
}

variable "settings" {
  description = "Engine version, size, availability and backups of the instance."
  type = object({
    engine_version        = string
    instance_class        = string
    allocated_storage_gb  = number
    max_storage_gb        = number
    multi_az              = bool
    backup_retention_days = number
    deletion_protection   = bool
  })
}

variable "log_retention_days" {
  description = "Days to keep the database's CloudWatch logs."
  type        = number
}
