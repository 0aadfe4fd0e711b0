# The security group of the targets behind a VXLAN NLB (modules/vxlan_nlb):
# VXLAN from the mirror sources, health checks and metrics from the VPC, SSH
# from the given networks, everything out. Callers add their own rules to it.

locals {
  vxlan_port = 4789

  mirror_source_cidrs = length(var.mirror_source_cidrs) > 0 ? var.mirror_source_cidrs : [data.aws_vpc.this.cidr_block]
}

data "aws_vpc" "this" {
  id = var.vpc_id
}

resource "aws_security_group" "this" {
  name_prefix = "${var.name}-"
  description = var.description
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = var.name })

  lifecycle {
    create_before_destroy = true
  }
}

# VXLAN has no authentication: whoever reaches 4789 writes into the store.
resource "aws_vpc_security_group_ingress_rule" "vxlan" {
  for_each = toset(local.mirror_source_cidrs)

  security_group_id = aws_security_group.this.id
  description       = "VXLAN from mirrored ENIs"
  ip_protocol       = "udp"
  from_port         = local.vxlan_port
  to_port           = local.vxlan_port
  cidr_ipv4         = each.value
}

# The NLB's health checks come from its own addresses in the VPC; Prometheus
# scrapes /metrics on the same port.
resource "aws_vpc_security_group_ingress_rule" "http" {
  security_group_id = aws_security_group.this.id
  description       = "health checks and metrics"
  ip_protocol       = "tcp"
  from_port         = var.http_port
  to_port           = var.http_port
  cidr_ipv4         = data.aws_vpc.this.cidr_block
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.ssh_cidrs)

  security_group_id = aws_security_group.this.id
  description       = "SSH"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value
}

# Packages, and whatever the caller's daemons talk to.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.this.id
  description       = "everything out"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}
