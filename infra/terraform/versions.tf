# Terraform 1.11 or later: variable validations compare one variable with another (1.9), and
# the S3 backend's use_lockfile below (S3's own state lock, no DynamoDB table) arrived in 1.10
# as an experiment and is generally available from 1.11:
# https://developer.hashicorp.com/terraform/language/v1.11.x/upgrade-guides
terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 6.0, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.6, < 4.0"
    }
  }

  # State holds the database password when create_database is true: keep it in an encrypted,
  # versioned bucket, e.g. with `terraform init -backend-config=backend.hcl` and
  #   backend "s3" { bucket = "...", key = "charla.tfstate", region = "...", encrypt = true,
  #                  use_lockfile = true }
}
