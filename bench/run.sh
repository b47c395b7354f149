#!/usr/bin/env bash
# All of uni's benchmarks, each against the tool or floor a user would
# compare with, in one run on this machine. Prints markdown tables.
#   bench/run.sh            (make bench builds bin/uni first)
# ROUNDS=n sets the boot rounds and bench/buildkit.sh's warm rounds (default 5);
# RUNS=n the rootfs best-of (default 3); COLD_ROUNDS=n buildkit.sh's cold rounds (3).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
uni=$repo/bin/uni
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

echo "## uni build (example/hello-node)"
echo
echo "| build | time |"
echo "|---|---|"
export UNI_CACHE_DIR=$work/cache
t=$(date +%s%N); "$uni" build -q -o "$work/cold" example/hello-node; cold=$(ms "$t")
t=$(date +%s%N); "$uni" build -q -o "$work/warm" example/hello-node; warm=$(ms "$t")
t=$(date +%s%N); "$uni" build -q --disk -o "$work/disk" example/hello-node; disk=$(ms "$t")
echo "| cold: empty cache (kernel package download and import included) | $((cold / 1000)).$(printf %03d $((cold % 1000))) s |"
echo "| warm: cached kernel bundle | $((warm / 1000)).$(printf %03d $((warm % 1000))) s |"
echo "| warm, with --disk | $((disk / 1000)).$(printf %03d $((disk % 1000))) s |"
if cmp -s "$work/cold/rootfs.img" "$work/warm/rootfs.img" && cmp -s "$work/cold/initrd" "$work/warm/initrd"; then
	echo "| cold and warm outputs | identical bytes |"
else
	echo "| cold and warm outputs | DIFFER |"
fi
echo

echo "## rootfs.img writer against mksquashfs"
echo
bench/rootfs.sh
echo

echo "## image bytes"
echo
bench/size.sh "$work/warm" example/hello-node/hi.js
echo

echo "## boot (example/hello-node, direct boot)"
echo
CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$work/floorinit" ./bench/floorinit
go run ./bench/bootbench -image "$work/warm" -floor-init "$work/floorinit" -rounds "${ROUNDS:-5}"
echo

bench/buildkit.sh
echo

echo "## uni convert against qemu-img convert"
echo
bench/convert.sh
