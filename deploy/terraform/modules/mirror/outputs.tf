output "target_id" {
  description = "The Traffic Mirror target (the NLB)."
  value       = aws_ec2_traffic_mirror_target.this.id
}

output "filter_id" {
  description = "The Traffic Mirror filter; add rules elsewhere only while a direction has fewer than 10."
  value       = aws_ec2_traffic_mirror_filter.this.id
}

output "sessions" {
  description = "Per mirrored ENI: the session id and its VNI (the recorders keep the VNI with every packet and flow)."
  value       = {
    for eni, s in aws_ec2_traffic_mirror_session.this :
    eni => { id = s.id, vni = s.virtual_network_id }
  }
}

output "source_eni_ids" {
  description = "Every ENI mirrored: the listed ones and the primary ENIs of the instances selected by tags."
  value       = sort(keys(local.sources))
}
