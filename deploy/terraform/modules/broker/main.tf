# Optional brokers: one mirrored feed to many security tools. Their own NLB
# (modules/vxlan_nlb, like the recorders') is a second Traffic Mirror target;
# each broker filters, slices and masks the packets per tool and sends them on
# (docs/BROKER.md).
#
# A packet of an ENI is mirrored by one session only (the lowest session
# number whose filter accepts it), so the brokers get the ENIs, or the part of
# their traffic, that a mirror module pointed at this NLB selects.

locals {
  vxlan_port = 4789

  package_s3 = regexall("^s3://([^/]+)/(.+)$", var.package_url)

  tags = merge(var.tags, { "mscope:role" = "broker" })
}

data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_ami" "this" {
  most_recent = true
  owners      = var.ami_id == null ? ["136693071363"] : null # Debian's AWS account

  filter {
    name   = var.ami_id == null ? "name" : "image-id"
    values = [var.ami_id == null ? "debian-12-amd64-*" : var.ami_id]
  }
}

# ---- network ----------------------------------------------------------------

# VXLAN from the mirror sources, health checks and metrics, SSH, egress (the
# tools, wherever they are; packages).
module "security_group" {
  source = "../vxlan_sg"

  name                = var.name
  description         = "Mirrorscope brokers"
  vpc_id              = var.vpc_id
  mirror_source_cidrs = var.mirror_source_cidrs
  http_port           = var.http_port
  ssh_cidrs           = var.ssh_cidrs
  tags                = local.tags
}

# One ENI, one broker (source_ip stickiness): a tool group's choice of member
# by connection is then made by one broker for both directions.
module "nlb" {
  source = "../vxlan_nlb"

  name                         = var.name
  vpc_id                       = var.vpc_id
  subnet_ids                   = var.subnet_ids
  health_check_port            = var.http_port
  health_check_path            = "/readyz"
  deregistration_delay_seconds = var.deregistration_delay_seconds
  tags                         = local.tags
}

# ---- identity ---------------------------------------------------------------

resource "aws_iam_role" "brokers" {
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

resource "aws_iam_role_policy" "package" {
  count = length(local.package_s3) > 0 ? 1 : 0

  name   = "mscope-package"
  role   = aws_iam_role.brokers.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "s3:GetObject"
      Resource = "arn:${data.aws_partition.current.partition}:s3:::${local.package_s3[0][0]}/${local.package_s3[0][1]}"
    }]
  })
}

resource "aws_iam_role_policy" "secret" {
  count = var.metrics_token_secret == null ? 0 : 1

  name   = "mscope-brokers-secret"
  role   = aws_iam_role.brokers.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "secretsmanager:GetSecretValue"
      Resource = var.metrics_token_secret.arn
    }]
  })
}

resource "aws_iam_instance_profile" "brokers" {
  name_prefix = "${var.name}-"
  role        = aws_iam_role.brokers.name
  tags        = local.tags
}

# ---- instances --------------------------------------------------------------

resource "aws_instance" "brokers" {
  count = var.instance_count

  ami                    = data.aws_ami.this.id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_ids[count.index % length(var.subnet_ids)]
  vpc_security_group_ids = [module.security_group.security_group_id]
  iam_instance_profile   = aws_iam_instance_profile.brokers.name
  key_name               = var.key_name
  tags                   = merge(local.tags, { Name = "${var.name}-${count.index}" })

  user_data_base64 = base64gzip(templatefile("${path.module}/cloud-init.yaml.tftpl", {
    node_lib       = file("${path.module}/../common/mscope-node.sh")
    region         = data.aws_region.current.id
    package_url    = var.package_url
    package_sha256 = var.package_sha256 == null ? "" : var.package_sha256
    http_port      = var.http_port
    secret_arn     = var.metrics_token_secret == null ? "" : var.metrics_token_secret.arn
    dedup          = var.dedup
    strip_vlan     = var.strip_vlan
    extra_config   = var.extra_config
    tools          = var.tools
    groups         = var.groups
  }))
  # The configuration is in the user data: a change replaces the broker (the
  # NLB moves its ENIs to the others meanwhile).
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size_gb
    encrypted             = true
    kms_key_id            = var.kms_key_id
    delete_on_termination = true
  }

  lifecycle {
    ignore_changes = [ami]
  }
}

resource "aws_lb_target_group_attachment" "brokers" {
  count = var.instance_count

  target_group_arn = module.nlb.target_group_arn
  target_id        = aws_instance.brokers[count.index].id
  port             = local.vxlan_port
}
