output "nlb_arn" {
  description = "The NLB: the Traffic Mirror target."
  value       = aws_lb.this.arn
}

output "nlb_dns_name" {
  description = "DNS name of the NLB."
  value       = aws_lb.this.dns_name
}

output "target_group_arn" {
  description = "The UDP 4789 target group."
  value       = aws_lb_target_group.vxlan.arn
}
