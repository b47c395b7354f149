#!/usr/bin/env bash
# Builds programs of a Go module that refuses `go install pkg@version`
# (replace or exclude directives in its go.mod, or a proxy that serves it
# by exact version only) into DIR:
#
#   scripts/build-go-module.sh MODULE VERSION DIR [--ldflags FLAGS] [--tags TAGS] PKG...
#
# The module is fetched through the module proxy and built inside its own
# directory, where its go.mod and go.sum rule (-mod=readonly: the module
# cache is read-only, and the build fails rather than edit them). The
# programs are built in a temporary directory and moved into place, so an
# interrupted build never leaves a half-written program that make takes as
# up to date. It prints the names it installed.
set -euo pipefail
usage="usage: build-go-module.sh MODULE VERSION DIR [--ldflags FLAGS] [--tags TAGS] PKG..."
module=${1:?$usage}
version=${2:?$usage}
out=${3:?$usage}
shift 3
ldflags="" tags=""
while [ $# -gt 0 ]; do
  case $1 in
    --ldflags) ldflags=$2; shift 2 ;;
    --tags) tags=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "$usage" >&2; exit 2; }
go=${GO:-go}

json=$($go mod download -json "$module@$version")
dir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
if [ -z "$dir" ] || [ ! -f "$dir/go.mod" ]; then
  echo "build-go-module: go mod download gave no module directory for $module@$version:" >&2
  printf '%s\n' "$json" >&2
  exit 1
fi

mkdir -p "$out"
tmp=$(mktemp -d "$out/.$(basename "$module")-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "building $* of $module $version (from $dir)"
(
  cd "$dir"
  GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 \
    $go build -trimpath -ldflags "$ldflags" -tags "$tags" -o "$tmp/" "$@"
)
for p in "$tmp"/*; do
  mv -f "$p" "$out/$(basename "$p")"
  echo "installed $out/$(basename "$p")"
done
