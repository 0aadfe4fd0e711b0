output "nlb_arn" {
  description = "The brokers' NLB: a Traffic Mirror target for a second mirror module."
  value       = module.nlb.nlb_arn
}

output "security_group_id" {
  description = "Security group of the brokers (let the tools accept traffic from it)."
  value       = module.security_group.security_group_id
}

output "private_ips" {
  description = "The brokers' addresses: the source address the tools see."
  value       = aws_instance.brokers[*].private_ip
}

output "instance_ids" {
  description = "The broker instances."
  value       = aws_instance.brokers[*].id
}
