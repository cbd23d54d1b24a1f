variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "invoke_arns" {
  description = "Invoke ARN of each HTTP function, by key: slack, telegram, discord, api."
  type        = map(string)
}

variable "function_names" {
  description = "Name of each HTTP function, by key."
  type        = map(string)
}

variable "throttle" {
  description = "Steady requests per second and burst for the whole API."
  type = object({
    rate_limit  = number
    burst_limit = number
  })
}

variable "kms_key_arn" {
  description = "KMS key of the access log group."
  type        = string
}

variable "log_retention_days" {
  description = "Days to keep the access logs."
  type        = number
}
