#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine (with Node.js >= 20.19) to a running VM:
# host packages, npm dependencies, build, the root helper (`sudo banger system
# install`: the one privileged part; banger itself runs as you), `banger
# doctor`, then a throwaway VM on the default image (the first run builds the
# image, rootless, and fetches the kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-host-packages.sh
npm ci --no-audit --no-fund
npm run build
if [ "$(id -u)" -ne 0 ]; then
  sudo "$PWD/bin/banger" system install
fi
bin/banger doctor
bin/banger vm run --rm -- uname -a
