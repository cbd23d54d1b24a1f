output "functions_sg_id" {
  description = "Security group of all five functions."
  value       = aws_security_group.functions.id
}

output "worker_internet_sg_id" {
  description = "Extra security group of the worker only: HTTPS out to the chat platforms."
  value       = aws_security_group.worker_internet.id
}

output "load_balancer_sg_id" {
  description = "Security group of the internal load balancer in front of the GPU hosts."
  value       = aws_security_group.load_balancer.id
}

output "gpu_hosts_sg_id" {
  description = "Security group of the GPU hosts."
  value       = aws_security_group.gpu_hosts.id
}

output "database_sg_id" {
  description = "Security group of the PostgreSQL instance."
  value       = aws_security_group.database.id
}

output "endpoints_sg_id" {
  description = "Security group of the interface VPC endpoints."
  value       = aws_security_group.endpoints.id
}
