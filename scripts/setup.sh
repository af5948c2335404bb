#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine (with Node.js >= 20.19) to a working banger:
# host packages, npm dependencies, build, then `banger doctor` checks the host.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-host-packages.sh
npm ci --no-audit --no-fund
npm run build
bin/banger doctor
