#!/usr/bin/env bash
# The Packer plugin API version (x5.0 for SDK v0.6.x) that goes into the
# release names (packer-plugin-unikernel_v1.2.3_x5.0_linux_amd64.zip). It is
# the SDK's, so it is read from `describe` of a host build of the plugin, as
# the Packer scaffolding's release workflow does, rather than written down.
#
#   scripts/plugin-api-version.sh           prints it
#   scripts/plugin-api-version.sh --check   fails unless $API_VERSION equals it
#                                           (goreleaser's before hook)
set -euo pipefail
cd "$(dirname "$0")/.."
go=${GO:-go}

# The release's flags, so that goreleaser's linux/amd64 build finds the
# packages of this host build in the build cache.
desc=$(CGO_ENABLED=0 $go run -trimpath . describe)
api=$(printf '%s\n' "$desc" | sed -n 's/.*"api_version":"\([^"]*\)".*/\1/p')
if [ -z "$api" ]; then
  echo "plugin-api-version: no api_version in the plugin's describe output: $desc" >&2
  exit 1
fi

case ${1:-} in
  "") echo "$api" ;;
  --check)
    if [ "${API_VERSION:-}" != "$api" ]; then
      echo "API_VERSION is '${API_VERSION:-}' but the plugin reports $api: export API_VERSION=\$(scripts/plugin-api-version.sh)" >&2
      exit 1
    fi ;;
  *) echo "usage: plugin-api-version.sh [--check]" >&2; exit 2 ;;
esac
