output "coordinator_ip" {
  description = "The coordinator's private address."
  value       = module.coordinator.private_ip
}

output "rest_url" {
  description = "The coordinator's REST API."
  value       = module.coordinator.rest_url
}

output "cluster_secret_arn" {
  description = "The cluster secret: search and metrics tokens, CURVE keys and the coordinator's HTTPS certificate (http_cert: README.md, Apply)."
  value       = module.coordinator.cluster_secret_arn
}

output "recorders_secret_arn" {
  description = "The recorders' secret: the search token, the metrics token (Prometheus's credentials_file: README.md, Apply), their CURVE key pair and the coordinator's public key."
  value       = module.coordinator.recorders_secret_arn
}

output "recorders_nlb_arn" {
  description = "The recorders' NLB (the Traffic Mirror target)."
  value       = module.recorders.nlb_arn
}

output "recorders_asg" {
  description = "The recorders' Auto Scaling group."
  value       = module.recorders.autoscaling_group_name
}

output "mirror_sessions" {
  description = "Per mirrored ENI: session id and VNI."
  value       = module.mirror.sessions
}

output "broker_ips" {
  description = "The brokers' addresses (empty without brokers)."
  value       = length(module.broker) > 0 ? module.broker[0].private_ips : []
}
