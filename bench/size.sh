#!/usr/bin/env bash
# Image bytes of an image layout against the bytes of its entrypoint's bare
# ELF closure (the program and the libraries ldd lists, plus the COPYed app),
# measured independently of uni with ldd. Prints a markdown table.
#
# usage: bench/size.sh IMAGE_DIR [APP_FILE...]
set -euo pipefail
img=$1; shift
prog=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["entrypoint"][0])' "$img/config.json")
real=$(readlink -f "$prog")
closure=$(stat -c %s "$real")
for lib in $(ldd "$real" | grep -o '/[^ ]*'); do
	closure=$((closure + $(stat -L -c %s "$lib")))
done
for f in "$@"; do closure=$((closure + $(stat -c %s "$f"))); done
# Regular files' bytes inside rootfs.img, read back with squashfs-tools.
content=$(unsquashfs -lls -d "" "$img/rootfs.img" | awk '$1 ~ /^-/ {s += $3} END {print s}')
size() { stat -c %s "$img/$1"; }
total=$(( $(size kernel) + $(size initrd) + $(size rootfs.img) ))
mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b/1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f×", a/b}'; }
echo "| $(basename "$img") | bytes | vs closure |"
echo "|---|---|---|"
echo "| closure: $(basename "$real") + its libraries (ldd) + app files | $(mb "$closure") | 1.000× |"
echo "| files in rootfs.img, uncompressed | $(mb "$content") | $(ratio "$content" "$closure") |"
echo "| rootfs.img (zstd squashfs) | $(mb "$(size rootfs.img)") | $(ratio "$(size rootfs.img)" "$closure") |"
echo "| initrd (init + $(zstdcat "$img/initrd" 2>/dev/null | cpio -it 2>/dev/null | grep -c '\.ko$' || echo '?') modules) | $(mb "$(size initrd)") | |"
echo "| kernel (shared by every image on it) | $(mb "$(size kernel)") | |"
echo "| whole image: kernel + initrd + rootfs.img | $(mb "$total") | $(ratio "$total" "$closure") |"
