variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be an IPv4 CIDR block."
  }
}

variable "availability_zones" {
  description = "Availability zones, one subnet of each kind in each."
  type        = list(string)
}

variable "private_subnet_cidrs" {
  description = "Isolated subnets, one per availability zone: no route out of the VPC."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.private_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "private_subnet_cidrs must be IPv4 CIDR blocks."
  }
}

variable "worker_subnet_cidrs" {
  description = "The worker's subnets, one per availability zone: routed to the NAT gateway."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.worker_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "worker_subnet_cidrs must be IPv4 CIDR blocks."
  }
}

variable "public_subnet_cidrs" {
  description = "Public subnets that hold only the NAT gateway(s)."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.public_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "public_subnet_cidrs must be IPv4 CIDR blocks."
  }
}

variable "nat_gateway_per_az" {
  description = "One NAT gateway per availability zone instead of one shared."
  type        = bool
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the flow log group."
  type        = string
}

variable "log_retention_days" {
  description = "Days to keep the VPC flow logs."
  type        = number
}
