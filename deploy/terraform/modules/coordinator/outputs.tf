output "private_ip" {
  description = "Private address of the coordinator: the recorders' bus endpoint is tcp://ADDRESS:bus_port."
  value       = aws_network_interface.coordinator.private_ip
}

output "instance_id" {
  description = "The coordinator instance."
  value       = aws_instance.coordinator.id
}

output "security_group_id" {
  description = "Security group of the coordinator (the recorders module opens its bus port to the recorders)."
  value       = aws_security_group.coordinator.id
}

output "cluster_secret_arn" {
  description = "Secret holding the search token, the CURVE keys and (http_tls) the HTTPS certificate and key, filled by the coordinator at first boot."
  value       = aws_secretsmanager_secret.cluster.arn
}

output "recorders_secret_arn" {
  description = "Secret the recorders read (modules/recorders): the search token, the metrics token, their CURVE key pair and the coordinator's public key, filled by the coordinator at first boot."
  value       = aws_secretsmanager_secret.recorders.arn
}

output "brokers_secret_arn" {
  description = "Secret the brokers read (modules/broker's metrics_token_secret): the metrics token alone, filled by the coordinator at first boot."
  value       = aws_secretsmanager_secret.brokers.arn
}

output "rest_url" {
  description = "The REST API (bearer tokens in /var/lib/mscope/coordinator/api-*.token on the instance; with http_tls its certificate is the secret's http_cert: README.md)."
  value       = "${var.http_tls ? "https" : "http"}://${aws_network_interface.coordinator.private_ip}:${var.http_port}/api/v1/"
}

output "db_address" {
  description = "Address of the RDS instance; null when the database is embedded."
  value       = local.rds ? aws_db_instance.this[0].address : null
}

output "db_secret_arn" {
  description = "Secrets Manager secret RDS keeps the database password in; null when embedded."
  value       = local.rds ? aws_db_instance.this[0].master_user_secret[0].secret_arn : null
}

output "iam_role_name" {
  description = "The coordinator's instance role, to attach more policies (e.g. SSM)."
  value       = aws_iam_role.coordinator.name
}
