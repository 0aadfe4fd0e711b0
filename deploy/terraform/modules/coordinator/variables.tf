variable "name" {
  description = "Prefix of the coordinator's resources (instance, security groups, IAM role, secret, RDS identifier): letters, digits, hyphens."
  type        = string
  default     = "mscope-coordinator"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,40}[a-z0-9]$", var.name))
    error_message = "name: 2-42 lower-case letters, digits or hyphens, starting with a letter (RDS identifier rules)."
  }
}

variable "vpc_id" {
  description = "VPC of the coordinator."
  type        = string
}

variable "subnet_id" {
  description = "Private subnet of the coordinator instance (its data volume lives in the same Availability Zone)."
  type        = string
}

variable "private_ip" {
  description = "Private address of the coordinator (in subnet_id). null: AWS picks one; either way it stays when the instance is replaced."
  type        = string
  default     = null
}

variable "operator_cidrs" {
  description = "The only addresses allowed to the REST API (http_port) and the RPC port: operators' networks, a bastion. The RPC is CURVE-encrypted and needs an allowed key and the token; the REST API needs a token and speaks HTTPS (http_tls)."
  type        = list(string)

  validation {
    condition     = length(var.operator_cidrs) > 0 && alltrue([for c in var.operator_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "operator_cidrs must be one or more IPv4 CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "instance_type" {
  description = "Coordinator instance type; with the embedded database it also runs PostgreSQL."
  type        = string
  default     = "m6i.large"
}

variable "ami_id" {
  description = "AMI (Debian 12 or a derivative). null: the newest official Debian 12 amd64 AMI at the first apply; later AMIs do not replace the instance."
  type        = string
  default     = null
}

variable "data_volume_size_gb" {
  description = "Size of the encrypted data volume (GiB): tokens, the spool kept while PostgreSQL is away, and with database = \"embedded\" the flow records."
  type        = number
  default     = 200

  validation {
    condition     = var.data_volume_size_gb >= 10 && var.data_volume_size_gb <= 16384
    error_message = "data_volume_size_gb must be from 10 to 16384."
  }
}

variable "root_volume_size_gb" {
  description = "Size of the encrypted root volume (GiB)."
  type        = number
  default     = 16
}

variable "kms_key_id" {
  description = "KMS key ARN for the EBS volumes and the RDS storage; null: the account's default keys."
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

variable "database" {
  description = "\"rds\": an RDS PostgreSQL instance whose master password RDS keeps in Secrets Manager; \"embedded\": the coordinator runs PostgreSQL on its own data volume (no extra cost, no failover)."
  type        = string
  default     = "embedded"

  validation {
    condition     = contains(["rds", "embedded"], var.database)
    error_message = "database must be \"rds\" or \"embedded\"."
  }
}

variable "db_subnet_ids" {
  description = "Subnets of the RDS subnet group (two Availability Zones at least); used when database = \"rds\"."
  type        = list(string)
  default     = []
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.m6g.large"
}

variable "db_engine_version" {
  description = "PostgreSQL major version on RDS (14 or later: the flows table uses BRIN minmax-multi)."
  type        = string
  default     = "16"

  validation {
    condition     = can(regex("^[0-9]+", var.db_engine_version)) && tonumber(regex("^[0-9]+", var.db_engine_version)) >= 14
    error_message = "db_engine_version must be PostgreSQL 14 or later."
  }
}

variable "db_allocated_storage_gb" {
  description = "Initial RDS storage (GiB)."
  type        = number
  default     = 100
}

variable "db_max_allocated_storage_gb" {
  description = "RDS storage autoscaling limit (GiB); size it with retention_days and the flow rate."
  type        = number
  default     = 1000
}

variable "db_multi_az" {
  description = "A standby in a second Availability Zone (doubles the database cost)."
  type        = bool
  default     = false
}

variable "db_backup_retention_days" {
  description = "Days of RDS automated backups."
  type        = number
  default     = 7
}

variable "db_deletion_protection" {
  description = "Refuse to delete the RDS instance (set false before a destroy)."
  type        = bool
  default     = true
}

variable "db_name" {
  description = "Database name on RDS."
  type        = string
  default     = "mscope"
}

variable "db_username" {
  description = "RDS master user, which the coordinator uses; its password is generated and rotated by RDS in Secrets Manager."
  type        = string
  default     = "mscope"
}

variable "pgpass_refresh_minutes" {
  description = "How often the instance rewrites its pgpass file from the secret: RDS rotates the managed password (every 7 days by default), and libpq reads the file at each new connection."
  type        = number
  default     = 5

  validation {
    condition     = var.pgpass_refresh_minutes >= 1 && var.pgpass_refresh_minutes <= 1440
    error_message = "pgpass_refresh_minutes must be from 1 to 1440."
  }
}

variable "retention_days" {
  description = "Days of flow records kept (--retention-days); 0 keeps everything."
  type        = number
  default     = 30
}

variable "extra_config" {
  description = "More coordinator options as 'key = value' lines in /etc/mscope/coordinator.conf (names as in mscope-coordinator --help)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.extra_config :
      can(regex("^[a-z][a-z-]*$", k)) && !can(regex("[#\\n]", v)) &&
      !contains(["data-dir", "db", "bus", "rpc", "http", "http-cert", "http-key", "retention-days", "key-file", "allow-dir", "insecure"], k)
    ])
    error_message = "extra_config: option names in lower case; values without '#' or newlines; the options this module sets itself are not allowed."
  }
}

variable "bus_port" {
  description = "Bus port (--bus) the recorders publish to; the recorders module opens it to them."
  type        = number
  default     = 5556
}

variable "rpc_port" {
  description = "RPC port (--rpc) of the mscope CLI; open to operator_cidrs only."
  type        = number
  default     = 5555
}

variable "http_port" {
  description = "REST API, /healthz, /readyz and /metrics (--http); open to operator_cidrs only."
  type        = number
  default     = 8080
}

variable "http_tls" {
  description = "HTTPS on http_port (REST API, dashboard, /metrics): the cluster's first coordinator makes a certificate for its private address (self-signed, ECDSA P-256, 825 days, made again by a daily timer 30 days before it expires or when the address changes) and keeps it in the cluster secret, so a rebuilt one serves the same; clients trust it once (README.md). false: plain HTTP, e.g. behind a load balancer that terminates TLS."
  type        = bool
  default     = true
}

variable "secret_recovery_days" {
  description = "Days a deleted cluster or recorders' secret (token and keys) can be restored (0 deletes at once, 7-30 otherwise)."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_days == 0 || (var.secret_recovery_days >= 7 && var.secret_recovery_days <= 30)
    error_message = "secret_recovery_days must be 0 or from 7 to 30."
  }
}

variable "ssh_cidrs" {
  description = "Addresses allowed to SSH to the coordinator (to read its API tokens, for instance). Empty: none."
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
