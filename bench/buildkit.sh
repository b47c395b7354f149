#!/usr/bin/env bash
# The BuildKit frontend against uni build, in one run, on example/hello-node
# built from a node base image served by a local registry. Prints markdown
# tables:
#   1. warm rebuild after an edit of hi.js: buildx (or buildctl) against
#      uni build, alternated rounds, medians, the ratio (issue 7's target:
#      at most 1.5×), and whether both give the same bytes;
#   2. cold build: buildx on a fresh buildkitd against uni build with an
#      empty cache, and with an empty cache but the kernel bundle;
#   3. the frontend image and the kernel bundle image: their size and how
#      long a fresh buildkitd takes to pull and unpack each.
#
#   bench/buildkit.sh    (needs bin/uni, buildkitd, buildctl, registry, runc;
#                         `make buildkit` installs buildx as the docker CLI plugin)
# ROUNDS=n warm rounds (default 5); COLD_ROUNDS=n cold rounds and fresh
# daemons per pull (default 3). Runs as root (buildkitd with runc).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH="$PATH:$(go env GOPATH)/bin"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
uni=$repo/bin/uni
rounds=${ROUNDS:-5}
cold_rounds=${COLD_ROUNDS:-3}
runc=${RUNC:-$(command -v runc || echo /usr/sbin/runc)}
for tool in "$uni" buildkitd buildctl registry "$runc" ldd python3 curl make; do
	command -v "$tool" >/dev/null || { echo "buildkit.sh: $tool is missing (make build buildkit deps)" >&2; exit 1; }
done

# A short path: buildkitd's unix socket must stay under 108 bytes.
work=$(mktemp -d /tmp/uni-bkbench.XXXXXX)
daemons=() # the directories of running buildkitds
regpid=
cleanup() {
	local d
	set +e # clean up all that can be, whatever fails
	for d in "${daemons[@]}"; do stop_buildkitd "$d"; done
	[ -z "$regpid" ] || { kill "$regpid" 2>/dev/null; wait "$regpid" 2>/dev/null || true; }
	if grep -q " $work/" /proc/self/mountinfo; then
		echo "buildkit.sh: mounts remain under $work; left in place" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s%N; }
ms_since() { echo $((($(now) - $1) / 1000000)); }
# median of milliseconds (the mean of the middle two for an even count)
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
secs() { awk -v m="$1" 'BEGIN {printf "%.2f s", m/1000}'; }
list_secs() { local m out=; for m in "$@"; do out+="${out:+, }$(awk -v m="$m" 'BEGIN {printf "%.2f", m/1000}')"; done; echo "$out"; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b/1e6}'; }

# start_buildkitd DIR [SNAPSHOTTER]: a buildkitd with its root, socket and
# OpenTelemetry socket under DIR (else the latter is shared in
# /run/buildkit), runc and the native snapshotter (or the one named), in
# its own process group, ready when this returns.
start_buildkitd() {
	local dir=$1 snapshotter=${2:-native}
	mkdir -p "$dir"
	cat >"$dir/buildkitd.toml" <<-EOF
		root = "$dir/root"
		[grpc]
		  address = ["unix://$dir/bk.sock"]
		[otel]
		  socketPath = "$dir/otel.sock"
		[cdi]
		  disabled = true
		[worker.oci]
		  enabled = true
		  snapshotter = "$snapshotter"
		  binary = "$runc"
		[worker.containerd]
		  enabled = false
	EOF
	setsid buildkitd --config "$dir/buildkitd.toml" >"$dir/log" 2>&1 &
	echo $! >"$dir/pid"
	daemons+=("$dir")
	for _ in $(seq 300); do
		buildctl --addr "unix://$dir/bk.sock" debug workers >/dev/null 2>&1 && return 0
		kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
		sleep 0.1
	done
	echo "buildkit.sh: buildkitd did not start:" >&2
	cat "$dir/log" >&2
	exit 1
}

# stop_buildkitd DIR: end the daemon's process group (runc children too),
# detach what it left mounted under DIR, remove DIR.
stop_buildkitd() {
	local dir=$1 pid d
	pid=$(cat "$dir/pid")
	kill -TERM -- "-$pid" 2>/dev/null || true
	for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" || true; done
	if grep -q " $dir[ /]" /proc/self/mountinfo; then
		echo "buildkit.sh: mounts remain under $dir; left in place" >&2
	else
		rm -rf "$dir"
	fi
	local kept=()
	for d in "${daemons[@]}"; do [ "$d" = "$dir" ] || kept+=("$d"); done
	daemons=("${kept[@]}")
}

# buildx through the docker CLI, with a private DOCKER_CONFIG, if the
# plugin runs; else buildctl with the gateway frontend.
export DOCKER_CONFIG=$work/docker
mkdir -p "$DOCKER_CONFIG/cli-plugins"
plugin=
for p in "$HOME/.docker/cli-plugins/docker-buildx" "$(command -v buildx || true)"; do
	if [ -n "$p" ] && [ -x "$p" ]; then plugin=$(readlink -f "$p"); break; fi
done
[ -z "$plugin" ] || ln -s "$plugin" "$DOCKER_CONFIG/cli-plugins/docker-buildx"
if [ -n "$plugin" ] && command -v docker >/dev/null && docker buildx version >/dev/null 2>&1; then
	client="docker buildx $(docker buildx version | awk '{print $2}') (remote driver)"
	use_buildx=1
else
	client="buildctl $(buildctl --version | awk '{print $3}') (gateway.v0)"
	use_buildx=
fi
client_short=${client%% *}
[ "$client_short" = docker ] && client_short=buildx

# attach DIR NAME: the client's way to reach the daemon in DIR.
attach() {
	[ -z "$use_buildx" ] && return 0
	docker buildx create --name "$2" --driver remote "unix://$1/bk.sock" >/dev/null
	docker buildx inspect --bootstrap "$2" >/dev/null
}

# bk_build DIR NAME OUT [PROGRESS]: the Unifile of $app through the
# frontend image, the image layout into OUT; progress quiet unless named.
bk_build() {
	if [ -n "$use_buildx" ]; then
		docker buildx build --builder "$2" --progress="${4:-quiet}" \
			--build-arg BUILDKIT_SYNTAX="$frontend" --build-arg BASE="$base" \
			-f "$app/Unifile" -o "type=local,dest=$3" "$app" >/dev/null
	else
		buildctl --addr "unix://$1/bk.sock" build --progress="${4:-quiet}" \
			--frontend gateway.v0 --opt source="$frontend" --opt build-arg:BASE="$base" \
			--local context="$app" --local dockerfile="$app" --opt filename=Unifile \
			--output "type=local,dest=$3"
	fi
}

# uni_build CACHE OUT: the same Unifile with uni build.
uni_build() { UNI_CACHE_DIR=$1 "$uni" build -q --build-arg BASE="$base" -o "$2" "$app"; }

edits=0
# edit: append a comment no other build has seen to hi.js.
edit() { edits=$((edits + 1)); echo "// bench edit $edits $(now)" >>"$app/hi.js"; }

# same A B: whether two layouts hold the same kernel, initrd, rootfs.img
# and config.json.
same() {
	local f
	for f in kernel initrd rootfs.img config.json; do
		cmp -s "$1/$f" "$2/$f" || { echo "DIFFER ($f)"; return; }
	done
	echo "identical bytes"
}

# The local registry, the node base image and the frontend image.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' "$work/registry" "$port" >"$work/registry.yml"
registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
go build -o "$work/bkbench" ./bench/bkbench
base=127.0.0.1:$port/bench/node:20
"$work/bkbench" base -ref "$base"

app=$work/app
cp -r example/hello-node "$app"
# The primed cache: the kernel bundle (imported here from Debian's cloud
# kernel) and the base image's layers; make frontend-image pushes that bundle.
cache=$work/cache
uni_build "$cache" "$work/prime-uni"
refs=$(UNI_CACHE_DIR=$cache make -s --no-print-directory frontend-image REGISTRY="127.0.0.1:$port" 2>"$work/frontend-image.log") ||
	{ cat "$work/frontend-image.log" >&2; exit 1; }
kernel_ref=$(echo "$refs" | grep '/uniforge/kernel:' | tail -1)
frontend=127.0.0.1:$port/uniforge/unifile:dev
echo "$refs" | grep -q "^$frontend@sha256:" || { echo "buildkit.sh: make frontend-image printed: $refs" >&2; exit 1; }

# 3. The frontend and kernel bundle images: size, and a cold pull (and
# unpack: a bare image source stays lazy) on fresh daemons.
read -r fe_layers fe_unpacked < <("$work/bkbench" size -ref "$frontend")
read -r kb_layers kb_unpacked < <("$work/bkbench" size -ref "$kernel_ref")
"$work/bkbench" llb -ref "$frontend" >"$work/frontend.llb"
"$work/bkbench" llb -ref "$kernel_ref" >"$work/kernel.llb"
fe_pull=() kb_pull=()
for i in $(seq "$cold_rounds"); do
	for what in frontend kernel; do
		d=$work/pull-$what-$i
		start_buildkitd "$d"
		t=$(now)
		buildctl --addr "unix://$d/bk.sock" build --progress=quiet <"$work/$what.llb"
		ms=$(ms_since "$t")
		if [ "$what" = frontend ]; then fe_pull+=("$ms"); else kb_pull+=("$ms"); fi
		stop_buildkitd "$d"
	done
done

# 2. Cold builds, alternated: buildx on a fresh daemon (started and
# attached before the clock starts), uni with an empty cache, uni with an
# empty cache but the kernel bundle.
cold_bk=() cold_uni=() cold_uni_kernel=()
for i in $(seq "$cold_rounds"); do
	d=$work/cold-$i
	start_buildkitd "$d"
	attach "$d" "cold$i"
	t=$(now)
	bk_build "$d" "cold$i" "$work/cold-bk-$i"
	cold_bk+=("$(ms_since "$t")")
	stop_buildkitd "$d"

	t=$(now)
	uni_build "$work/cache-empty-$i" "$work/cold-uni-$i"
	cold_uni+=("$(ms_since "$t")")

	mkdir -p "$work/cache-kernel-$i"
	cp -a "$cache/kernels" "$work/cache-kernel-$i/"
	t=$(now)
	uni_build "$work/cache-kernel-$i" "$work/cold-uni-kernel-$i"
	cold_uni_kernel+=("$(ms_since "$t")")
	rm -rf "$work/cache-empty-$i" "$work/cache-kernel-$i" "$work/cold-bk-$i" "$work/cold-uni-$i" "$work/cold-uni-kernel-$i"
done

# 1. Warm rebuilds: both engines primed on the same hi.js (and compared),
# then alternated rounds, each build after an edit of its own; who goes
# first rotates. Where the kernel has overlayfs, a second daemon with
# BuildKit's default snapshotter (overlayfs) runs the same rounds, to show
# what the native snapshotter (which copies a parent snapshot whole for each
# step) costs.
d=$work/warm
start_buildkitd "$d"
attach "$d" warm
engines=(bk uni)
if grep -qw overlay /proc/filesystems; then
	start_buildkitd "$work/warmo" overlayfs
	attach "$work/warmo" warmo
	engines=(bk bko uni)
fi
# build_with ENGINE OUT
build_with() {
	case $1 in
	bk) bk_build "$d" warm "$2" ;;
	bko) bk_build "$work/warmo" warmo "$2" ;;
	uni) uni_build "$cache" "$2" ;;
	esac
}
edit
for e in "${engines[@]}"; do build_with "$e" "$work/prime-$e"; done
primed_same=$(same "$work/prime-bk" "$work/prime-uni")
[ ! -d "$work/prime-bko" ] || primed_same+=" (overlayfs daemon: $(same "$work/prime-bko" "$work/prime-uni"))"
declare -A warm=()
n=${#engines[@]}
for i in $(seq "$rounds"); do
	for k in $(seq 0 $((n - 1))); do
		e=${engines[$(((i + k) % n))]}
		edit
		out=$work/warm-$e-$i
		t=$(now)
		build_with "$e" "$out"
		warm[$e]+="$(ms_since "$t") "
		last=$out last_engine=$e
	done
done
# The last round's last build again on the other engine, caches warm.
if [ "$last_engine" = uni ]; then build_with bk "$work/check"; else build_with uni "$work/check"; fi
warm_same=$(same "$last" "$work/check")
# Where the time of a warm rebuild goes: one more, with BuildKit's
# progress as JSON, each step's time from it.
edit
t=$(now)
bk_build "$d" warm "$work/steps" rawjson 2>"$work/steps.json" >&2
steps_wall=$(ms_since "$t")
steps=$("$work/bkbench" steps <"$work/steps.json")
stop_buildkitd "$d"
[ ! -d "$work/warmo" ] || stop_buildkitd "$work/warmo"

# shellcheck disable=SC2086 # the lists split on purpose
warm_bk=(${warm[bk]}) warm_uni=(${warm[uni]}) warm_bko=(${warm[bko]:-})
mbk=$(median "${warm_bk[@]}")
muni=$(median "${warm_uni[@]}")
ratio=$(awk -v a="$mbk" -v b="$muni" 'BEGIN {printf "%.2f", a/b}')
verdict=$(awk -v r="$ratio" 'BEGIN {print (r <= 1.5) ? "met" : "NOT met"}')

echo "## BuildKit frontend against uni build (example/hello-node, node base image from a local registry)"
echo
echo "Client: $client; buildkitd $(buildkitd --version | awk '{print $3}'), native snapshotter, runc; $(nproc) CPUs."
echo
echo "| warm rebuild after editing hi.js, $rounds rounds, median | $client_short | uni build | $client_short/uni | target |"
echo "|---|---:|---:|---:|---|"
echo "| wall time | $(secs "$mbk") | $(secs "$muni") | ${ratio}× | ≤ 1.5×: $verdict |"
echo "| every round (s) | $(list_secs "${warm_bk[@]}") | $(list_secs "${warm_uni[@]}") | | |"
if [ ${#warm_bko[@]} -gt 0 ]; then
	mbko=$(median "${warm_bko[@]}")
	echo "| wall time, a buildkitd with the overlayfs snapshotter | $(secs "$mbko") | | $(awk -v a="$mbko" -v b="$muni" 'BEGIN {printf "%.2f", a/b}')× | |"
	echo "| every round (s), overlayfs | $(list_secs "${warm_bko[@]}") | | | |"
fi
echo
echo "| where a warm $client_short rebuild goes (native snapshotter, one more round; steps of 10 ms or more, and cached ones) | time |"
echo "|---|---:|"
echo "$steps"
echo "| the whole build, as the client saw it | $(secs "$steps_wall") |"
echo
echo "| same hi.js on both engines: kernel, initrd, rootfs.img, config.json | |"
echo "|---|---|"
echo "| primed builds | $primed_same |"
echo "| after the rounds, caches warm | $warm_same |"
echo
echo "| cold build, $cold_rounds rounds, median | time | every round (s) |"
echo "|---|---:|---|"
echo "| $client_short, fresh buildkitd (empty root; frontend, kernel bundle and base image pulled from the local registry) | $(secs "$(median "${cold_bk[@]}")") | $(list_secs "${cold_bk[@]}") |"
echo "| uni build, empty UNI_CACHE_DIR (Debian kernel package download and import included) | $(secs "$(median "${cold_uni[@]}")") | $(list_secs "${cold_uni[@]}") |"
echo "| uni build, empty cache but the kernel bundle | $(secs "$(median "${cold_uni_kernel[@]}")") | $(list_secs "${cold_uni_kernel[@]}") |"
echo
echo "| image | layers (compressed) | unpacked | cold pull and unpack, median of $cold_rounds fresh daemons |"
echo "|---|---:|---:|---:|"
echo "| frontend \`uniforge/unifile:dev\` | $(mb "$fe_layers") | $(mb "$fe_unpacked") (binary $(mb "$(stat -c %s bin/uni-frontend)")) | $(secs "$(median "${fe_pull[@]}")") |"
kernel_name=${kernel_ref#*/}
echo "| kernel bundle \`${kernel_name%@*}\` | $(mb "$kb_layers") | $(mb "$kb_unpacked") | $(secs "$(median "${kb_pull[@]}")") |"
