#!/usr/bin/env bash
# Builds the shipped providers (and any test fixtures) as wasm32-wasip2
# components and installs them, atomically, as NAME.wasm in a modules
# directory (default: target/providers, the demo's modules_dir).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/providers}"
mkdir -p "$out"
providers=(static-list traffic-feed mobile-ts)
args=()
for p in "${providers[@]}"; do args+=(-p "dss-provider-$p"); done
cargo build --profile wasm --target wasm32-wasip2 "${args[@]}"
for p in "${providers[@]}"; do
  src="target/wasm32-wasip2/wasm/dss_provider_${p//-/_}.wasm"
  # Copy beside the destination, then rename: a watching host never sees a
  # half-written module.
  cp "$src" "$out/.$p.wasm.tmp"
  mv "$out/.$p.wasm.tmp" "$out/$p.wasm"
done
# The JavaScript provider: ComponentizeJS from npm (pinned by its lock file).
# `npm ci` only when the lock file changed since the last install.
js=providers/geojson-feed
if [ ! -f "$js/node_modules/.package-lock.json" ] || [ "$js/package-lock.json" -nt "$js/node_modules/.package-lock.json" ]; then
  (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd "$js" && npm run --silent build)
cp "$js/geojson-feed.wasm" "$out/.geojson-feed.wasm.tmp"
mv "$out/.geojson-feed.wasm.tmp" "$out/geojson-feed.wasm"
providers+=(geojson-feed)
echo "providers installed in $out: ${providers[*]}"
