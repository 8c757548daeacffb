#!/usr/bin/env bash
# The main job, end to end: create a local store, add a source tree, build a small multi-derivation
# graph in the sandbox, sign and push the closure to a file cache, serve the cache with `b3 serve`,
# copy the closure back into a fresh store over HTTP with signature checking, and verify that the
# outputs are byte-identical. Everything happens in a scratch directory that is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
b3="$PWD/bin/b3"
work=$(mktemp -d /tmp/b3-demo.XXXXXX)
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
# bold headings on a terminal only, plain text when piped
if [ -t 1 ]; then step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }; else step() { printf '\n== %s\n' "$*"; }; fi

store="$work/store"
step "1. a local store at $store (chroot store: logical /nix/store, SQLite with Nix's schema)"
mkdir -p "$work/bb/bin" && cp /bin/busybox "$work/bb/bin/busybox" && ln -s busybox "$work/bb/bin/sh"
busybox=$($b3 store add-fixed --recursive --store "$store" "$work/bb")
echo "static busybox for the builders: $busybox"

step "2. add a source tree"
mkdir -p "$work/src" && echo "the quick brown fox jumps over the lazy dog" > "$work/src/hello.txt"
src=$($b3 store add --store "$store" "$work/src")
echo "source: $src"

step "3. build a three-derivation graph (examples/demo-graph.ts) in the sandbox"
outputs=$(B3_DEMO_BUSYBOX="$busybox" B3_DEMO_SRC="$src" $b3 build --store "$store" examples/demo-graph.ts)
echo "$outputs"
report=$(echo "$outputs" | grep -- '-report$' | head -n1)
cat "$store$report/report"

step "4. sign and push the closure to a file cache"
$b3 key generate --name demo-key-1 --secret "$work/secret.key" --public "$work/public.key"
$b3 copy --from "$store" --to "file://$work/cache?compression=xz&secret-key=$work/secret.key" --closure --no-check-sigs $outputs
ls "$work/cache" | head -n 20

step "5. serve the cache over HTTP"
mkfifo "$work/serve.out"
$b3 serve --store "file://$work/cache" --listen 127.0.0.1:0 --quiet > "$work/serve.out" &
server=$!
exec 3< "$work/serve.out"
read -r line <&3   # "serving … at http://127.0.0.1:PORT" once it listens
url=${line##* at }
echo "cache served at $url"

step "6. copy the closure back into a fresh store over HTTP, checking signatures"
fresh="$work/fresh-store"
$b3 copy --from "$url" --to "$fresh" --closure --trusted-public-keys "$(cat "$work/public.key")" $outputs

step "7. verify: same NAR hashes in both stores, and the fresh store re-hashes clean"
for path in $($b3 path-info --store "$store" --closure $outputs); do
  a=$($b3 path-info --store "$store" --json "$path" | sed 's/.*"narHash":"\([^"]*\)".*/\1/')
  b=$($b3 path-info --store "$fresh" --json "$path" | sed 's/.*"narHash":"\([^"]*\)".*/\1/')
  [ "$a" = "$b" ] || { echo "MISMATCH for $path: $a vs $b"; exit 1; }
  echo "identical  $a  $path"
done
$b3 store verify --store "$fresh"
step "done: built in the sandbox, pushed, served, pulled back and verified"
