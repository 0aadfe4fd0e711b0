variable "name" {
  description = "Name of the brokers' NLB and target group, and prefix of their other resources (at most 32 characters: letters, digits, hyphens)."
  type        = string
  default     = "mscope-brokers"

  validation {
    condition     = can(regex("^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$", var.name))
    error_message = "name: 1-32 letters, digits or hyphens, not starting or ending with a hyphen."
  }
}

variable "instance_count" {
  description = "Number of brokers behind the NLB; each mirrored ENI goes to one of them."
  type        = number
  default     = 1

  validation {
    condition     = var.instance_count >= 1 && var.instance_count <= 20
    error_message = "instance_count must be from 1 to 20."
  }
}

variable "vpc_id" {
  description = "VPC of the brokers and their NLB."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the NLB; brokers are spread over them in turn."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "Give at least one subnet."
  }
}

variable "mirror_source_cidrs" {
  description = "Addresses of the mirrored ENIs, the only senders allowed to UDP 4789. Empty: the VPC's CIDR."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.mirror_source_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "mirror_source_cidrs must be IPv4 CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "instance_type" {
  description = "Broker instance type: one packet thread, so network bandwidth matters more than cores (the feed comes in once and goes out once per tool)."
  type        = string
  default     = "c6in.large"
}

variable "ami_id" {
  description = "AMI (Debian 12 or a derivative). null: the newest official Debian 12 amd64 AMI at the first apply."
  type        = string
  default     = null
}

variable "root_volume_size_gb" {
  description = "Size of the encrypted root volume (GiB)."
  type        = number
  default     = 16
}

variable "kms_key_id" {
  description = "KMS key ARN for the root volumes; null: the account's default EBS key."
  type        = string
  default     = null
}

variable "package_url" {
  description = "The Mirrorscope .deb: https://... or s3://bucket/key."
  type        = string

  validation {
    condition     = can(regex("^(https://|s3://[^/]+/)[^'\\s]+\\.deb$", var.package_url))
    error_message = "package_url must be an https:// or s3://bucket/key URL of a .deb."
  }
}

variable "package_sha256" {
  description = "SHA-256 of the .deb; null: not checked."
  type        = string
  default     = null

  validation {
    condition     = var.package_sha256 == null ? true : can(regex("^[0-9a-f]{64}$", var.package_sha256))
    error_message = "package_sha256 must be 64 lowercase hex digits."
  }
}

variable "http_port" {
  description = "The brokers' HTTP port (--http): /readyz is the NLB's health check."
  type        = number
  default     = 8082
}

variable "metrics_token_secret" {
  description = "The Secrets Manager secret holding the cluster's metrics token, as { arn = modules/coordinator's brokers_secret_arn }: each broker copies the token to /etc/mscope/metrics.token (0600) at boot and its /metrics asks for it; the brokers may read nothing else. An object rather than a bare ARN so that the plan knows there is one while the ARN is still unknown (a secret made in the same apply). null: /metrics stays open, e.g. brokers without a coordinator."
  type = object({
    arn = string
  })
  default = null
}

variable "deregistration_delay_seconds" {
  description = "How long the NLB keeps sending a leaving broker its flows."
  type        = number
  default     = 15

  validation {
    condition     = var.deregistration_delay_seconds >= 0 && var.deregistration_delay_seconds <= 3600
    error_message = "deregistration_delay_seconds must be from 0 to 3600."
  }
}

variable "dedup" {
  description = "Drop the second copy of a packet when both its ends are mirrored (broker option dedup)."
  type        = bool
  default     = false
}

variable "strip_vlan" {
  description = "Remove VLAN tags before the tools see frames (broker option strip-vlan)."
  type        = bool
  default     = false
}

variable "tools" {
  description = "The security tools the brokers feed, one [tool] section each (docs/BROKER.md): type vxlan (dest HOST[:PORT], vni required), udp (dest HOST:PORT) or gre (dest HOST); filter a tcpdump expression (empty: every packet) with action pass or drop; slice bytes kept (0: whole frame); mask_payload zeroes what follows the L4 header. Tools that are members of a group take their rules from the group."
  type        = list(object({
    name         = string
    type         = string
    dest         = string
    vni          = optional(number)
    filter       = optional(string, "")
    action       = optional(string, "pass")
    slice        = optional(number, 0)
    mask_payload = optional(bool, false)
  }))

  validation {
    condition     = length(var.tools) > 0 && length(distinct([for t in var.tools : t.name])) == length(var.tools)
    error_message = "Give at least one tool, each with its own name."
  }

  validation {
    condition = alltrue([
      for t in var.tools :
      can(regex("^[A-Za-z0-9._-]+$", t.name)) && contains(["vxlan", "udp", "gre"], t.type) &&
      contains(["pass", "drop"], t.action) && (t.type != "vxlan" || t.vni != null)
    ])
    error_message = "Tool names are letters, digits, '.', '_', '-'; type vxlan (with a vni), udp or gre; action pass or drop."
  }

  validation {
    condition     = alltrue([for t in var.tools : !can(regex("[#\\n]", "${t.dest}${t.filter}"))])
    error_message = "dest and filter must not contain '#' (a comment in the configuration file) or newlines."
  }
}

variable "groups" {
  description = "Tools sharing the load by connection, one [group] section each: the members' names, and the group's rules."
  type        = map(object({
    members      = list(string)
    filter       = optional(string, "")
    action       = optional(string, "pass")
    slice        = optional(number, 0)
    mask_payload = optional(bool, false)
  }))
  default = {}

  validation {
    condition = alltrue([
      for g, v in var.groups :
      can(regex("^[A-Za-z0-9._-]+$", g)) && length(v.members) > 0 && contains(["pass", "drop"], v.action) &&
      !can(regex("[#\\n]", v.filter))
    ])
    error_message = "Group names are letters, digits, '.', '_', '-'; each group has members; action pass or drop; no '#' or newline in filter."
  }
}

variable "extra_config" {
  description = "More global broker options as 'key = value' lines (e.g. { dedup-window = \"20ms\" })."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.extra_config :
      can(regex("^[a-z][a-z-]*$", k)) && !can(regex("[#\\n]", v)) &&
      !contains(["listen", "http", "dedup", "strip-vlan", "stats-file", "interface", "read"], k)
    ])
    error_message = "extra_config: option names in lower case; values without '#' or newlines; the options this module sets itself are not allowed."
  }
}

variable "ssh_cidrs" {
  description = "Addresses allowed to SSH to the brokers. Empty: none."
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
