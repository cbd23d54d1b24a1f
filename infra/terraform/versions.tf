# Terraform 1.9 or later: variable validations below compare one variable with another.
terraform {
  required_version = ">= 1.9.0"

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
