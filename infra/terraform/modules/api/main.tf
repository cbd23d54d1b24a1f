# The public edge: one API Gateway HTTP API, one route per webhook and per API path, each to
# its function. This is the only thing in the deployment reachable from the internet; the
# routes do their own authentication (platform signatures, bearer JWTs) inside the functions.

locals {
  routes = {
    "POST /slack/events"         = "slack"
    "POST /telegram/webhook"     = "telegram"
    "POST /discord/interactions" = "discord"
    "POST /v1/chat/completions"  = "api"
    "GET /v1/models"             = "api"
    "POST /v1/documents"         = "api"
    "DELETE /v1/documents/{id}"  = "api"
    "GET /healthz"               = "api"
  }
}

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  protocol_type = "HTTP"
  description   = "Charla: Slack, Telegram and Discord webhooks and the OpenAI-compatible API"
}

resource "aws_apigatewayv2_integration" "this" {
  for_each               = var.invoke_arns
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_uri        = each.value
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "this" {
  #checkov:skip=CKV_AWS_309:Each route authenticates inside its function: Slack's HMAC signature, Telegram's secret token, Discord's Ed25519 signature, and bearer JWTs on /v1; /healthz is public on purpose.
  for_each  = local.routes
  api_id    = aws_apigatewayv2_api.this.id
  route_key = each.key
  target    = "integrations/${aws_apigatewayv2_integration.this[each.value].id}"
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/${var.name}/api-access"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_apigatewayv2_stage" "this" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttle.rate_limit
    throttling_burst_limit = var.throttle.burst_limit
  }

  # Who called which route and how it went; never bodies, headers or query strings.
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      requestTime        = "$context.requestTime"
      routeKey           = "$context.routeKey"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationLatency = "$context.integrationLatency"
      integrationError   = "$context.integrationErrorMessage"
      sourceIp           = "$context.identity.sourceIp"
    })
  }
}

resource "aws_lambda_permission" "this" {
  for_each      = var.function_names
  statement_id  = "AllowApiGateway"
  action        = "lambda:InvokeFunction"
  function_name = each.value
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/*/*"
}
