# AWS APIs without a NAT gateway: each interface endpoint puts the service's own DNS name on a
# private address in the isolated subnets; S3 (image layers and model files) is a free gateway
# endpoint on the route tables.

data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  region    = data.aws_region.current.region
  partition = data.aws_partition.current.partition
  # ssm, ssmmessages, ec2messages: Session Manager (no SSH). ecr.api, ecr.dkr: image pulls.
  # logs: the containers' logs. sqs, secretsmanager: the functions.
  interface_services = toset(["ssm", "ssmmessages", "ec2messages", "ecr.api", "ecr.dkr", "logs", "sqs", "secretsmanager"])
}

resource "aws_vpc_endpoint" "interface" {
  for_each            = local.interface_services
  vpc_id              = var.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = var.subnet_ids
  security_group_ids  = [var.security_group_id]
  private_dns_enabled = true
  tags                = { Name = "${var.name}-${each.key}" }
}

# Through this endpoint, S3 serves only what the deployment reads: its model bucket, ECR's
# layer bucket and the SSM agent's own buckets.
data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "s3" {
  #checkov:skip=CKV_AWS_283:Gateway endpoint policies pin resources, not callers: ECR hands out layers as URLs presigned by AWS's own account, so that statement's principal must be "*"; the model files are limited to this account's principals.
  statement {
    sid     = "ModelFiles"
    actions = ["s3:GetObject", "s3:ListBucket"]
    resources = [
      var.models_bucket_arn,
      "${var.models_bucket_arn}/*",
    ]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }

  statement {
    sid     = "ImageLayersAndAgentUpdates"
    actions = ["s3:GetObject"]
    resources = [
      "arn:${local.partition}:s3:::prod-${local.region}-starport-layer-bucket/*",
      "arn:${local.partition}:s3:::aws-ssm-${local.region}/*",
      "arn:${local.partition}:s3:::amazon-ssm-${local.region}/*",
      "arn:${local.partition}:s3:::amazon-ssm-packages-${local.region}/*",
    ]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
  }
}

resource "aws_vpc_endpoint" "s3" {
  vpc_id            = var.vpc_id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = var.route_table_ids
  policy            = data.aws_iam_policy_document.s3.json
  tags              = { Name = "${var.name}-s3" }
}
