output "url" {
  description = "postgresql:// URL of the application database (stored only as an SSM SecureString)."
  value       = "postgresql://${aws_db_instance.this.username}:${random_password.master.result}@${aws_db_instance.this.address}:${aws_db_instance.this.port}/${aws_db_instance.this.db_name}?sslmode=require"
  sensitive   = true
}

output "endpoint" {
  description = "Host name and port of the instance."
  value       = "${aws_db_instance.this.address}:${aws_db_instance.this.port}"
}

output "instance_id" {
  description = "Identifier of the RDS instance."
  value       = aws_db_instance.this.identifier
}
