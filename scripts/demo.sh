#!/usr/bin/env bash
# The main job: what b3 can do today, run end to end against real inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
b3=bin/b3
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/sub" && echo 'hello from b3' > "$work/src/hello.txt" && printf '#!/bin/sh\necho hi\n' > "$work/src/sub/run.sh" && chmod +x "$work/src/sub/run.sh" && ln -s hello.txt "$work/src/link"

echo "== NAR hash of a source tree (same as 'nix hash path')"
$b3 hash path "$work/src"
hash=$($b3 hash path --base32 "$work/src")
echo "== the store path 'nix-store --add' would give it"
$b3 store-path fixed --recursive --name src "sha256:$hash"
echo "== the store path of a text file (builtins.toFile)"
$b3 store-path text --name hello.txt "$work/src/hello.txt"
