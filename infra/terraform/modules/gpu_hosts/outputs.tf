output "autoscaling_group_name" {
  description = "Name of the GPU hosts' auto scaling group."
  value       = aws_autoscaling_group.this.name
}

output "role_name" {
  description = "IAM role of the GPU hosts."
  value       = aws_iam_role.host.name
}

output "log_group_name" {
  description = "CloudWatch log group of the hosts' containers."
  value       = aws_cloudwatch_log_group.containers.name
}
