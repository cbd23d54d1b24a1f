output "invoke_arns" {
  description = "Invoke ARN of each function, by name."
  value       = { for k, f in aws_lambda_function.this : k => f.invoke_arn }
}

output "function_names" {
  description = "Name of each function, by key."
  value       = { for k, f in aws_lambda_function.this : k => f.function_name }
}

output "role_arns" {
  description = "Execution role of each function, by key."
  value       = { for k, r in aws_iam_role.this : k => r.arn }
}
