# Where the functions' secret settings live. The functions lay both over their environment
# (shared/secrets.py: environment < parameters < secret), by the settings' own names.
#
# The app secret (CHARLA_SECRETS_ARN), a JSON object: SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN,
#   TELEGRAM_BOT_TOKEN, TELEGRAM_SECRET_TOKEN, DISCORD_PUBLIC_KEY, DISCORD_BOT_TOKEN,
#   CHARLA_API_JWT_SECRET and CHARLA_SERVICE_PRIVATE_KEY. Terraform creates the secret but never
#   its value, so no token passes through Terraform's state: the operator puts it (README:
#   "Configure the platforms").
# The parameter path (CHARLA_SSM_PREFIX): DATABASE_URL as a SecureString, written by Terraform
#   from the RDS instance it created or from var.database_url.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  path     = "/${var.name}"
  path_arn = "arn:${data.aws_partition.current.partition}:ssm:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:parameter/${var.name}"
}

resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:The platforms issue these tokens; they are rotated on the platform's side, then put here (README: "Rotate secrets"). No Lambda can rotate them.
  name_prefix             = "${var.name}/app-"
  description             = "Charla: chat platform tokens and signing keys (JSON of setting names)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 30
}

resource "aws_ssm_parameter" "database_url" {
  name        = "${local.path}/DATABASE_URL"
  description = "Charla: postgresql:// URL of the application database"
  type        = "SecureString"
  key_id      = var.kms_key_arn
  value       = var.database_url
}
