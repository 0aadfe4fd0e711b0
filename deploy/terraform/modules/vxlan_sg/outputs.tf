output "security_group_id" {
  description = "The security group, for the instances and the caller's further rules."
  value       = aws_security_group.this.id
}
