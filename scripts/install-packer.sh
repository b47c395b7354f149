#!/usr/bin/env bash
# Builds packer VERSION (github.com/hashicorp/packer) into DIR.
#
#   scripts/install-packer.sh v1.12.0 "$(go env GOPATH)/bin"
#
# packer cannot be had with `go install pkg@version` here: its go.mod has a
# replace directive (the go-cty fork the plugin SDK needs), and the module
# proxy serves it by exact version only. scripts/build-go-module.sh builds
# it inside its downloaded module. Its version comes from the module's
# embedded version/VERSION file, so no version -ldflags are needed.
set -euo pipefail
version=${1:?usage: install-packer.sh VERSION DIR}
out=${2:?usage: install-packer.sh VERSION DIR}
"$(dirname "$0")/build-go-module.sh" github.com/hashicorp/packer "$version" "$out" --ldflags "-s -w" .
"$out/packer" version
