output "interface_endpoint_ids" {
  description = "Id of each interface endpoint, by service."
  value       = { for k, e in aws_vpc_endpoint.interface : k => e.id }
}

output "s3_endpoint_id" {
  description = "Id of the S3 gateway endpoint."
  value       = aws_vpc_endpoint.s3.id
}

# Those who need the endpoints (the GPU hosts at boot, the functions) take their subnets from
# here rather than from the network module: this output waits for every endpoint, so they do too.
output "subnet_ids" {
  description = "The subnets given, once every interface endpoint in them and the S3 gateway endpoint exist."
  value       = var.subnet_ids
  depends_on  = [aws_vpc_endpoint.interface, aws_vpc_endpoint.s3]
}
