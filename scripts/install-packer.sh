#!/usr/bin/env bash
# Builds packer VERSION (github.com/hashicorp/packer) into DIR.
#
#   scripts/install-packer.sh v1.12.0 "$(go env GOPATH)/bin"
#
# packer cannot be had with `go install pkg@version` here: its go.mod has a
# replace directive (the go-cty fork the plugin SDK needs), which
# `go install …@version` refuses, and the module proxy serves it by exact
# version only. So the module is fetched through the proxy and built inside
# its own directory, where its go.mod and go.sum rule. Its version comes
# from the module's embedded version/VERSION file, so no -ldflags are needed.
# The binary is built under a temporary name and renamed into place, so an
# interrupted build never leaves a half-written program that make takes as
# up to date.
set -euo pipefail
version=${1:?usage: install-packer.sh VERSION DIR}
out=${2:?usage: install-packer.sh VERSION DIR}
go=${GO:-go}
module=github.com/hashicorp/packer

json=$($go mod download -json "$module@$version")
dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
  echo "install-packer: go mod download gave no module directory for $module@$version:" >&2
  printf '%s\n' "$json" >&2
  exit 1
fi

mkdir -p "$out"
tmp=$(mktemp -d "$out/.packer-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "building packer $version (from $dir)"
(
  cd "$dir"
  # The module cache is read-only: -mod=readonly builds from go.mod and
  # go.sum as shipped, and fails rather than editing them.
  GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
    $go build -trimpath -ldflags "-s -w" -o "$tmp/packer" .
)
mv -f "$tmp/packer" "$out/packer"
"$out/packer" version
