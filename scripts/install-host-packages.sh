#!/usr/bin/env bash
# Installs the host packages listed in scripts/host-packages.txt (apt, Debian/Ubuntu).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mapfile -t packages < <(grep -Ev '^\s*(#|$)' "$here/host-packages.txt")
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "host packages installed: ${packages[*]}"
