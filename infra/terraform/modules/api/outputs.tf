output "endpoint" {
  description = "Public HTTPS base URL of the API."
  value       = aws_apigatewayv2_api.this.api_endpoint
}

output "route_keys" {
  description = "Every route of the API."
  value       = sort(keys(local.routes))
}
