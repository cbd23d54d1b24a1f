variable "name" {
  description = "Prefix for resource names."
  type        = string
}
