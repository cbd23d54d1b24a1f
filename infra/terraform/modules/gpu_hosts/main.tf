# The GPU hosts: an auto scaling group from a launch template. Each host copies the model from
# S3, pulls its images from ECR (both through VPC endpoints, no internet), and starts the
# docker compose file: the gateway on the gateway port, the engines on loopback behind it.
# No SSH key and no SSH rule: `aws ssm start-session` is the way in.

data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  region           = data.aws_region.current.region
  context_per_chat = floor(var.engine_ctx_size / var.engine_parallel)

  # Read by docker compose from /opt/charla/.env. The gateway reaches TGI through
  # huggingface_hub, which speaks its JSON-schema shape, and the other engines as OpenAI.
  compose_env = {
    COMPOSE_PROFILES   = "${var.engine},embeddings-${var.embeddings_engine}"
    CHARLA_ENGINE      = var.engine == "tgi" ? "upstream" : "openai"
    MODEL_SERVER_PORT  = tostring(var.gateway_port)
    MODELS_DIR         = "/opt/charla/models"
    SERVICE_PUBLIC_KEY = "/opt/charla/service_public_key.pem"
    CHARLA_MODEL_NAME  = var.model_name
    CHAT_MODEL         = var.chat_model_path
    EMBEDDING_MODEL    = var.embedding_model_path
    ENGINE_PARALLEL    = tostring(var.engine_parallel)
    ENGINE_CTX_SIZE    = tostring(var.engine_ctx_size)
    CONTEXT_PER_CHAT   = tostring(local.context_per_chat)
    MAX_INPUT_TOKENS   = tostring(floor(local.context_per_chat * 3 / 4))
    GATEWAY_IMAGE      = var.images["gateway"]
    LLAMA_CPP_IMAGE    = var.images["llama-cpp"]
    VLLM_IMAGE         = var.images["vllm"]
    TGI_IMAGE          = var.images["tgi"]
    TEI_IMAGE          = var.images["tei"]
  }

  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    region             = local.region
    registry           = var.registry
    models_bucket      = var.models_bucket
    log_group          = aws_cloudwatch_log_group.containers.name
    compose_file       = var.compose_file
    compose_env        = join("\n", [for k, v in local.compose_env : "${k}=${v}"])
    service_public_key = trimspace(var.service_public_key_pem)
  })
}

resource "aws_cloudwatch_log_group" "containers" {
  name              = "/${var.name}/gpu-hosts"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- The hosts' role: SSM, pull images, read the model, write logs; nothing else -------------
#
# AmazonSSMManagedInstanceCore (Session Manager) allows ssm:GetParameter and GetParameters on
# every parameter. The deployment's own parameters are denied here, and their key (the secrets
# key, modules/kms) is one this role may not use, so a host cannot read DATABASE_URL.

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "host" {
  name               = "${var.name}-gpu-host"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  role       = aws_iam_role.host.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

data "aws_iam_policy_document" "host" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"] # takes no resource: AWS allows only "*" here
    resources = ["*"]
  }

  statement {
    sid = "PullImages"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = var.repository_arns
  }

  statement {
    sid       = "ListModels"
    actions   = ["s3:ListBucket"]
    resources = [var.models_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["models/*"]
    }
  }

  statement {
    sid       = "ReadModels"
    actions   = ["s3:GetObject"]
    resources = ["${var.models_bucket_arn}/models/*"]
  }

  statement {
    sid       = "DecryptModelsAndImages"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "ContainerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.containers.arn}:*"]
  }

  statement {
    sid       = "NotTheDeploymentsParameters"
    effect    = "Deny"
    actions   = ["ssm:GetParameter*"] # GetParameter, GetParameters, GetParametersByPath, GetParameterHistory
    resources = var.denied_parameter_arns
  }

  statement {
    sid       = "NotTheSecretsKey"
    effect    = "Deny"
    actions   = ["kms:*"]
    resources = [var.secrets_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "host" {
  name   = "pull-images-read-models-write-logs"
  role   = aws_iam_role.host.id
  policy = data.aws_iam_policy_document.host.json
}

resource "aws_iam_instance_profile" "host" {
  name = "${var.name}-gpu-host"
  role = aws_iam_role.host.name
}

# --- Launch template and group ----------------------------------------------------------------

resource "aws_launch_template" "this" {
  name_prefix   = "${var.name}-gpu-"
  image_id      = var.ami_id # pinned: a new image is a deliberate change, rolled out by the refresh
  instance_type = var.instance_type
  ebs_optimized = true
  user_data     = base64gzip(local.user_data) # cloud-init reads gzip; keeps under 16 KB

  vpc_security_group_ids = [var.security_group_id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.host.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required" # IMDSv2 only
    http_put_response_hop_limit = 1          # containers on the bridge network cannot reach it
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/sda1"
    ebs {
      volume_size           = var.volume_size_gb
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.kms_key_arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${var.name}-gpu-host" }
  }

  tag_specifications {
    resource_type = "volume"
    tags          = { Name = "${var.name}-gpu-host" }
  }
}

resource "aws_autoscaling_group" "this" {
  name                = "${var.name}-gpu-hosts"
  vpc_zone_identifier = var.subnet_ids
  min_size            = var.size.min
  max_size            = var.size.max
  desired_capacity    = var.size.desired
  target_group_arns   = [var.target_group_arn]

  # A host is healthy once the load balancer's /healthz check passes; loading a large model
  # from S3 onto the GPU takes minutes, hence the long grace period.
  health_check_type         = "ELB"
  health_check_grace_period = 900
  default_instance_warmup   = 600

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  # A changed launch template (new image tag, model or key) replaces the hosts, each new one
  # started and healthy before an old one stops, so answers go on during a rollout.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 100
      max_healthy_percentage = 200
      instance_warmup        = 600
    }
  }

  tag {
    key                 = "Name"
    value               = "${var.name}-gpu-host"
    propagate_at_launch = true
  }
}
