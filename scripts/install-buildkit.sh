#!/usr/bin/env bash
# Builds buildkitd and buildctl of github.com/moby/buildkit VERSION into DIR.
#
#   scripts/install-buildkit.sh v0.34.2 "$(go env GOPATH)/bin"
#
# buildkit cannot be had with `go install pkg@version` (its go.mod has
# replace and exclude directives), so the module is fetched through the
# module proxy and built inside its own directory, where its go.mod and
# go.sum rule. Flags and tags are those of buildkit's release Dockerfile:
# static binaries, with the default seccomp profile compiled in. The binaries
# are built in a temporary directory and moved into place, so an interrupted
# build never leaves a half-written program that make takes as up to date.
set -euo pipefail
version=${1:?usage: install-buildkit.sh VERSION DIR}
out=${2:?usage: install-buildkit.sh VERSION DIR}
go=${GO:-go}
module=github.com/moby/buildkit

json=$($go mod download -json "$module@$version")
dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
  echo "install-buildkit: go mod download gave no module directory for $module@$version:" >&2
  printf '%s\n' "$json" >&2
  exit 1
fi

mkdir -p "$out"
tmp=$(mktemp -d "$out/.buildkit-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

ldflags="-X $module/version.Version=$version -X $module/version.Package=$module"
echo "building buildkitd and buildctl $version (from $dir)"
(
  cd "$dir"
  # The module cache is read-only: -mod=readonly builds from go.mod and
  # go.sum as shipped, and fails rather than editing them.
  GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
    $go build -trimpath -ldflags "$ldflags" -tags "osusergo netgo static_build seccomp" \
    -o "$tmp/" ./cmd/buildkitd ./cmd/buildctl
)
for p in buildkitd buildctl; do
  mv -f "$tmp/$p" "$out/$p"
done
"$out/buildkitd" --version
