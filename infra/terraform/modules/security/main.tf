# Who may talk to whom. Every rule names a security group as its peer except two: the GPU hosts'
# HTTPS to S3 (AWS's prefix list for the S3 gateway endpoint) and the worker's HTTPS to the chat
# platforms. There is no SSH rule anywhere: administration goes through SSM Session Manager.
#
# EC2 accepts few characters in descriptions, and the provider does not check them (plan passes,
# apply fails): a group's description takes a-z A-Z 0-9 space and ._-:/()#,@[]+=&;{}!$*, a
# rule's the same without & (no apostrophe in either), up to 255 characters. CreateSecurityGroup:
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CreateSecurityGroup.html; rules:
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_UserIdGroupPair.html and
# API_PrefixListId.html. tests/infra/test_security_group_descriptions.py checks every one.
#
#   functions ──gateway_port──► load balancer ──gateway_port──► GPU hosts
#   functions ──database_port─► database
#   functions, GPU hosts ──443──► VPC endpoints          worker ──443──► internet (NAT)

data "aws_region" "current" {}

data "aws_prefix_list" "s3" {
  name = "com.amazonaws.${data.aws_region.current.region}.s3"
}

resource "aws_security_group" "functions" {
  #checkov:skip=CKV2_AWS_5:Attached in modules/functions (each function's vpc_config); checkov does not follow a security group through module outputs.
  name        = "${var.name}-functions"
  description = "The Lambda functions: out to the model gateway, Postgres and the VPC endpoints"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-functions" }
}

resource "aws_security_group" "worker_internet" {
  #checkov:skip=CKV2_AWS_5:Attached in modules/functions (the worker's vpc_config); checkov does not follow a security group through module outputs.
  name        = "${var.name}-worker-internet"
  description = "The worker only: HTTPS out to the chat platforms (Slack, Telegram, Discord) through the NAT gateway"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-worker-internet" }
}

resource "aws_security_group" "load_balancer" {
  #checkov:skip=CKV2_AWS_5:Attached in modules/load_balancer (aws_lb.this); checkov does not follow a security group through module outputs.
  name        = "${var.name}-gateway-lb"
  description = "Internal load balancer: the gateway port from the functions, on to the GPU hosts"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-gateway-lb" }
}

resource "aws_security_group" "gpu_hosts" {
  #checkov:skip=CKV2_AWS_5:Attached in modules/gpu_hosts (the launch template); checkov does not follow a security group through module outputs.
  name        = "${var.name}-gpu-hosts"
  description = "GPU hosts: the gateway port from the load balancer only; no SSH (SSM instead)"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-gpu-hosts" }
}

resource "aws_security_group" "database" {
  #checkov:skip=CKV2_AWS_5:Attached in modules/database (aws_db_instance.this); checkov does not follow a security group through module outputs.
  name        = "${var.name}-database"
  description = "PostgreSQL: from the functions only"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-database" }
}

resource "aws_security_group" "endpoints" {
  #checkov:skip=CKV2_AWS_5:Attached in modules/endpoints (the interface endpoints); checkov does not follow a security group through module outputs.
  name        = "${var.name}-endpoints"
  description = "Interface VPC endpoints: HTTPS from the functions and the GPU hosts"
  vpc_id      = var.vpc_id
  tags        = { Name = "${var.name}-endpoints" }
}

# --- The gateway port: functions → load balancer → GPU hosts ----------------------------------

resource "aws_vpc_security_group_egress_rule" "functions_to_gateway" {
  security_group_id            = aws_security_group.functions.id
  description                  = "Model gateway on the internal load balancer"
  ip_protocol                  = "tcp"
  from_port                    = var.gateway_port
  to_port                      = var.gateway_port
  referenced_security_group_id = aws_security_group.load_balancer.id
}

resource "aws_vpc_security_group_ingress_rule" "gateway_from_functions" {
  security_group_id            = aws_security_group.load_balancer.id
  description                  = "Model gateway, from the functions only"
  ip_protocol                  = "tcp"
  from_port                    = var.gateway_port
  to_port                      = var.gateway_port
  referenced_security_group_id = aws_security_group.functions.id
}

resource "aws_vpc_security_group_egress_rule" "load_balancer_to_hosts" {
  security_group_id            = aws_security_group.load_balancer.id
  description                  = "Forward to the gateway on the GPU hosts (and health checks)"
  ip_protocol                  = "tcp"
  from_port                    = var.gateway_port
  to_port                      = var.gateway_port
  referenced_security_group_id = aws_security_group.gpu_hosts.id
}

resource "aws_vpc_security_group_ingress_rule" "hosts_from_load_balancer" {
  security_group_id            = aws_security_group.gpu_hosts.id
  description                  = "Model gateway, from the internal load balancer only"
  ip_protocol                  = "tcp"
  from_port                    = var.gateway_port
  to_port                      = var.gateway_port
  referenced_security_group_id = aws_security_group.load_balancer.id
}

# --- Postgres: functions → database -----------------------------------------------------------

resource "aws_vpc_security_group_egress_rule" "functions_to_database" {
  security_group_id            = aws_security_group.functions.id
  description                  = "PostgreSQL"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = aws_security_group.database.id
}

resource "aws_vpc_security_group_ingress_rule" "database_from_functions" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL, from the functions only"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = aws_security_group.functions.id
}

# --- AWS APIs through the VPC endpoints -------------------------------------------------------

resource "aws_vpc_security_group_egress_rule" "functions_to_endpoints" {
  security_group_id            = aws_security_group.functions.id
  description                  = "AWS APIs (SQS, Secrets Manager) through interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "hosts_to_endpoints" {
  security_group_id            = aws_security_group.gpu_hosts.id
  description                  = "AWS APIs (ECR, SSM, CloudWatch Logs) through interface endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints.id
}

resource "aws_vpc_security_group_egress_rule" "hosts_to_s3" {
  security_group_id = aws_security_group.gpu_hosts.id
  description       = "S3 through the gateway endpoint: image layers and the model files"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = data.aws_prefix_list.s3.id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_functions" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the functions"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.functions.id
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_from_hosts" {
  security_group_id            = aws_security_group.endpoints.id
  description                  = "HTTPS from the GPU hosts"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.gpu_hosts.id
}

# --- The worker's replies ---------------------------------------------------------------------

# Egress, not ingress: the worker posts replies to slack.com, api.telegram.org and discord.com,
# whose addresses are not fixed, so the peer is any address; only port 443, and only from the
# worker's subnets, which alone route to the NAT gateway.
resource "aws_vpc_security_group_egress_rule" "worker_to_platforms" {
  security_group_id = aws_security_group.worker_internet.id
  description       = "HTTPS to the public APIs of Slack, Telegram and Discord"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}
