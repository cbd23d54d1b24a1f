output "vpc_id" {
  description = "Id of the VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR block of the VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_ids" {
  description = "Ids of the isolated subnets (no route out of the VPC)."
  value       = aws_subnet.private[*].id
}

output "worker_subnet_ids" {
  description = "Ids of the worker's subnets (routed to the NAT gateway)."
  value       = aws_subnet.worker[*].id
}

output "private_route_table_ids" {
  description = "Route tables of the isolated and worker subnets, for gateway endpoints."
  value       = concat([aws_route_table.private.id], aws_route_table.worker[*].id)
}

output "nat_public_ips" {
  description = "Public addresses the worker's replies leave from (for a platform allow-list)."
  value       = aws_eip.nat[*].public_ip
}
