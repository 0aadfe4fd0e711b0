variable "region" {
  description = "AWS region of the VPC to mirror."
  type        = string
}

variable "name" {
  description = "Prefix of every name (at most 20 characters, so that \"NAME-recorders\" fits the NLB's 32)."
  type        = string
  default     = "mscope"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,19}$", var.name))
    error_message = "name: 1-20 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "vpc_id" {
  description = "The VPC whose interfaces are mirrored and where Mirrorscope runs."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets, one per Availability Zone with mirror sources (two at least for RDS). The coordinator goes into the first."
  type        = list(string)
}

variable "package_url" {
  description = "The Mirrorscope .deb (https:// or s3://bucket/key)."
  type        = string
}

variable "package_sha256" {
  description = "SHA-256 of the .deb; null: not checked."
  type        = string
  default     = null
}

variable "operator_cidrs" {
  description = "Networks allowed to the coordinator's REST API and RPC port (the mscope CLI)."
  type        = list(string)
}

variable "database" {
  description = "\"rds\" or \"embedded\" (see modules/coordinator)."
  type        = string
  default     = "rds"
}

variable "mirror_source_eni_ids" {
  description = "ENIs to mirror into the recorders."
  type        = list(string)
  default     = []
}

variable "mirror_source_instance_tags" {
  description = "Also mirror the primary ENI of running instances with these tags."
  type        = map(string)
  default     = {}
}

variable "mirror_source_cidrs" {
  description = "Addresses of the mirrored ENIs (allowed to send VXLAN). Empty: the VPC's CIDR."
  type        = list(string)
  default     = []
}

variable "mirror_filter_rules" {
  description = "Traffic Mirror filter rules (see modules/mirror); null accepts everything."
  type        = list(object({
    direction              = string
    rule_number            = number
    action                 = string
    protocol               = optional(number)
    source_cidr_block      = optional(string, "0.0.0.0/0")
    destination_cidr_block = optional(string, "0.0.0.0/0")
    source_ports           = optional(object({ from = number, to = number }))
    destination_ports      = optional(object({ from = number, to = number }))
    description            = optional(string)
  }))
  default = null
}

variable "packet_length" {
  description = "Mirror only the first N bytes of each packet (1-8500); null: whole packets."
  type        = number
  default     = null
}

variable "recorder_instance_type" {
  description = "Recorder instance type."
  type        = string
  default     = "c6in.xlarge"
}

variable "recorder_min_size" {
  description = "Fewest recorders."
  type        = number
  default     = 2
}

variable "recorder_max_size" {
  description = "Most recorders."
  type        = number
  default     = 6
}

variable "recorder_data_volume_size_gb" {
  description = "Packet store per recorder (GiB)."
  type        = number
  default     = 500
}

variable "recorder_drain_time_seconds" {
  description = "A stopping recorder's drain time, which is also the NLB's deregistration delay."
  type        = number
  default     = 15
}

variable "broker_count" {
  description = "Number of brokers; 0: none."
  type        = number
  default     = 0
}

variable "broker_tools" {
  description = "The tools the brokers feed (see modules/broker)."
  type        = any
  default     = []
}

variable "broker_source_eni_ids" {
  description = "ENIs mirrored into the brokers instead of the recorders (a packet of one ENI goes to one target)."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags on every resource (provider default_tags)."
  type        = map(string)
  default     = { project = "mirrorscope" }
}
