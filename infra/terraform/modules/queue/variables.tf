variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the messages."
  type        = string
}

variable "max_receive_count" {
  description = "Deliveries of one job before it moves to the dead-letter queue."
  type        = number

  validation {
    condition     = var.max_receive_count >= 1 && var.max_receive_count <= 1000
    error_message = "max_receive_count must be from 1 to 1000."
  }
}

variable "consumer_timeout_s" {
  description = "Timeout of the function that consumes the queue, in seconds."
  type        = number
}
