#!/usr/bin/env bash
# Renders the plugin's docs for the Packer integrations registry into DIR
# (default .web-docs): DIR/README.md and DIR/components/<type>/<name>/README.md,
# from docs/packer/ (the SDK's docs layout) with the field tables taken from
# the configs' comments by `packer-sdc struct-markdown`. DIR/metadata.hcl is
# written by hand and left alone.
#
#   scripts/web-docs.sh [DIR]
#
# struct-markdown finds its project root by walking up to a directory named
# packer-plugin-*, and never stops at / when there is none (a checkout may
# have any name), so it runs on copies of the config files in a temporary
# tree of that name; it reads one file at a time and needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.web-docs}
go=${GO:-go}
sdc=$($go tool -n packer-sdc)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
proj=$tmp/packer-plugin-unikernel
for f in builder/unikernel/config.go \
         post-processor/unikernel-convert/post-processor.go \
         post-processor/unikernel-push/post-processor.go; do
  mkdir -p "$proj/$(dirname "$f")"
  cp "$f" "$proj/$f"
  (cd "$proj/$(dirname "$f")" && "$sdc" struct-markdown "$(basename "$f")")
done
"$sdc" renderdocs -src docs/packer -partials "$proj/docs-partials" -dst "$tmp/rendered" >"$tmp/renderdocs.log" 2>&1 || { cat "$tmp/renderdocs.log" >&2; exit 1; }

# The registry's layout: one README per component, without the front matter
# (the registry reads names from metadata.hcl).
strip() { awk 'NR==1 && /^---$/ {fm=1; next} fm && /^---$/ {fm=0; next} !fm' "$1"; }
new=$tmp/web
mkdir -p "$new/components/builder/unikernel" \
         "$new/components/post-processor/unikernel-convert" \
         "$new/components/post-processor/unikernel-push"
strip "$tmp/rendered/README.md" > "$new/README.md"
strip "$tmp/rendered/builders/unikernel.mdx" > "$new/components/builder/unikernel/README.md"
strip "$tmp/rendered/post-processors/unikernel-convert.mdx" > "$new/components/post-processor/unikernel-convert/README.md"
strip "$tmp/rendered/post-processors/unikernel-push.mdx" > "$new/components/post-processor/unikernel-push/README.md"

mkdir -p "$out"
rm -rf "$out/components"
mv "$new/components" "$out/components"
mv "$new/README.md" "$out/README.md"
