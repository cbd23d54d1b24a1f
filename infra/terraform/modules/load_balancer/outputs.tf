output "dns_name" {
  description = "Private DNS name of the internal load balancer."
  value       = aws_lb.this.dns_name
}

output "target_group_arn" {
  description = "Target group the GPU hosts register in."
  value       = aws_lb_target_group.gateway.arn
}

output "arn_suffix" {
  description = "ARN suffix of the load balancer, for CloudWatch metrics."
  value       = aws_lb.this.arn_suffix
}
