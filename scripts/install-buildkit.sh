#!/usr/bin/env bash
# Builds buildkitd and buildctl of github.com/moby/buildkit VERSION into DIR.
#
#   scripts/install-buildkit.sh v0.34.2 "$(go env GOPATH)/bin"
#
# buildkit cannot be had with `go install pkg@version` (its go.mod has
# replace and exclude directives): scripts/build-go-module.sh builds it
# inside its downloaded module. Flags and tags are those of buildkit's
# release Dockerfile: static binaries, with the default seccomp profile
# compiled in.
set -euo pipefail
version=${1:?usage: install-buildkit.sh VERSION DIR}
out=${2:?usage: install-buildkit.sh VERSION DIR}
module=github.com/moby/buildkit
"$(dirname "$0")/build-go-module.sh" "$module" "$version" "$out" \
  --ldflags "-X $module/version.Version=$version -X $module/version.Package=$module" \
  --tags "osusergo netgo static_build seccomp" \
  ./cmd/buildkitd ./cmd/buildctl
"$out/buildkitd" --version
