# Amazon VPC Traffic Mirroring towards an NLB: one target, one filter, and a
# session per source ENI. The NLB spreads the VXLAN feed over its targets by
# outer source address, i.e. by mirrored interface.

locals {
  by_tags = length(var.source_instance_tags) > 0

  # An instance of our own (recorder, broker, coordinator) mirrored into the
  # recorders would feed them their own traffic, growing without end.
  tagged_enis = {
    for id, inst in data.aws_instance.sources :
    inst.network_interface_id => "instance ${id}"
    if !contains(keys(inst.tags), "mscope:role")
  }

  sources = merge(
    { for eni in var.source_eni_ids : eni => "listed" },
    local.tagged_enis,
  )

  # The last 6 hex digits of an ENI id are 24 bits: a VNI that is stable
  # across applies and tells the analyst which interface a packet came from.
  vni = {
    for eni in keys(local.sources) :
    eni => lookup(var.virtual_network_ids, eni, parseint(substr(eni, -6, -1), 16))
  }

  filter_rules = { for r in var.filter_rules : "${r.direction}-${r.rule_number}" => r }
}

data "aws_instances" "sources" {
  count = local.by_tags ? 1 : 0

  instance_tags        = var.source_instance_tags
  instance_state_names = ["running"]
}

data "aws_instance" "sources" {
  for_each = local.by_tags ? toset(data.aws_instances.sources[0].ids) : toset([])

  instance_id = each.value
}

data "aws_network_interface" "listed" {
  for_each = toset(var.source_eni_ids)

  id = each.value
}

resource "aws_ec2_traffic_mirror_target" "this" {
  description               = "${var.name}: VXLAN to the NLB"
  network_load_balancer_arn = var.target_nlb_arn
  tags                      = merge(var.tags, { Name = var.name })
}

resource "aws_ec2_traffic_mirror_filter" "this" {
  description      = "${var.name}: what is mirrored"
  network_services = var.network_services
  tags             = merge(var.tags, { Name = var.name })
}

resource "aws_ec2_traffic_mirror_filter_rule" "this" {
  for_each = local.filter_rules

  traffic_mirror_filter_id = aws_ec2_traffic_mirror_filter.this.id
  description              = each.value.description
  traffic_direction        = each.value.direction
  rule_number              = each.value.rule_number
  rule_action              = each.value.action
  protocol                 = each.value.protocol
  source_cidr_block        = each.value.source_cidr_block
  destination_cidr_block   = each.value.destination_cidr_block

  dynamic "source_port_range" {
    for_each = each.value.source_ports == null ? [] : [each.value.source_ports]
    content {
      from_port = source_port_range.value.from
      to_port   = source_port_range.value.to
    }
  }

  dynamic "destination_port_range" {
    for_each = each.value.destination_ports == null ? [] : [each.value.destination_ports]
    content {
      from_port = destination_port_range.value.from
      to_port   = destination_port_range.value.to
    }
  }
}

resource "aws_ec2_traffic_mirror_session" "this" {
  for_each = local.sources

  description              = "${var.name}: ${each.value}"
  network_interface_id     = each.key
  traffic_mirror_target_id = aws_ec2_traffic_mirror_target.this.id
  traffic_mirror_filter_id = aws_ec2_traffic_mirror_filter.this.id
  session_number           = var.session_number
  virtual_network_id       = local.vni[each.key]
  packet_length            = var.packet_length
  tags                     = merge(var.tags, { Name = "${var.name}-${each.key}" })

  lifecycle {
    # AWS refuses these only at apply time, after other sessions were made.
    precondition {
      condition     = try(data.aws_network_interface.listed[each.key].interface_type, "interface") == "interface"
      error_message = "Only ENIs of type \"interface\" can be mirrored, not NAT gateway or load balancer ENIs: ${each.key}."
    }
  }
}
