# The five Lambda functions. Webhooks (slack, telegram, discord) verify and enqueue; api
# answers the OpenAI-compatible routes; worker takes jobs from SQS, drops a delivery's copies
# and posts the replies. Each has its own role with only what it does.

data "aws_partition" "current" {} # aws, aws-cn, aws-us-gov: ARNs name their partition

locals {
  # Which policy each function's role gets (below), and its size and timeout.
  # API Gateway waits at most 30 s for an HTTP API integration.
  functions = {
    slack    = { kind = "webhook", memory = 512, timeout = 10 }
    telegram = { kind = "webhook", memory = 512, timeout = 10 }
    discord  = { kind = "webhook", memory = 512, timeout = 10 }
    api      = { kind = "api", memory = 1024, timeout = 30 }
    worker   = { kind = "worker", memory = 1024, timeout = var.worker_timeout_s }
  }

  # A document upload reaches the api function inside the invocation's event: Lambda takes at
  # most 6 MB there, and API Gateway passes a file base64-encoded (4 bytes for 3). Above about
  # 4.5 MB the request dies before the app sees it, so the app's own 413, which says how to add
  # a larger file (charla ingest), comes first: at 4 MB, unless the environment sets another.
  # https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
  environment = merge({ CHARLA_KB_MAX_UPLOAD_BYTES = tostring(4 * 1000 * 1000) }, var.environment, {
    CHARLA_QUEUE            = "sqs"
    CHARLA_SQS_QUEUE_URL    = var.queue_url
    CHARLA_SECRETS_ARN      = var.app_secret_arn
    CHARLA_SSM_PREFIX       = var.parameters_path
    MODEL_SERVER_URL        = var.model_server_url
    DISCORD_APPLICATION_ID  = var.discord_application_id
    TELEGRAM_BOT_USERNAME   = var.telegram_bot_username
    CHARLA_JOB_MAX_ATTEMPTS = tostring(var.job_max_attempts)
  })

  policies = {
    webhook = data.aws_iam_policy_document.webhook.json
    api     = data.aws_iam_policy_document.api.json
    worker  = data.aws_iam_policy_document.worker.json
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each           = local.functions
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# Network interfaces in the VPC, and logs (AWS's managed policy for functions in a VPC).
resource "aws_iam_role_policy_attachment" "vpc_access" {
  for_each   = local.functions
  role       = aws_iam_role.this[each.key].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

# Webhooks: read the secret settings (the secrets key), put jobs on the queue (encrypted with the
# deployment's key).
data "aws_iam_policy_document" "webhook" {
  statement {
    sid       = "ReadSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.app_secret_arn]
  }

  statement {
    sid       = "ReadParameters"
    actions   = ["ssm:GetParametersByPath"]
    resources = var.parameters_path_arns
  }

  statement {
    sid       = "EnqueueJobs"
    actions   = ["sqs:SendMessage"]
    resources = [var.queue_arn]
  }

  statement {
    sid       = "DecryptSecretAndParameters"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]
  }

  statement {
    sid       = "UseKeyForQueueAndEnvironment"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

# API: read the secret settings; it answers the caller itself. Its admin view lists the jobs
# in the dead-letter queue and moves one back to the queue on an operator's request
# (shared/queue/dead_letters.py): it finds the dead-letter queue through the queue's redrive policy.
data "aws_iam_policy_document" "api" {
  statement {
    sid       = "ReadSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.app_secret_arn]
  }

  statement {
    sid       = "ReadParameters"
    actions   = ["ssm:GetParametersByPath"]
    resources = var.parameters_path_arns
  }

  statement {
    sid       = "RequeueFailedJobs"
    actions   = ["sqs:GetQueueAttributes", "sqs:SendMessage"]
    resources = [var.queue_arn]
  }

  statement {
    sid = "ReadAndMoveFailedJobs"
    actions = [
      "sqs:GetQueueUrl",
      "sqs:GetQueueAttributes",
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
    ]
    resources = [var.dead_letter_queue_arn]
  }

  statement {
    sid       = "DecryptSecretAndParameters"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]
  }

  statement {
    sid       = "UseKeyForQueuesAndEnvironment"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

# Worker: read the secret settings, take jobs (the event source mapping polls with this role),
# delay a retry by changing a message's visibility, and put a job it gives up on, with its
# error, on the dead-letter queue (shared/queue/sqs.py finds it through the redrive policy).
data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "ReadSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.app_secret_arn]
  }

  statement {
    sid       = "ReadParameters"
    actions   = ["ssm:GetParametersByPath"]
    resources = var.parameters_path_arns
  }

  statement {
    sid = "TakeJobs"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [var.queue_arn]
  }

  statement {
    sid       = "GiveUpJobs"
    actions   = ["sqs:GetQueueUrl", "sqs:SendMessage"]
    resources = [var.dead_letter_queue_arn]
  }

  statement {
    sid       = "DecryptSecretAndParameters"
    actions   = ["kms:Decrypt"]
    resources = [var.secrets_kms_key_arn]
  }

  statement {
    sid       = "UseKeyForQueuesAndEnvironment"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "this" {
  for_each = local.functions
  name     = "${each.key}-least-privilege"
  role     = aws_iam_role.this[each.key].id
  policy   = local.policies[each.value.kind]
}

resource "aws_cloudwatch_log_group" "this" {
  for_each          = local.functions
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Nothing invokes these asynchronously: API Gateway calls the webhooks and api synchronously, and failed jobs reach the SQS queue's own dead-letter queue.
  #checkov:skip=CKV_AWS_272:The zips are built by this repository's packaging command from reviewed source; a signing profile can be added where the organisation requires one.
  #checkov:skip=CKV_AWS_50:X-Ray would need another VPC endpoint; timings are in the JSON logs.
  for_each      = local.functions
  function_name = "${var.name}-${each.key}"
  role          = aws_iam_role.this[each.key].arn
  handler       = "functions.${each.key}.lambda_handler.handler"
  runtime       = var.runtime
  architectures = [var.architecture]

  filename         = var.zip_paths[each.key]
  source_code_hash = filebase64sha256(var.zip_paths[each.key])

  memory_size                    = each.value.memory
  timeout                        = each.value.timeout
  reserved_concurrent_executions = var.reserved_concurrency[each.key]
  kms_key_arn                    = var.kms_key_arn

  vpc_config {
    subnet_ids = each.key == "worker" ? var.worker_subnet_ids : var.private_subnet_ids
    security_group_ids = (
      each.key == "worker"
      ? [var.functions_sg_id, var.worker_internet_sg_id]
      : [var.functions_sg_id]
    )
  }

  environment {
    variables = local.environment
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  depends_on = [aws_iam_role_policy_attachment.vpc_access, aws_iam_role_policy.this]
}

# The worker takes jobs in small batches and reports which ones failed, so one failure does not
# send the whole batch round again.
resource "aws_lambda_event_source_mapping" "worker" {
  event_source_arn        = var.queue_arn
  function_name           = aws_lambda_function.this["worker"].arn
  batch_size              = 5
  function_response_types = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = max(2, var.reserved_concurrency["worker"])
  }
}

# Housekeeping: the worker forgets old deliveries, sent messages and audit records when an
# EventBridge schedule invokes it (the local worker does this every ten minutes).
resource "aws_cloudwatch_event_rule" "housekeeping" {
  name                = "${var.name}-housekeeping"
  description         = "Charla: forget old deliveries, sent messages and audit records"
  schedule_expression = "rate(1 hour)"
}

resource "aws_cloudwatch_event_target" "housekeeping" {
  rule = aws_cloudwatch_event_rule.housekeeping.name
  arn  = aws_lambda_function.this["worker"].arn
}

resource "aws_lambda_permission" "housekeeping" {
  statement_id  = "AllowHousekeepingSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this["worker"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.housekeeping.arn
}
