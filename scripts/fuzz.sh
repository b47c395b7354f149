#!/usr/bin/env bash
# Runs every fuzz target of the repo for a while (default 20s each). New
# crashers land in the package's testdata/fuzz/<Target>/ and become seeds
# that `go test` replays every time.
set -euo pipefail
time=${1:-20s}
cd "$(dirname "$0")/.."
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	pkg=./$(dirname "${file#./}")
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | cut -d' ' -f2); do
		echo "==> $pkg $target ($time)"
		go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$time"
	done
done
