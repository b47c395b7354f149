#!/usr/bin/env bash
# Compares uni's squashfs writer (image/squashfs, zstd) with mksquashfs at
# its defaults (gzip, all cores) on the same trees, in the same run, and
# prints a markdown table: best-of-3 wall time and image bytes of each,
# and uni's share of both (the goal: time <= 0.5, size <= 1.0).
#
# usage: bench/rootfs.sh [DIR...]
# Without DIRs the trees are the host's node closure (/usr/bin/node and
# the libraries ldd lists, copied into a temporary dir; NODE=path to pick
# another binary) and a Python standard library.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-3}
command -v mksquashfs >/dev/null || { echo "rootfs.sh: mksquashfs not found (apt-get install squashfs-tools)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$repo" && go build -o "$work/rootfsbench" ./bench/rootfsbench)

# node_closure copies node and its shared libraries, at their real paths,
# into $1. Only the benchmark does this; the product has its own closure walk.
node_closure() {
	local dest=$1 bin
	bin=$(readlink -f "${NODE:-/usr/bin/node}")
	mkdir -p "$dest"
	cp -L --parents "$bin" "$dest"
	ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
		cp -L --parents "$lib" "$dest"
	done
}

# best_ms runs a command $runs times and prints its fastest wall time in ms.
best_ms() {
	local best= start end ms
	for _ in $(seq "$runs"); do
		start=$(date +%s%N)
		"$@" >/dev/null 2>&1
		end=$(date +%s%N)
		ms=$(( (end - start) / 1000000 ))
		if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
	done
	echo "$best"
}

trees=("$@")
names=()
if [ ${#trees[@]} -eq 0 ]; then
	node_closure "$work/node"
	trees+=("$work/node"); names+=("node closure")
	for py in /usr/lib/python3.11 /root/.pyenv/versions/3.11.7/lib/python3.11; do
		if [ -d "$py" ]; then trees+=("$py"); names+=("python3.11 stdlib"); break; fi
	done
else
	for t in "${trees[@]}"; do names+=("$t"); done
fi

echo "| tree | files | input MB | mksquashfs s | mksquashfs bytes | uni s | uni bytes | uni/mksquashfs time | uni/mksquashfs size |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for i in "${!trees[@]}"; do
	dir=${trees[$i]}
	files=$(find "$dir" -type f | wc -l)
	input=$(du -sb "$dir" | cut -f1)
	m_ms=$(best_ms mksquashfs "$dir" "$work/m.img" -noappend)
	m_bytes=$(stat -c %s "$work/m.img")
	u_ms=$(best_ms "$work/rootfsbench" "$dir" "$work/u.img")
	u_bytes=$(stat -c %s "$work/u.img")
	awk -v n="${names[$i]}" -v f="$files" -v in_b="$input" -v mm="$m_ms" -v mb="$m_bytes" -v um="$u_ms" -v ub="$u_bytes" 'BEGIN {
		printf "| %s | %d | %.1f | %.2f | %d | %.2f | %d | %.2f | %.3f |\n", n, f, in_b/1e6, mm/1000, mb, um/1000, ub, um/mm, ub/mb
	}'
done
echo
echo "$(nproc) CPUs, $(mksquashfs -version | head -1), runs=$runs (best wall time of each)"
