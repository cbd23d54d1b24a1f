# PostgreSQL on RDS. pgvector ships with RDS PostgreSQL 16 and 17: the application's first
# migration runs CREATE EXTENSION IF NOT EXISTS vector as the master user.

# No special characters: the password goes into a URL as it is.
resource "random_password" "master" {
  length  = 40
  special = false
}

resource "aws_db_subnet_group" "this" {
  name       = "${var.name}-database"
  subnet_ids = var.subnet_ids
}

locals {
  family = "postgres${split(".", var.settings.engine_version)[0]}"
}

resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.name}-pg-"
  family      = local.family

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

data "aws_partition" "current" {} # aws, aws-cn, aws-us-gov: ARNs name their partition

data "aws_iam_policy_document" "monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "monitoring" {
  name               = "${var.name}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

# RDS creates these when logs are exported; creating them first sets retention and encryption.
resource "aws_cloudwatch_log_group" "this" {
  for_each          = toset(["postgresql", "upgrade"])
  name              = "/aws/rds/instance/${var.name}-db/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV2_AWS_30:Statements carry the users' messages and documents; logging them would copy chats into CloudWatch. Connections and errors are logged.
  identifier     = "${var.name}-db"
  engine         = "postgres"
  engine_version = var.settings.engine_version
  instance_class = var.settings.instance_class
  port           = var.port
  db_name        = "charla"
  username       = "charla"
  password       = random_password.master.result

  allocated_storage     = var.settings.allocated_storage_gb
  max_allocated_storage = var.settings.max_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [var.security_group_id]
  publicly_accessible    = false
  multi_az               = var.settings.multi_az
  parameter_group_name   = aws_db_parameter_group.this.name

  iam_database_authentication_enabled = true
  deletion_protection                 = var.settings.deletion_protection
  backup_retention_period             = var.settings.backup_retention_days
  copy_tags_to_snapshot               = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name}-db-final"
  auto_minor_version_upgrade          = true
  apply_immediately                   = false

  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]

  depends_on = [aws_cloudwatch_log_group.this]
}
