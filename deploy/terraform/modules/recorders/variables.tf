variable "name" {
  description = "Name of the NLB, its target group, the Auto Scaling group and the IAM role (at most 32 characters: letters, digits, hyphens)."
  type        = string
  default     = "mscope-recorders"

  validation {
    condition     = can(regex("^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$", var.name))
    error_message = "name: 1-32 letters, digits or hyphens, not starting or ending with a hyphen (NLB and target group names)."
  }
}

variable "vpc_id" {
  description = "VPC of the recorders and their NLB."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the NLB and the recorders, one per Availability Zone that has mirror sources."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "Give at least one subnet."
  }
}

variable "mirror_source_cidrs" {
  description = "Addresses of the mirrored ENIs: the only senders allowed to UDP 4789 (the NLB keeps the client address for UDP, so the recorders see the sources). Empty: the VPC's CIDR."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.mirror_source_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "mirror_source_cidrs must be IPv4 CIDR blocks, and not 0.0.0.0/0: VXLAN has no authentication, anyone who can reach 4789 can write into the store."
  }
}

variable "instance_type" {
  description = "Recorder instance type. Four vCPUs keep receive, writer, analysis and search threads apart; network bandwidth must exceed the mirrored traffic plus 54 bytes per packet."
  type        = string
  default     = "c6in.xlarge"
}

variable "ami_id" {
  description = "AMI for the recorders (Debian 12 or a derivative with apt and systemd). null: the newest official Debian 12 amd64 AMI."
  type        = string
  default     = null
}

variable "min_size" {
  description = "Fewest recorders. Two or more, so that a mirrored ENI has somewhere to go while one is replaced."
  type        = number
  default     = 2

  validation {
    condition     = var.min_size >= 1
    error_message = "min_size must be at least 1."
  }
}

variable "max_size" {
  description = "Most recorders the CPU target may scale out to."
  type        = number
  default     = 6

  validation {
    condition     = var.max_size >= 1 && var.max_size <= 100
    error_message = "max_size must be from 1 to 100."
  }
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation the Auto Scaling group keeps by adding recorders."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be from 10 to 90."
  }
}

variable "allow_scale_in" {
  description = "Let the CPU policy also remove recorders. Off by default: a recorder that leaves takes its store (the packets it recorded) with it."
  type        = bool
  default     = false
}

variable "data_volume_size_gb" {
  description = "Size of each recorder's encrypted data volume (GiB): the packet store, so the retention window is about size / mirrored bytes per second."
  type        = number
  default     = 500

  validation {
    condition     = var.data_volume_size_gb >= 20 && var.data_volume_size_gb <= 16384
    error_message = "data_volume_size_gb must be from 20 to 16384."
  }
}

variable "data_volume_type" {
  description = "EBS type of the data volume: gp3 (default), io2, or st1 (cheap sequential writes, slower searches; at least 125 GiB)."
  type        = string
  default     = "gp3"

  validation {
    condition     = contains(["gp3", "io2", "st1"], var.data_volume_type)
    error_message = "data_volume_type must be gp3, io2 or st1."
  }
}

variable "data_volume_iops" {
  description = "Provisioned IOPS of a gp3 or io2 data volume."
  type        = number
  default     = 3000

  validation {
    condition     = var.data_volume_iops >= 3000 && var.data_volume_iops <= 64000
    error_message = "data_volume_iops must be from 3000 to 64000."
  }
}

variable "data_volume_throughput" {
  description = "Throughput of a gp3 data volume in MiB/s; must exceed the mirrored bytes per second."
  type        = number
  default     = 250

  validation {
    condition     = var.data_volume_throughput >= 125 && var.data_volume_throughput <= 1000
    error_message = "data_volume_throughput must be from 125 to 1000 MiB/s."
  }
}

variable "root_volume_size_gb" {
  description = "Size of the encrypted root volume (GiB)."
  type        = number
  default     = 16
}

variable "kms_key_id" {
  description = "KMS key ARN for the EBS volumes; null: the account's default EBS key."
  type        = string
  default     = null
}

variable "package_url" {
  description = "The Mirrorscope .deb: https://... (fetched with curl) or s3://bucket/key (fetched with the instance role)."
  type        = string

  validation {
    condition     = can(regex("^(https://|s3://[^/]+/)[^'\\s]+\\.deb$", var.package_url))
    error_message = "package_url must be an https:// or s3://bucket/key URL of a .deb."
  }
}

variable "package_sha256" {
  description = "SHA-256 of the .deb; the instance refuses a package that does not match. null: not checked."
  type        = string
  default     = null

  validation {
    condition     = var.package_sha256 == null ? true : can(regex("^[0-9a-f]{64}$", var.package_sha256))
    error_message = "package_sha256 must be 64 lowercase hex digits."
  }
}

variable "coordinator_address" {
  description = "Private IP address or DNS name of the coordinator; the recorders publish to tcp://ADDRESS:bus_port."
  type        = string
}

variable "coordinator_security_group_id" {
  description = "Security group of the coordinator: it alone may reach the recorders' search port, and this module opens the coordinator's bus port to the recorders."
  type        = string
}

variable "recorders_secret_arn" {
  description = "Secrets Manager secret the coordinator fills at its first boot (modules/coordinator's recorders_secret_arn): the search token, the metrics token, the recorders' CURVE key pair and the coordinator's public key, copied to each recorder at boot (0600); the recorders may read nothing else."
  type        = string
}

variable "bus_port" {
  description = "The coordinator's bus port (its --bus)."
  type        = number
  default     = 5556
}

variable "search_port" {
  description = "The recorders' search service port (--search), reachable from the coordinator only."
  type        = number
  default     = 5557
}

variable "http_port" {
  description = "The recorders' HTTP port (--http): /readyz is the NLB's health check, /metrics Prometheus'."
  type        = number
  default     = 8081
}

variable "drain_time_seconds" {
  description = "How long a stopping recorder keeps recording with /readyz at 503. One value feeds both the recorder's drain-time and the target group's deregistration delay, so the NLB moves flows away exactly while the recorder still records them."
  type        = number
  default     = 15

  validation {
    condition     = var.drain_time_seconds >= 0 && var.drain_time_seconds <= 3600 && floor(var.drain_time_seconds) == var.drain_time_seconds
    error_message = "drain_time_seconds must be an integer from 0 to 3600 (the target group's limit)."
  }
}

variable "rx_threads" {
  description = "UDP receive threads per recorder (--rx-threads)."
  type        = number
  default     = 2

  validation {
    condition     = var.rx_threads >= 1 && var.rx_threads <= 64
    error_message = "rx_threads must be from 1 to 64."
  }
}

variable "extra_config" {
  description = "More recorder options, written as 'key = value' lines into /etc/mscope/recorder.conf (names as in mscope-recorder --help, e.g. { max-disk = \"800G\", flow-idle = \"120s\" })."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.extra_config :
      can(regex("^[a-z][a-z-]*$", k)) && !can(regex("[#\\n]", v)) &&
      !contains(["data-dir", "listen", "coordinator", "http", "drain-time", "search", "search-token-file", "node-id", "search-endpoint", "key-file", "coordinator-key", "insecure"], k)
    ])
    error_message = "extra_config: option names in lower case; values without '#' or newlines; the options this module sets itself are not allowed."
  }
}

variable "launch_timeout_seconds" {
  description = "How long a new recorder may take to answer /readyz 200 before Auto Scaling abandons it (launch lifecycle hook heartbeat)."
  type        = number
  default     = 900

  validation {
    condition     = var.launch_timeout_seconds >= 30 && var.launch_timeout_seconds <= 7200
    error_message = "launch_timeout_seconds must be from 30 to 7200."
  }
}

variable "terminate_timeout_seconds" {
  description = "How long a leaving recorder may take to drain, seal its segment and publish its last records (terminate lifecycle hook heartbeat); raised to drain_time_seconds + 60 if shorter."
  type        = number
  default     = 300

  validation {
    condition     = var.terminate_timeout_seconds >= 30 && var.terminate_timeout_seconds <= 7200
    error_message = "terminate_timeout_seconds must be from 30 to 7200."
  }
}

variable "health_check_grace_seconds" {
  description = "Time after a recorder enters service before failed NLB health checks make Auto Scaling replace it."
  type        = number
  default     = 300
}

variable "detailed_monitoring" {
  description = "1-minute EC2 metrics, so that the CPU target reacts in minutes rather than tens of minutes (billed per instance)."
  type        = bool
  default     = true
}

variable "ssh_cidrs" {
  description = "Addresses allowed to SSH to the recorders. Empty: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ssh_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "ssh_cidrs must be IPv4 CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "key_name" {
  description = "EC2 key pair for SSH; null: none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
