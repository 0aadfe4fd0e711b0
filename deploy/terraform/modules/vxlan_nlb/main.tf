# The internal Network Load Balancer that takes a VXLAN feed of Traffic
# Mirroring on UDP 4789 (the recorders' and the brokers'): the NLB, its UDP
# target group and the UDP 4789 listener. The targets are the caller's.
#
# The NLB pins a UDP flow (outer 5-tuple) to one target, but the outer source
# port of VXLAN is a hash of the inner flow, different for the two directions
# of one connection. source_ip stickiness sends everything of one mirrored ENI
# to one target instead, so each target sees both directions.

locals {
  vxlan_port = 4789
}

resource "aws_lb" "this" {
  name               = var.name
  internal           = true
  load_balancer_type = "network"
  subnets            = var.subnet_ids
  # Traffic Mirroring keeps sending to every NLB node, also in zones without a
  # healthy target; AWS recommends cross-zone balancing for mirror targets.
  enable_cross_zone_load_balancing = true
  tags                             = var.tags
}

resource "aws_lb_target_group" "vxlan" {
  name        = var.name
  vpc_id      = var.vpc_id
  target_type = "instance"
  protocol    = "UDP"
  port        = local.vxlan_port
  # How long a leaving target keeps its flows (the recorders: their drain
  # time, during which they record on).
  deregistration_delay   = var.deregistration_delay_seconds
  connection_termination = true
  tags                   = var.tags

  stickiness {
    type    = "source_ip"
    enabled = true
  }

  # UDP health checks do not exist; /readyz turns 503 when the daemon drops
  # packets, stops receiving or drains.
  health_check {
    protocol            = "HTTP"
    port                = var.health_check_port
    path                = var.health_check_path
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

# Removing this listener makes mirroring fail silently: keep it.
resource "aws_lb_listener" "vxlan" {
  load_balancer_arn = aws_lb.this.arn
  protocol          = "UDP"
  port              = local.vxlan_port
  tags              = var.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.vxlan.arn
  }
}
