# Builds example/hello-go into a unikernel, boots it once until it answers
# HTTP, and converts its disk to qcow2 and a streamOptimized VMDK.
#
#   make examples plugin
#   packer plugins install --path bin/packer-plugin-unikernel github.com/uniforge/unikernel
#   packer build example/unikernel.pkr.hcl

packer {
  required_plugins {
    unikernel = {
      source  = "github.com/uniforge/unikernel"
      version = ">= 0.1.0"
    }
  }
}

source "unikernel" "hello" {
  context          = "${path.root}/hello-go"
  output_directory = "${path.root}/../out/packer-hello"
  disk             = true

  ready {
    type          = "http"
    port          = 8080
    body_contains = "Hello from Go"
    timeout       = "2m"
  }
}

build {
  sources = ["source.unikernel.hello"]

  post-processor "unikernel-convert" {
    format   = "qcow2"
    compress = true
  }
  post-processor "unikernel-convert" {
    format = "vmdk"
  }
}
