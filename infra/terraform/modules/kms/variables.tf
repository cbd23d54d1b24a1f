variable "name" {
  description = "Prefix for resource names."
  type        = string
}

variable "create_autoscaling_service_linked_role" {
  description = "Create EC2 Auto Scaling's service-linked role (AWSServiceRoleForAutoScaling), which the key policy names. False where the account already has it (creating it twice fails)."
  type        = bool
}
