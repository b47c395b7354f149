#!/usr/bin/env bash
# Measures CI as a fresh machine runs it: .ci/run on a clean clone of HEAD
# with an empty HOME, so GOPATH (the tools make test builds into GOBIN),
# GOCACHE, GOMODCACHE, ~/.docker and the uni cache (the kernel bundle) all
# start empty. Debian packages already installed stay installed. Prints the
# wall time and keeps the log.
#
#   scripts/fresh-ci.sh [WORKDIR]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d /tmp/uni-fresh-ci.XXXXXX)}
mkdir -p "$work/home"
git clone -q "$root" "$work/src" || exit 1
start=$(date +%s)
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME="$work/home" CI=true TERM=dumb LANG=C.UTF-8 \
  GOFLAGS="${GOFLAGS:-}" GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
  "$work/src/.ci/run" >"$work/log" 2>&1
rc=$?
end=$(date +%s)
echo "fresh CI: exit $rc in $((end - start)) s (log: $work/log)"
# Go's module cache is read-only; make it removable.
chmod -R u+w "$work/home/go" 2>/dev/null
exit $rc
