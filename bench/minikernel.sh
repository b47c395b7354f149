#!/usr/bin/env bash
# linux-mini against the distribution's cloud kernel (issue 10): hello-go
# and hello-node built on each, booted in alternated rounds by
# bench/minibench (QEMU start → floor init powers off, → first HTTP answer,
# kernel bytes, least memory), and the kernel build's time, cached (and
# cold with COLD=1: a full build into an empty cache, about 10 minutes on 2
# CPUs). Prints markdown tables.
#   bench/minikernel.sh           (needs bin/uni; ROUNDS=n, default 9)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
uni=$repo/bin/uni
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

secs() { echo "$(( ($(date +%s%N) - $1) / 1000000 ))" | awk '{printf "%.1f s", $1/1000}'; }

echo "## linux-mini: kernel build"
echo
echo "| build | time |"
echo "|---|---|"
if [ "${COLD:-0}" = 1 ]; then
	t=$(date +%s%N); UNI_CACHE_DIR=$work/cold-cache "$uni" kernel build >/dev/null; echo "| cold: empty cache (download, unpack, configure, compile) | $(secs "$t") |"
	rm -rf "$work/cold-cache"
fi
"$uni" kernel build >/dev/null 2>&1 # the cache must have it before the cached figure
t=$(date +%s%N); "$uni" kernel build >/dev/null 2>&1; echo "| cached: same source, fragments and compiler | $(secs "$t") |"
echo

# hello-go and hello-node, as the examples, once per kernel.
CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$work/floorinit" ./bench/floorinit
for k in linux linux-mini; do
	mkdir -p "$work/go-$k" "$work/node-$k"
	cp example/hello-go/main.go "$work/go-$k/"
	(cd "$work/go-$k" && CGO_ENABLED=0 go build -trimpath -o hello main.go)
	{ cat example/hello-go/Unifile; printf '\nKERNEL %s\n' "$k"; } > "$work/go-$k/Unifile"
	cp example/hello-node/hi.js "$work/node-$k/"
	sed "s/^KERNEL linux$/KERNEL $k/" example/hello-node/Unifile > "$work/node-$k/Unifile"
	"$uni" build -q -o "$work/img-go-$k" "$work/go-$k"
	"$uni" build -q -o "$work/img-node-$k" "$work/node-$k"
done

echo "## linux-mini against the cloud kernel (direct boot)"
echo
go run ./bench/minibench -floor-init "$work/floorinit" -rounds "${ROUNDS:-9}" \
	-go-a "$work/img-go-linux" -node-a "$work/img-node-linux" \
	-go-b "$work/img-go-linux-mini" -node-b "$work/img-node-linux-mini"
