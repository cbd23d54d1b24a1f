# The public edge: one API Gateway HTTP API, one route per webhook, per API path and per page,
# each to its function. This is the only thing in the deployment reachable from the internet; the
# routes do their own authentication (platform signatures, bearer JWTs) inside the functions.
#
# A request that matches no route gets API Gateway's own 404 and never reaches a function
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html),
# so this list must name every route the functions app serves (functions/app.py and
# functions/web/routes.py); tests/infra/test_api_routes.py compares the two. One route is left
# out on purpose: GET /metrics, Prometheus's scrape. A scraper on the internet would hold a
# long-lived token with the admin scope, the scope that also exports and erases people's data
# (/v1/admin/users), and would invoke the api function and query Postgres on every scrape. Add
# the route here if you accept that.

locals {
  routes = {
    # Webhooks, each to its platform's function.
    "POST /slack/events"         = "slack"
    "POST /telegram/webhook"     = "telegram"
    "POST /discord/interactions" = "discord"

    # The OpenAI-compatible API and the knowledge base.
    "POST /v1/chat/completions" = "api"
    "GET /v1/models"            = "api"
    "POST /v1/moderations"      = "api"
    "POST /v1/embeddings"       = "api"
    "POST /v1/documents"        = "api"
    "GET /v1/documents"         = "api"
    "DELETE /v1/documents/{id}" = "api"
    "GET /v1/collections"       = "api"
    "GET /v1/passages/{id}"     = "api"
    "GET /healthz"              = "api"

    # The chat page, the admin view, their files, and the admin API they call.
    "GET /"                                    = "api"
    "GET /admin"                               = "api"
    "GET /web/{name}"                          = "api"
    "GET /v1/admin/health"                     = "api"
    "GET /v1/admin/usage"                      = "api"
    "GET /v1/admin/jobs/failed"                = "api"
    "POST /v1/admin/jobs/{id}/retry"           = "api"
    "GET /v1/admin/collections"                = "api"
    "GET /v1/admin/users/{platform}/{user}"    = "api"
    "DELETE /v1/admin/users/{platform}/{user}" = "api"
  }
}

resource "aws_apigatewayv2_api" "this" {
  name          = var.name
  protocol_type = "HTTP"
  description   = "Charla: Slack, Telegram and Discord webhooks, the OpenAI-compatible API and the web chat"
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
  #checkov:skip=CKV_AWS_309:Each route authenticates inside its function: Slack's HMAC signature, Telegram's secret token, Discord's Ed25519 signature, and bearer JWTs on /v1; /healthz and the pages with their static files (which hold no data) are public on purpose.
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
