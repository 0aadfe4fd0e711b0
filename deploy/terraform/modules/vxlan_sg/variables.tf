variable "name" {
  description = "Name prefix and Name tag of the security group."
  type        = string
}

variable "description" {
  description = "Description of the security group (changing it replaces the group)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the security group; its CIDR is where health checks and metrics come from."
  type        = string
}

variable "mirror_source_cidrs" {
  description = "Addresses of the mirrored ENIs: the only senders allowed to UDP 4789. Empty: the VPC's CIDR."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.mirror_source_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "mirror_source_cidrs must be IPv4 CIDR blocks, and not 0.0.0.0/0: VXLAN has no authentication."
  }
}

variable "http_port" {
  description = "The targets' HTTP port (health checks and metrics), open to the VPC's CIDR."
  type        = number
}

variable "ssh_cidrs" {
  description = "Addresses allowed to SSH to the targets. Empty: none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ssh_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "ssh_cidrs must be IPv4 CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "tags" {
  description = "Tags on the security group."
  type        = map(string)
  default     = {}
}
