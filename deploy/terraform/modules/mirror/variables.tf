variable "name" {
  description = "Prefix of every name and description this module creates."
  type        = string
  default     = "mscope"
}

variable "target_nlb_arn" {
  description = "ARN of the Network Load Balancer that receives the mirrored packets (the recorders' or the brokers' NLB; it must have a UDP 4789 listener)."
  type        = string

  validation {
    condition     = can(regex("^arn:[^:]+:elasticloadbalancing:[^:]+:[0-9]+:loadbalancer/net/", var.target_nlb_arn))
    error_message = "target_nlb_arn must be the ARN of a Network Load Balancer (arn:...:loadbalancer/net/...)."
  }
}

variable "source_eni_ids" {
  description = "Network interfaces to mirror, by id. Only type \"interface\" ENIs of Nitro instances can be mirrored; NAT gateway and load balancer ENIs are refused at plan time."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for id in var.source_eni_ids : can(regex("^eni-[0-9a-f]{8,17}$", id))])
    error_message = "source_eni_ids must be ENI ids (eni-0123456789abcdef0)."
  }
}

variable "source_instance_tags" {
  description = "Mirror the primary ENI of every running instance carrying all of these tags (e.g. { mirror = \"yes\" }). Empty: no instance is selected by tags. Instances tagged mscope:role (Mirrorscope's own) are never selected."
  type        = map(string)
  default     = {}
}

variable "session_number" {
  description = "Session number of every session created here (1-32766). When an ENI has several sessions (at most 3), the lowest-numbered one whose filter accepts a packet mirrors it and the others do not: give a second mirror module on the same ENIs a different number."
  type        = number
  default     = 1

  validation {
    condition     = var.session_number >= 1 && var.session_number <= 32766 && floor(var.session_number) == var.session_number
    error_message = "session_number must be an integer from 1 to 32766."
  }
}

variable "virtual_network_ids" {
  description = "VXLAN network id (VNI) per source ENI id. ENIs not listed get the last 6 hex digits of their ENI id as VNI, so a VNI stays the same across applies and names its source."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.virtual_network_ids) : v >= 0 && v <= 16777215 && floor(v) == v])
    error_message = "A VNI is an integer from 0 to 16777215 (24 bits)."
  }
}

variable "packet_length" {
  description = "Mirror only the first N bytes of each packet (1-8500 for an NLB target); null mirrors whole packets (AWS then cuts at 8500 bytes)."
  type        = number
  default     = null

  validation {
    condition     = var.packet_length == null ? true : (var.packet_length >= 1 && var.packet_length <= 8500)
    error_message = "packet_length must be null or from 1 to 8500."
  }
}

variable "network_services" {
  description = "Traffic AWS does not mirror unless asked: [\"amazon-dns\"] adds queries to the VPC's resolver."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.network_services : s == "amazon-dns"])
    error_message = "The only network service AWS mirrors on request is \"amazon-dns\"."
  }
}

variable "filter_rules" {
  description = "Traffic Mirror filter rules. direction ingress or egress; the lowest rule_number that matches decides (accept or reject); protocol null = all, else an IANA number (6 TCP, 17 UDP); ports only with TCP/UDP. AWS allows at most 10 rules per direction. The default accepts everything both ways."
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
  nullable = false
  default  = [
    { direction = "ingress", rule_number = 100, action = "accept", description = "everything in" },
    { direction = "egress", rule_number = 100, action = "accept", description = "everything out" },
  ]

  validation {
    condition = (
      length([for r in var.filter_rules : r if r.direction == "ingress"]) <= 10 &&
      length([for r in var.filter_rules : r if r.direction == "egress"]) <= 10
    )
    error_message = "AWS allows at most 10 filter rules per direction (ingress, egress)."
  }

  validation {
    condition = alltrue([
      for r in var.filter_rules :
      contains(["ingress", "egress"], r.direction) && contains(["accept", "reject"], r.action)
    ])
    error_message = "direction must be ingress or egress, action accept or reject."
  }

  validation {
    condition = alltrue([
      for r in var.filter_rules :
      r.rule_number >= 1 && r.rule_number <= 32766 && floor(r.rule_number) == r.rule_number
    ])
    error_message = "rule_number must be an integer from 1 to 32766."
  }

  validation {
    condition = (
      length(distinct([for r in var.filter_rules : "${r.direction}/${r.rule_number}"])) ==
      length(var.filter_rules)
    )
    error_message = "Two filter rules of one direction share a rule_number."
  }

  validation {
    condition = alltrue([
      for r in var.filter_rules :
      can(cidrhost(r.source_cidr_block, 0)) && can(cidrhost(r.destination_cidr_block, 0))
    ])
    error_message = "source_cidr_block and destination_cidr_block must be CIDR blocks."
  }

  validation {
    condition = alltrue([
      for r in var.filter_rules :
      (r.protocol == null ? true : r.protocol >= 0 && r.protocol <= 255) &&
      (r.source_ports == null && r.destination_ports == null ? true : contains([6, 17], coalesce(r.protocol, -1)))
    ])
    error_message = "protocol must be 0-255; port ranges need protocol 6 (TCP) or 17 (UDP)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
