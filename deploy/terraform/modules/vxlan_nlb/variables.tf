variable "name" {
  description = "Name of the NLB and its target group (at most 32 characters: letters, digits, hyphens)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?$", var.name))
    error_message = "name: 1-32 letters, digits or hyphens, not starting or ending with a hyphen (NLB and target group names)."
  }
}

variable "vpc_id" {
  description = "VPC of the target group."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the NLB, one per Availability Zone that has mirror sources."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "Give at least one subnet."
  }
}

variable "health_check_port" {
  description = "The targets' HTTP port, where the NLB checks health_check_path."
  type        = number
}

variable "health_check_path" {
  description = "HTTP path of the health check: 200 when the target takes the feed."
  type        = string
  default     = "/readyz"
}

variable "deregistration_delay_seconds" {
  description = "How long the NLB keeps sending a leaving target its flows (connection_termination then closes them)."
  type        = number

  validation {
    condition     = var.deregistration_delay_seconds >= 0 && var.deregistration_delay_seconds <= 3600
    error_message = "deregistration_delay_seconds must be from 0 to 3600."
  }
}

variable "tags" {
  description = "Tags on the NLB, the target group and the listener."
  type        = map(string)
  default     = {}
}
