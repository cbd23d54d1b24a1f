# Two customer-managed keys. The deployment's key: logs, queue, function environment, database,
# GPU host volumes, images and model files. Its policy lets the account's IAM policies grant use
# of it (each role names this key only), and lets the two services that use it on their own
# account (CloudWatch Logs, and EC2 Auto Scaling for encrypted volumes) do so. The secrets key:
# the app secret and the DATABASE_URL parameter only. The GPU hosts may decrypt with the first
# (model files, images) but never with the second, so nothing on a host can read the database's
# URL or the platform tokens, whatever else its role allows (AmazonSSMManagedInstanceCore allows
# ssm:GetParameter on every parameter; a SecureString's value still needs kms:Decrypt on its key:
# https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-restrict-decryption.html).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.region
  partition = data.aws_partition.current.partition

  # A key policy may only name principals that exist: CreateKey refuses one naming Auto
  # Scaling's service-linked role before the account's first Auto Scaling group created it
  # (MalformedPolicyDocumentException). So the role is created here (once per account), and the
  # policy takes its ARN from that resource: the key is created after the role. The provider
  # retries CreateKey on that error while IAM propagates a new role. Where the account already
  # has the role, create_autoscaling_service_linked_role = false names it instead.
  # https://docs.aws.amazon.com/autoscaling/ec2/userguide/key-policy-requirements-EBS-encryption.html
  autoscaling_role_arn = (
    var.create_autoscaling_service_linked_role
    ? aws_iam_service_linked_role.autoscaling[0].arn
    : "arn:${local.partition}:iam::${local.account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
  )
}

resource "aws_iam_service_linked_role" "autoscaling" {
  count            = var.create_autoscaling_service_linked_role ? 1 : 0
  aws_service_name = "autoscaling.amazonaws.com"
}

# Both keys' policies start here: the account administers the key, and its IAM policies may
# grant its use (without this statement a key can be left with nobody able to manage it).
data "aws_iam_policy_document" "account" {
  #checkov:skip=CKV_AWS_109:A key policy's resource "*" means this key itself; the account root statement is how IAM policies are allowed to grant use of the key.
  #checkov:skip=CKV_AWS_111:In a key policy, resource "*" is the key the policy is attached to, not every resource.
  #checkov:skip=CKV_AWS_356:In a key policy, resource "*" is the key the policy is attached to; it cannot name its own ARN.
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:A key policy's resource "*" means this key itself.
  #checkov:skip=CKV_AWS_111:In a key policy, resource "*" is the key the policy is attached to, not every resource.
  #checkov:skip=CKV_AWS_356:In a key policy, resource "*" is the key the policy is attached to; it cannot name its own ARN.
  source_policy_documents = [data.aws_iam_policy_document.account.json]

  statement {
    sid = "CloudWatchLogsEncryptsThisDeploymentsLogGroups"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:Describe*",
    ]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account}:log-group:*"]
    }
  }

  # Auto Scaling launches the GPU hosts with volumes encrypted by this key, so its
  # service-linked role must be able to use the key and hand grants to EC2.
  statement {
    sid = "AutoScalingUsesTheKeyForVolumes"
    actions = [
      "kms:Encrypt",
      "kms:Decrypt",
      "kms:ReEncrypt*",
      "kms:GenerateDataKey*",
      "kms:DescribeKey",
    ]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.autoscaling_role_arn]
    }
  }

  statement {
    sid       = "AutoScalingGrantsVolumeUseToEC2"
    actions   = ["kms:CreateGrant"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.autoscaling_role_arn]
    }
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "${var.name}: logs, queue, database, volumes, images, models"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

# --- The secrets key: the app secret and DATABASE_URL -----------------------------------------

# Only the account's IAM policies may grant it, and only the functions' roles do (modules/
# functions); no service is named, so neither Auto Scaling nor CloudWatch Logs can use it.
resource "aws_kms_key" "secrets" {
  description             = "${var.name}: the app secret and the DATABASE_URL parameter"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.account.json
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.name}-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}
