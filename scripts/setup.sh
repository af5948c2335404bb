#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine (with Node.js >= 20.19) to a running VM:
# host packages, npm dependencies, build, `banger doctor`, then a throwaway VM
# on the default image (the first run builds the image and fetches the kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-host-packages.sh
npm ci --no-audit --no-fund
npm run build
bin/banger doctor
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo -E"; fi
$sudo_cmd bin/banger vm run --rm -- uname -a
