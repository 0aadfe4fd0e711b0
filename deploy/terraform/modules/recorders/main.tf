# The recorders: an internal NLB that takes the VXLAN feed of Traffic
# Mirroring on UDP 4789 (modules/vxlan_nlb), and an Auto Scaling group of
# recorders behind it.
#
# The NLB pins a UDP flow (outer 5-tuple) to one target, but the outer source
# port of VXLAN is a hash of the inner flow, different for the two directions
# of one connection. source_ip stickiness sends everything of one mirrored ENI
# to one recorder instead, so each recorder sees both directions and its TCP
# analysis and flow records are whole.

locals {
  launch_hook    = "${var.name}-launch"
  terminate_hook = "${var.name}-terminate"
  # Terminating waits for the drain, the sealing of the open segment and the
  # last records on the bus: never less than the drain time and a margin.
  terminate_timeout = max(var.terminate_timeout_seconds, var.drain_time_seconds + 60)

  asg_arn = "arn:${data.aws_partition.current.partition}:autoscaling:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}:autoScalingGroup:*:autoScalingGroupName/${var.name}"

  package_s3 = regexall("^s3://([^/]+)/(.+)$", var.package_url)

  tags = merge(var.tags, { "mscope:role" = "recorder" })
}

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

data "aws_ami" "this" {
  most_recent = true
  owners      = var.ami_id == null ? ["136693071363"] : null # Debian's AWS account

  filter {
    name   = var.ami_id == null ? "name" : "image-id"
    values = [var.ami_id == null ? "debian-12-amd64-*" : var.ami_id]
  }
}

# ---- network ----------------------------------------------------------------

# VXLAN from the mirror sources, health checks and metrics, SSH, egress
# (packages, the coordinator, Secrets Manager and the Auto Scaling API).
module "security_group" {
  source = "../vxlan_sg"

  name                = var.name
  description         = "Mirrorscope recorders"
  vpc_id              = var.vpc_id
  mirror_source_cidrs = var.mirror_source_cidrs
  http_port           = var.http_port
  ssh_cidrs           = var.ssh_cidrs
  tags                = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "search" {
  security_group_id            = module.security_group.security_group_id
  description                  = "searches from the coordinator"
  ip_protocol                  = "tcp"
  from_port                    = var.search_port
  to_port                      = var.search_port
  referenced_security_group_id = var.coordinator_security_group_id
}

# Kept here rather than in the coordinator module, so that the bus is opened
# exactly to the recorders that use it.
resource "aws_vpc_security_group_ingress_rule" "bus" {
  security_group_id            = var.coordinator_security_group_id
  description                  = "bus from the recorders"
  ip_protocol                  = "tcp"
  from_port                    = var.bus_port
  to_port                      = var.bus_port
  referenced_security_group_id = module.security_group.security_group_id
}

# The recorder records on for its drain time after SIGTERM: flows stay on it
# exactly that long (the deregistration delay), then move to another recorder.
module "nlb" {
  source = "../vxlan_nlb"

  name                         = var.name
  vpc_id                       = var.vpc_id
  subnet_ids                   = var.subnet_ids
  health_check_port            = var.http_port
  health_check_path            = "/readyz"
  deregistration_delay_seconds = var.drain_time_seconds
  tags                         = local.tags
}

# ---- identity ---------------------------------------------------------------

resource "aws_iam_role" "recorders" {
  name_prefix        = "${var.name}-"
  tags               = local.tags
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "recorders" {
  name   = "mscope-recorder"
  role   = aws_iam_role.recorders.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "LifecycleHooks"
          Effect   = "Allow"
          Action   = ["autoscaling:CompleteLifecycleAction", "autoscaling:RecordLifecycleActionHeartbeat"]
          Resource = local.asg_arn
        },
        {
          Sid      = "RecordersSecret"
          Effect   = "Allow"
          Action   = "secretsmanager:GetSecretValue"
          Resource = var.recorders_secret_arn
        },
      ],
      [
        for m in local.package_s3 : {
          Sid      = "Package"
          Effect   = "Allow"
          Action   = "s3:GetObject"
          Resource = "arn:${data.aws_partition.current.partition}:s3:::${m[0]}/${m[1]}"
        }
      ],
    )
  })
}

resource "aws_iam_instance_profile" "recorders" {
  name_prefix = "${var.name}-"
  role        = aws_iam_role.recorders.name
  tags        = local.tags
}

# ---- instances --------------------------------------------------------------

resource "aws_launch_template" "recorders" {
  name_prefix            = "${var.name}-"
  image_id               = data.aws_ami.this.id
  instance_type          = var.instance_type
  key_name               = var.key_name
  vpc_security_group_ids = [module.security_group.security_group_id]
  update_default_version = true
  tags                   = local.tags

  user_data = base64encode(templatefile("${path.module}/cloud-init.yaml.tftpl", {
    node_lib             = file("${path.module}/../common/mscope-node.sh")
    helper_sandbox       = file("${path.module}/../common/helper-sandbox.conf")
    region               = data.aws_region.current.id
    package_url          = var.package_url
    package_sha256       = var.package_sha256 == null ? "" : var.package_sha256
    coordinator          = "tcp://${var.coordinator_address}:${var.bus_port}"
    recorders_secret_arn = var.recorders_secret_arn
    search_port          = var.search_port
    http_port            = var.http_port
    drain_time           = var.drain_time_seconds
    rx_threads           = var.rx_threads
    extra_config         = var.extra_config
    asg_name             = var.name
    launch_hook          = local.launch_hook
    terminate_hook       = local.terminate_hook
  }))

  iam_instance_profile {
    arn = aws_iam_instance_profile.recorders.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  monitoring {
    enabled = var.detailed_monitoring
  }

  block_device_mappings {
    device_name = data.aws_ami.this.root_device_name

    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_size_gb
      encrypted             = true
      kms_key_id            = var.kms_key_id
      delete_on_termination = true
    }
  }

  # The packet store.
  block_device_mappings {
    device_name = "/dev/sdf"

    ebs {
      volume_type           = var.data_volume_type
      volume_size           = var.data_volume_size_gb
      iops                  = contains(["gp3", "io2"], var.data_volume_type) ? var.data_volume_iops : null
      throughput            = var.data_volume_type == "gp3" ? var.data_volume_throughput : null
      encrypted             = true
      kms_key_id            = var.kms_key_id
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = var.name })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = var.name })
  }
}

resource "aws_autoscaling_group" "recorders" {
  name                = var.name
  min_size            = var.min_size
  max_size            = var.max_size
  vpc_zone_identifier = var.subnet_ids
  target_group_arns   = [module.nlb.target_group_arn]
  # A recorder that fails /readyz for long (dropping, stuck) is replaced.
  health_check_type         = "ELB"
  health_check_grace_period = var.health_check_grace_seconds
  default_instance_warmup   = 120

  launch_template {
    id      = aws_launch_template.recorders.id
    version = aws_launch_template.recorders.latest_version
  }

  # Hooks declared here, not as aws_autoscaling_lifecycle_hook resources: those
  # are made after the group, when its first instances are already in service.
  initial_lifecycle_hook {
    name                 = local.launch_hook
    lifecycle_transition = "autoscaling:EC2_INSTANCE_LAUNCHING"
    heartbeat_timeout    = var.launch_timeout_seconds
    default_result       = "ABANDON"
  }

  initial_lifecycle_hook {
    name                 = local.terminate_hook
    lifecycle_transition = "autoscaling:EC2_INSTANCE_TERMINATING"
    heartbeat_timeout    = local.terminate_timeout
    default_result       = "CONTINUE"
  }

  dynamic "tag" {
    for_each = merge(local.tags, { Name = var.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false
    }
  }

  # Instances complete their own launch hook: the permission must exist first.
  depends_on = [aws_iam_role_policy.recorders]
}

resource "aws_autoscaling_policy" "cpu" {
  name                   = "${var.name}-cpu"
  autoscaling_group_name = aws_autoscaling_group.recorders.name
  policy_type            = "TargetTrackingScaling"

  target_tracking_configuration {
    target_value     = var.cpu_target_percent
    disable_scale_in = !var.allow_scale_in

    predefined_metric_specification {
      predefined_metric_type = "ASGAverageCPUUtilization"
    }
  }
}
