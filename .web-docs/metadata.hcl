# For the Packer integrations registry; the READMEs beside it are generated
# by scripts/web-docs.sh from docs/packer/ and the configs' comments.
integration {
  name        = "Unikernel"
  description = "Build unikernels from a Unifile, prove they boot, and convert them to every cloud's disk format."
  identifier  = "packer/uniforge/unikernel"
  component {
    type = "builder"
    name = "Unikernel"
    slug = "unikernel"
  }
  component {
    type = "post-processor"
    name = "Unikernel Convert"
    slug = "unikernel-convert"
  }
  component {
    type = "post-processor"
    name = "Unikernel Push"
    slug = "unikernel-push"
  }
}
