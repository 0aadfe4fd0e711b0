# A complete Mirrorscope cluster in one VPC: Traffic Mirroring into an NLB,
# recorders behind it, a coordinator with RDS or its own PostgreSQL, and
# optionally brokers that feed other tools.

module "coordinator" {
  source = "../../modules/coordinator"

  name           = "${var.name}-coordinator"
  vpc_id         = var.vpc_id
  subnet_id      = var.subnet_ids[0]
  operator_cidrs = var.operator_cidrs
  package_url    = var.package_url
  package_sha256 = var.package_sha256
  database       = var.database
  db_subnet_ids  = var.subnet_ids
}

module "recorders" {
  source = "../../modules/recorders"

  name                          = "${var.name}-recorders"
  vpc_id                        = var.vpc_id
  subnet_ids                    = var.subnet_ids
  mirror_source_cidrs           = var.mirror_source_cidrs
  instance_type                 = var.recorder_instance_type
  min_size                      = var.recorder_min_size
  max_size                      = var.recorder_max_size
  data_volume_size_gb           = var.recorder_data_volume_size_gb
  drain_time_seconds            = var.recorder_drain_time_seconds
  package_url                   = var.package_url
  package_sha256                = var.package_sha256
  coordinator_address           = module.coordinator.private_ip
  coordinator_security_group_id = module.coordinator.security_group_id
  recorders_secret_arn          = module.coordinator.recorders_secret_arn
}

module "mirror" {
  source = "../../modules/mirror"

  name                 = var.name
  target_nlb_arn       = module.recorders.nlb_arn
  source_eni_ids       = var.mirror_source_eni_ids
  source_instance_tags = var.mirror_source_instance_tags
  filter_rules         = var.mirror_filter_rules
  packet_length        = var.packet_length
}

module "broker" {
  source = "../../modules/broker"
  count  = var.broker_count > 0 ? 1 : 0

  name                = "${var.name}-brokers"
  instance_count      = var.broker_count
  vpc_id              = var.vpc_id
  subnet_ids          = var.subnet_ids
  mirror_source_cidrs = var.mirror_source_cidrs
  package_url         = var.package_url
  package_sha256      = var.package_sha256
  tools               = var.broker_tools

  # The cluster's metrics token, for the brokers' /metrics.
  metrics_token_secret = { arn = module.coordinator.brokers_secret_arn }
}

module "broker_mirror" {
  source = "../../modules/mirror"
  count  = var.broker_count > 0 && length(var.broker_source_eni_ids) > 0 ? 1 : 0

  name           = "${var.name}-brokers"
  target_nlb_arn = module.broker[0].nlb_arn
  source_eni_ids = var.broker_source_eni_ids
  # Should an ENI also be in mirror_source_eni_ids, the recorders' session
  # (number 1) takes its packets first.
  session_number = 2
  packet_length  = var.packet_length
}
