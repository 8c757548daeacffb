#!/usr/bin/env bash
# Installs what b3 and its tests need on a fresh Debian machine: Debian packages (real Nix for the
# differential tests, bubblewrap for the sandbox, busybox-static for test builds, compression tools,
# chromium for the web view's browser tests, OpenSSH for remote builders, PostgreSQL for the chunk
# index and the farm, nginx as the reference server in bench/serve)
# and the npm dependencies from the lock file (including Node 24, which npm scripts and bin/b3 run on).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(nix-bin bubblewrap busybox-static sqlite3 xz-utils bzip2 zstd chromium openssh-server openssh-client postgresql nginx-light)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or install them with apt-get)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm runs on the machine's Node (Debian's is 20) and warns (EBADENGINE, 55 lines) about each
  # package that needs Node >= 22: b3 and its tests run on Node 24 from node_modules/node, so those
  # warnings are dropped; everything else npm says is shown, and its exit status kept.
  { npm ci --no-audit --no-fund 2>&1 1>&3 3>&- | { grep -v 'EBADENGINE' || true; } >&2; } 3>&1
fi
node_modules/.bin/node --version
node_modules/.bin/node scripts/bundle.ts
bash scripts/fetch-nix-tests.sh   # Nix 2.8.0's own tests/, run against b3 daemon by test/nix-suite
