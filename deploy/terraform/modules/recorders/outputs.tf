output "nlb_arn" {
  description = "The recorders' NLB: the Traffic Mirror target."
  value       = module.nlb.nlb_arn
}

output "nlb_dns_name" {
  description = "DNS name of the NLB."
  value       = module.nlb.nlb_dns_name
}

output "target_group_arn" {
  description = "The UDP 4789 target group."
  value       = module.nlb.target_group_arn
}

output "security_group_id" {
  description = "Security group of the recorders."
  value       = module.security_group.security_group_id
}

output "autoscaling_group_name" {
  description = "The recorders' Auto Scaling group."
  value       = aws_autoscaling_group.recorders.name
}

output "iam_role_name" {
  description = "The recorders' instance role, to attach more policies (e.g. SSM)."
  value       = aws_iam_role.recorders.name
}
