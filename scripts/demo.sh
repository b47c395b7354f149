#!/usr/bin/env bash
# Builds an example, boots it with its port forwarded, prints the HTTP answer, stops the VM.
set -euo pipefail
uni=$1 example=$2 port=$3
out=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$out"' EXIT
echo "==> $uni build -o $out/image $example"
"$uni" build -o "$out/image" "$example"
ls -l "$out/image"
echo "==> $uni run $out/image   (console below)"
"$uni" run "$out/image" > "$out/console.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  if answer=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null); then
    sed 's/^/    | /' "$out/console.log"
    echo "==> curl http://127.0.0.1:$port/"
    echo "$answer"
    echo "==> stopping the VM"
    kill -TERM $pid; wait $pid || true
    exit 0
  fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.5
done
cat "$out/console.log"
echo "demo: no HTTP answer on port $port" >&2
exit 1
