#!/usr/bin/env bash
# Installs the Debian packages named as arguments when any is missing.
# Runs apt-get as root, or through sudo.
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
# The default kernel bundle is imported with `apt-get download`, which needs
# package lists even when nothing is missing.
if [ ${#missing[@]} -eq 0 ] && ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then
  exit 0
fi
$sudo apt-get update -qq
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
