#!/usr/bin/env bash
# uni push/pull against oras push/pull of the same files to the same local
# registry: example/hello-node, and a 2 GiB rootfs to show that memory does
# not grow with the blob size. Prints markdown tables.
#   bench/oci.sh             (needs bin/uni, oras and registry on PATH or in GOBIN)
#   UNI=/path/to/uni bench/oci.sh   measures another uni build (before/after)
# ROUNDS=n sets the rounds (default 5; 3 for the 2 GiB image).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$PATH:$(go env GOPATH)/bin"
uni=${UNI:-$repo/bin/uni}
work=$(mktemp -d)
trap 'kill $regpid 2>/dev/null; rm -rf "$work"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$work/registry" "$port" > "$work/registry.yml"
registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 & regpid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done

"$uni" build -q -o "$work/hello-node" example/hello-node
go run ./bench/ocibench -uni "$uni" -oras "$(command -v oras)" -registry "127.0.0.1:$port" \
	-image "$work/hello-node" -name "hello-node" -rounds "${ROUNDS:-5}"
echo

# A 2 GiB rootfs: a static program and 2 GiB of random bytes (incompressible).
big=$work/big-ctx
mkdir -p "$big"
(cd example/hello-go && CGO_ENABLED=0 go build -trimpath -o "$big/hello" .)
head -c $((2 << 30)) /dev/urandom >"$big/big.bin"
printf 'FROM scratch\nCOPY hello /hello\nCOPY big.bin /data/big.bin\nENTRYPOINT ["/hello"]\n' >"$big/Unifile"
"$uni" build -q -o "$work/big" "$big"
rm -f "$big/big.bin"
go run ./bench/ocibench -uni "$uni" -oras "$(command -v oras)" -registry "127.0.0.1:$port" \
	-image "$work/big" -name "2 GiB rootfs" -rounds "${BIG_ROUNDS:-3}"
