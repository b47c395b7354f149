# Builds example/hello-node into a unikernel, boots it once until it answers
# HTTP, and converts its disk to a compressed qcow2 (OpenStack, KVM) and a
# streamOptimized VMDK (vSphere, AWS import). From the repository root:
#
#   make plugin
#   packer plugins install --path bin/packer-plugin-unikernel github.com/uniforge/unikernel
#   packer init example/unikernel.pkr.hcl      # or the install above
#   packer build example/unikernel.pkr.hcl
#
# Outputs: out/packer-hello-node/ (the image layout), out/packer-hello-node.qcow2,
# out/packer-hello-node.vmdk. `packer build -force` replaces an earlier run's.

packer {
  required_plugins {
    unikernel = {
      source  = "github.com/uniforge/unikernel"
      version = ">= 0.1.0"
    }
  }
}

variable "output_directory" {
  type        = string
  default     = "out/packer-hello-node"
  description = "Where the image layout goes; the disks are written beside it."
}

source "unikernel" "hello-node" {
  context          = "${path.root}/hello-node"
  output_directory = var.output_directory

  # Boot once and wait for the app's answer before anything else runs.
  ready {
    type          = "http"
    port          = 8083
    body_contains = "Hello World"
    timeout       = "3m"
  }
}

build {
  sources = ["source.unikernel.hello-node"]

  post-processor "unikernel-convert" {
    format   = "qcow2"
    compress = true
    output   = "${var.output_directory}.qcow2"
  }
  post-processor "unikernel-convert" {
    format = "vmdk"
    output = "${var.output_directory}.vmdk"
  }
}
