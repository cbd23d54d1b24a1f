variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the images and the model files."
  type        = string
}

variable "repositories" {
  description = "ECR repositories to create, one per image the GPU hosts run."
  type        = set(string)
}
