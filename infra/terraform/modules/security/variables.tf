variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "vpc_id" {
  description = "VPC the security groups belong to."
  type        = string
}

variable "gateway_port" {
  description = "Port of the model server gateway (hosts and internal load balancer)."
  type        = number

  validation {
    condition     = var.gateway_port >= 1 && var.gateway_port <= 65535
    error_message = "gateway_port must be from 1 to 65535."
  }
}

variable "database_port" {
  description = "Port PostgreSQL listens on."
  type        = number

  validation {
    condition     = var.database_port >= 1 && var.database_port <= 65535
    error_message = "database_port must be from 1 to 65535."
  }
}
