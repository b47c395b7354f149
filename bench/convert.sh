#!/usr/bin/env bash
# Compares `uni convert` (image/format) with `qemu-img convert` at the
# same settings, on the same disks, in the same run, and prints a markdown
# table: best-of-$RUNS wall time, peak memory (/usr/bin/time -v's maximum
# resident set size) and output bytes of each, and uni's share of time and
# size (the goal: compressed formats in at most half qemu-img's time at no
# larger size; the others no slower). gce is measured against GNU tar
# making the same sparse oldgnu tar.gz.
#
# usage: bench/convert.sh [DISK.img]
# The disks are 1 GiB and 4 GiB: mostly zeros (holes) plus the real
# disk.img's data at the start and in the middle. DISK.img defaults to
# example/hello-go built with `bin/uni build --disk`.
# Run it alone: flock /tmp/uni-heavy.lock bench/convert.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-3}
command -v qemu-img >/dev/null || { echo "convert.sh: qemu-img not found (apt-get install qemu-utils)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "convert.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$repo" && go build -o "$work/uni" ./cmd/uni)
src=${1:-}
if [ -z "$src" ]; then
	(cd "$repo" && make -s examples >/dev/null)
	"$work/uni" build --disk -o "$work/hello" "$repo/example/hello-go" >/dev/null
	src=$work/hello/disk.img
fi

# make_disk SIZE-GiB FILE: a sparse disk with src's bytes at 0 and at the middle.
make_disk() {
	truncate -s "$1G" "$2"
	dd if="$src" of="$2" conv=notrunc,sparse bs=1M status=none
	dd if="$src" of="$2" conv=notrunc,sparse bs=1M seek=$(( $1 * 512 )) status=none
}

# measure OUT CMD...: runs CMD $runs times, prints "seconds kib bytes" of
# the fastest run: wall time from date (ns), peak memory from /usr/bin/time.
measure() {
	local out=$1 best= bestm= start end t m
	shift
	for _ in $(seq "$runs"); do
		rm -f "$out"
		start=$(date +%s%N)
		m=$(/usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1)
		end=$(date +%s%N)
		t=$(( end - start ))
		if [ -z "$best" ] || [ "$t" -lt "$best" ]; then
			best=$t bestm=$m
		fi
	done
	echo "$(awk -v t="$best" 'BEGIN{printf "%.3f", t/1e9}') $bestm $(stat -c %s "$out")"
}

printf '| disk | format | qemu-img s | qemu-img peak MiB | qemu-img bytes | uni s | uni peak MiB | uni bytes | uni/qemu time | uni/qemu size |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for gib in 1 4; do
	disk=$work/disk-$gib.img
	make_disk "$gib" "$disk"
	while IFS='|' read -r label ext qfmt ours theirs; do
		q=$(measure "$work/q.$ext" qemu-img convert -f raw $theirs "$disk" "$work/q.$ext")
		u=$(measure "$work/u.$ext" "$work/uni" convert $ours -o "$work/u.$ext" "$disk")
		qemu-img compare -q -f "$qfmt" -F "$qfmt" "$work/q.$ext" "$work/u.$ext" || { echo "convert.sh: $label: uni and qemu-img outputs differ" >&2; exit 1; }
		read -r qt qm qb <<<"$q"
		read -r ut um ub <<<"$u"
		awk -v g="$gib" -v l="$label" -v qt="$qt" -v qm="$qm" -v qb="$qb" -v ut="$ut" -v um="$um" -v ub="$ub" 'BEGIN {
			printf "| %d GiB | %s | %.3f | %.0f | %.0f | %.3f | %.0f | %.0f | %.2f | %.3f |\n", g, l, qt, qm/1024, qb, ut, um/1024, ub, ut/qt, ub/qb }'
		rm -f "$work/q.$ext" "$work/u.$ext"
	done <<'ROWS'
vmdk streamOptimized|vmdk|vmdk|--format vmdk|-O vmdk -o subformat=streamOptimized
qcow2 compressed|qcow2|qcow2|--format qcow2 --compress|-c -O qcow2 -o cluster_size=65536
qcow2|qcow2|qcow2|--format qcow2|-O qcow2 -o cluster_size=65536
vhd fixed|vhd|vpc|--format vhd|-O vpc -o subformat=fixed,force_size=on
vhdx dynamic|vhdx|vhdx|--format vhdx|-O vhdx -o subformat=dynamic,block_size=1M
vmdk monolithicSparse|vmdk|vmdk|--format vmdk-sparse|-O vmdk -o subformat=monolithicSparse
raw|raw|raw|--format raw|-O raw
ROWS
	# gce: against GNU tar making the same archive, as Google documents
	# (tar --format=oldgnu -Sczf); both hold the disk as a sparse disk.raw.
	mkdir -p "$work/gce" && ln -f "$disk" "$work/gce/disk.raw"
	q=$(measure "$work/q.tar.gz" tar -C "$work/gce" --format=oldgnu -Sczf "$work/q.tar.gz" disk.raw)
	u=$(measure "$work/u.tar.gz" "$work/uni" convert --format gce -o "$work/u.tar.gz" "$disk")
	read -r qt qm qb <<<"$q"
	read -r ut um ub <<<"$u"
	awk -v g="$gib" -v qt="$qt" -v qm="$qm" -v qb="$qb" -v ut="$ut" -v um="$um" -v ub="$ub" 'BEGIN {
		printf "| %d GiB | gce tar.gz (other side: GNU tar -S, gzip) | %.3f | %.0f | %.0f | %.3f | %.0f | %.0f | %.2f | %.3f |\n", g, qt, qm/1024, qb, ut, um/1024, ub, ut/qt, ub/qb }'
	rm -f "$work/q.tar.gz" "$work/u.tar.gz" "$work/gce/disk.raw"
	rm -f "$disk"
done
echo
echo "$(nproc) CPUs, $(qemu-img --version | head -1), runs=$runs (fastest wall time of each), source $(stat -c %s "$src") bytes ($(du -k "$src" | cut -f1) KiB allocated)"
