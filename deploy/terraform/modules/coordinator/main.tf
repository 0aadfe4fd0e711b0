# The coordinator: one instance with its state on a separate encrypted volume
# (tokens, spool and, when embedded, PostgreSQL), so that replacing the
# instance keeps them; the database is RDS or embedded.
#
# No secret goes through Terraform's state or a command line: RDS generates
# the database password in Secrets Manager; the coordinator generates the
# cluster's search token and CURVE keys and keeps them in the cluster secret,
# and what the recorders need (not its own key) in a second one they may read.

locals {
  rds = var.database == "rds"

  package_s3 = regexall("^s3://([^/]+)/(.+)$", var.package_url)

  tags = merge(var.tags, { "mscope:role" = "coordinator" })
}

data "aws_partition" "current" {}
data "aws_region" "current" {}

data "aws_subnet" "this" {
  id = var.subnet_id
}

data "aws_ami" "this" {
  most_recent = true
  owners      = var.ami_id == null ? ["136693071363"] : null # Debian's AWS account

  filter {
    name   = var.ami_id == null ? "name" : "image-id"
    values = [var.ami_id == null ? "debian-12-amd64-*" : var.ami_id]
  }
}

# ---- network ----------------------------------------------------------------

resource "aws_security_group" "coordinator" {
  name_prefix = "${var.name}-"
  description = "Mirrorscope coordinator"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = var.name })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "http" {
  for_each = toset(var.operator_cidrs)

  security_group_id = aws_security_group.coordinator.id
  description       = "REST API from operators"
  ip_protocol       = "tcp"
  from_port         = var.http_port
  to_port           = var.http_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "rpc" {
  for_each = toset(var.operator_cidrs)

  security_group_id = aws_security_group.coordinator.id
  description       = "RPC (mscope CLI) from operators"
  ip_protocol       = "tcp"
  from_port         = var.rpc_port
  to_port           = var.rpc_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each = toset(var.ssh_cidrs)

  security_group_id = aws_security_group.coordinator.id
  description       = "SSH"
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
  cidr_ipv4         = each.value
}

# Searches go out to every recorder; packages, Secrets Manager, RDS.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.coordinator.id
  description       = "everything out"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

# ---- database (RDS) ---------------------------------------------------------

resource "aws_security_group" "db" {
  count = local.rds ? 1 : 0

  name_prefix = "${var.name}-db-"
  description = "Mirrorscope PostgreSQL"
  vpc_id      = var.vpc_id
  tags        = merge(local.tags, { Name = "${var.name}-db" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "db" {
  count = local.rds ? 1 : 0

  security_group_id            = aws_security_group.db[0].id
  description                  = "PostgreSQL from the coordinator"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.coordinator.id
}

resource "aws_db_subnet_group" "this" {
  count = local.rds ? 1 : 0

  name_prefix = "${var.name}-"
  subnet_ids  = var.db_subnet_ids
  tags        = local.tags

  lifecycle {
    precondition {
      condition     = length(var.db_subnet_ids) >= 2
      error_message = "database = \"rds\" needs db_subnet_ids in two Availability Zones at least."
    }
  }
}

resource "aws_db_instance" "this" {
  count = local.rds ? 1 : 0

  identifier     = var.name
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class
  db_name        = var.db_name
  username       = var.db_username
  # RDS generates the password, keeps it in Secrets Manager and rotates it:
  # it is never in Terraform's state, a variable or a command line.
  manage_master_user_password = true

  allocated_storage     = var.db_allocated_storage_gb
  max_allocated_storage = var.db_max_allocated_storage_gb
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_id

  db_subnet_group_name   = aws_db_subnet_group.this[0].name
  vpc_security_group_ids = [aws_security_group.db[0].id]
  publicly_accessible    = false
  multi_az               = var.db_multi_az

  backup_retention_period    = var.db_backup_retention_days
  deletion_protection        = var.db_deletion_protection
  skip_final_snapshot        = false
  final_snapshot_identifier  = "${var.name}-final"
  copy_tags_to_snapshot      = true
  auto_minor_version_upgrade = true
  tags                       = local.tags
}

# ---- the cluster's keys -----------------------------------------------------

# Created empty: the coordinator fills it at first boot (search token, its
# CURVE key pair, the recorders' shared pair), copies the recorders' part
# into the recorders' secret below, and a rebuilt coordinator takes its
# identity back from it.
resource "aws_secretsmanager_secret" "cluster" {
  name_prefix             = "${var.name}-cluster-"
  description             = "Mirrorscope: search token and CURVE keys of the coordinator and the recorders"
  recovery_window_in_days = var.secret_recovery_days
  tags                    = local.tags
}

# What the recorders need and no more: the search token, their shared key
# pair and the coordinator's public key, copied from the cluster secret by
# the coordinator at its first boot. The recorders' role may read only this
# one: with the coordinator's own key, in the cluster secret, a recorder -
# the most exposed machine - could search every other recorder's packets.
resource "aws_secretsmanager_secret" "recorders" {
  name_prefix             = "${var.name}-recorders-"
  description             = "Mirrorscope: the search token, the recorders' CURVE key pair and the coordinator's public key"
  recovery_window_in_days = var.secret_recovery_days
  tags                    = local.tags
}

# What the brokers need: the metrics token alone, which their /metrics asks
# for (modules/broker's metrics_token_secret). A broker holds no key and no
# search token: it only sends packets on, and needs neither.
resource "aws_secretsmanager_secret" "brokers" {
  name_prefix             = "${var.name}-brokers-"
  description             = "Mirrorscope: the metrics token the brokers' /metrics asks for"
  recovery_window_in_days = var.secret_recovery_days
  tags                    = local.tags
}

# ---- identity ---------------------------------------------------------------

resource "aws_iam_role" "coordinator" {
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

resource "aws_iam_role_policy" "coordinator" {
  name   = "mscope-coordinator"
  role   = aws_iam_role.coordinator.id
  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(
      [{
        Sid      = "ClusterSecret"
        Effect   = "Allow"
        Action   = ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:ListSecretVersionIds"]
        Resource = aws_secretsmanager_secret.cluster.arn
      }, {
        Sid      = "RecordersSecret"
        Effect   = "Allow"
        Action   = "secretsmanager:PutSecretValue"
        Resource = aws_secretsmanager_secret.recorders.arn
      }, {
        Sid      = "BrokersSecret"
        Effect   = "Allow"
        Action   = "secretsmanager:PutSecretValue"
        Resource = aws_secretsmanager_secret.brokers.arn
      }],
      [
        for db in aws_db_instance.this : {
          Sid      = "DatabasePassword"
          Effect   = "Allow"
          Action   = "secretsmanager:GetSecretValue"
          Resource = db.master_user_secret[0].secret_arn
        }
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

resource "aws_iam_instance_profile" "coordinator" {
  name_prefix = "${var.name}-"
  role        = aws_iam_role.coordinator.name
  tags        = local.tags
}

# ---- instance ---------------------------------------------------------------

resource "aws_ebs_volume" "data" {
  availability_zone = data.aws_subnet.this.availability_zone
  type              = "gp3"
  size              = var.data_volume_size_gb
  encrypted         = true
  kms_key_id        = var.kms_key_id
  tags              = merge(local.tags, { Name = "${var.name}-data" })
}

# The coordinator's address is in every recorder's configuration: it lives on
# this interface, which outlives a replaced instance.
resource "aws_network_interface" "coordinator" {
  subnet_id       = var.subnet_id
  private_ips     = var.private_ip == null ? null : [var.private_ip]
  security_groups = [aws_security_group.coordinator.id]
  description     = "${var.name}: the coordinator's stable address"
  tags            = merge(local.tags, { Name = var.name })
}

resource "aws_instance" "coordinator" {
  ami                  = data.aws_ami.this.id
  instance_type        = var.instance_type
  iam_instance_profile = aws_iam_instance_profile.coordinator.name
  key_name             = var.key_name
  tags                 = merge(local.tags, { Name = var.name })

  network_interface {
    network_interface_id = aws_network_interface.coordinator.id
    device_index         = 0
  }

  user_data_base64 = base64gzip(templatefile("${path.module}/cloud-init.yaml.tftpl", {
    node_lib       = file("${path.module}/../common/mscope-node.sh")
    helper_sandbox = file("${path.module}/../common/helper-sandbox.conf")
    region         = data.aws_region.current.id
    package_url    = var.package_url
    package_sha256 = var.package_sha256 == null ? "" : var.package_sha256
    # Nitro instances name EBS volumes by id under /dev/disk/by-id; Xen ones
    # use the attachment's device name.
    data_disks           = "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${replace(aws_ebs_volume.data.id, "-", "")} /dev/xvdf"
    cluster_secret_arn   = aws_secretsmanager_secret.cluster.arn
    recorders_secret_arn = aws_secretsmanager_secret.recorders.arn
    brokers_secret_arn   = aws_secretsmanager_secret.brokers.arn
    bus_port             = var.bus_port
    rpc_port             = var.rpc_port
    http_port            = var.http_port
    http_tls             = var.http_tls
    private_ip           = aws_network_interface.coordinator.private_ip
    retention_days       = var.retention_days
    extra_config         = var.extra_config
    rds                  = local.rds
    db_host              = local.rds ? aws_db_instance.this[0].address : ""
    db_port              = local.rds ? aws_db_instance.this[0].port : 5432
    db_name              = var.db_name
    db_user              = var.db_username
    db_secret_arn        = local.rds ? aws_db_instance.this[0].master_user_secret[0].secret_arn : ""
    pgpass_refresh_min   = var.pgpass_refresh_minutes
  }))
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
    # A newer Debian AMI would replace the coordinator at the next apply.
    ignore_changes = [ami]
  }
}

resource "aws_volume_attachment" "data" {
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data.id
  instance_id = aws_instance.coordinator.id
  # Let the coordinator stop cleanly (spool, embedded PostgreSQL) first.
  stop_instance_before_detaching = true
}
