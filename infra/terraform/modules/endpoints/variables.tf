variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "vpc_id" {
  description = "VPC to add the endpoints to."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets (one per availability zone) that hold the interface endpoints."
  type        = list(string)
}

variable "route_table_ids" {
  description = "Route tables that get the S3 gateway endpoint."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the interface endpoints."
  type        = string
}

variable "models_bucket_arn" {
  description = "The bucket with the model files, readable through the S3 endpoint."
  type        = string
}
