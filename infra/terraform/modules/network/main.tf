# The VPC: isolated subnets for everything that needs no internet (GPU hosts, load balancer,
# database, webhook functions, VPC endpoints), worker subnets routed through a NAT gateway (the
# worker posts replies to slack.com, api.telegram.org and discord.com), and public subnets that
# hold nothing but the NAT gateway.

locals {
  zones     = var.availability_zones
  nat_count = var.nat_gateway_per_az ? length(var.public_subnet_cidrs) : 1
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # interface endpoints answer on the services' own names

  tags = { Name = var.name }
}

# The default security group stays empty, so nothing is ever open by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name}-default-unused" }
}

resource "aws_subnet" "private" {
  count             = length(var.private_subnet_cidrs)
  vpc_id            = aws_vpc.this.id
  cidr_block        = var.private_subnet_cidrs[count.index]
  availability_zone = local.zones[count.index]

  tags = { Name = "${var.name}-private-${local.zones[count.index]}", Tier = "isolated" }
}

resource "aws_subnet" "worker" {
  count             = length(var.worker_subnet_cidrs)
  vpc_id            = aws_vpc.this.id
  cidr_block        = var.worker_subnet_cidrs[count.index]
  availability_zone = local.zones[count.index]

  tags = { Name = "${var.name}-worker-${local.zones[count.index]}", Tier = "egress" }
}

resource "aws_subnet" "public" {
  count                   = length(var.public_subnet_cidrs)
  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.public_subnet_cidrs[count.index]
  availability_zone       = local.zones[count.index]
  map_public_ip_on_launch = false # only the NAT gateway's Elastic IP lives here

  tags = { Name = "${var.name}-public-${local.zones[count.index]}", Tier = "nat" }
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = var.name }
}

resource "aws_eip" "nat" {
  count  = local.nat_count
  domain = "vpc"
  tags   = { Name = "${var.name}-nat-${count.index}" }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  count         = local.nat_count
  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = { Name = "${var.name}-nat-${count.index}" }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name}-public" }
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0" # the NAT gateway's own way out; nothing else sits here
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count          = length(aws_subnet.public)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

# Isolated: only the VPC's local route and the S3 gateway endpoint (added by the endpoints module).
resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name}-private" }
}

resource "aws_route_table_association" "private" {
  count          = length(aws_subnet.private)
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

resource "aws_route_table" "worker" {
  count  = length(var.worker_subnet_cidrs)
  vpc_id = aws_vpc.this.id
  tags   = { Name = "${var.name}-worker-${count.index}" }
}

resource "aws_route" "worker_nat" {
  count                  = length(var.worker_subnet_cidrs)
  route_table_id         = aws_route_table.worker[count.index].id
  destination_cidr_block = "0.0.0.0/0" # the chat platforms' public APIs; the worker's security group allows 443 only
  nat_gateway_id         = aws_nat_gateway.this[count.index % local.nat_count].id
}

resource "aws_route_table_association" "worker" {
  count          = length(aws_subnet.worker)
  subnet_id      = aws_subnet.worker[count.index].id
  route_table_id = aws_route_table.worker[count.index].id
}

# --- Flow logs: who talked to whom, for audits and for debugging security groups ---------------

resource "aws_cloudwatch_log_group" "flow" {
  name              = "/${var.name}/vpc-flow-logs"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

data "aws_iam_policy_document" "flow_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "flow" {
  name               = "${var.name}-vpc-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.flow_assume.json
}

data "aws_iam_policy_document" "flow" {
  statement {
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogStreams",
    ]
    resources = [aws_cloudwatch_log_group.flow.arn, "${aws_cloudwatch_log_group.flow.arn}:*"]
  }
}

resource "aws_iam_role_policy" "flow" {
  name   = "write-flow-logs"
  role   = aws_iam_role.flow.id
  policy = data.aws_iam_policy_document.flow.json
}

resource "aws_flow_log" "this" {
  vpc_id          = aws_vpc.this.id
  traffic_type    = "ALL"
  log_destination = aws_cloudwatch_log_group.flow.arn
  iam_role_arn    = aws_iam_role.flow.arn
}
