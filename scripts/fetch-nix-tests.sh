#!/usr/bin/env bash
# Fetches Nix 2.8.0's source (Debian's nix source package, with apt's own client and a private
# source list, so the system's apt configuration is untouched) and unpacks its tests/ directory
# into .cache/nix-2.8.0, for test/nix-suite (Nix's own test scripts run against b3 daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/nix-2.8.0
if [ -f "$dest/tests/common.sh.in" ]; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/parts"
cat > "$work/parts/nix-src.sources" <<SOURCES
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/parts" -o "Dir::State::Lists=$work/lists" -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" -qq update
(cd "$work" && apt-get "${apt_opts[@]}" -qq source --download-only nix=2.8.0-1.1 >/dev/null)
mkdir -p "$dest"
tar -xJf "$work/nix_2.8.0.orig.tar.xz" -C "$dest" --strip-components=1 --wildcards '*/tests/*' '*/mk/run_test.sh' '*/scripts/*'
test -f "$dest/tests/common.sh.in"
echo "fetched Nix 2.8.0's tests into $dest"
