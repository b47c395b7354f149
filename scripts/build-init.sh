#!/usr/bin/env bash
# Rebuilds the committed guest init (internal/initbin/uni-init) the way
# internal/initbin/build.go says, and records the Go release it used.
# Run it after changing init/ or spec/, then commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
out=internal/initbin/uni-init
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-mod=readonly \
  go build -trimpath -buildvcs=false -ldflags='-s -w -buildid=' -o "$out" ./init
go env GOVERSION > internal/initbin/uni-init.go-version
echo "built $out ($(stat -c %s "$out") bytes, $(cat internal/initbin/uni-init.go-version))"
