#!/usr/bin/env bash
# Builds the test fixtures (hostile and odd components, from source in
# tests/fixtures/) into target/fixtures/NAME.wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/fixtures
mkdir -p "$out"
build() { cargo build --profile wasm --target wasm32-wasip2 -p "dss-fixture-$1"; }
install() { cp "target/wasm32-wasip2/wasm/dss_fixture_${1//-/_}.wasm" "$out/$2.wasm"; }
for f in hostile panic-describe other-world future-version legacy-list; do
  build "$f"
  install "$f" "$f"
done
# Two versions of one provider: the tag is compiled in.
for tag in one two; do
  DSS_FIXTURE_TAG=$tag build versioned
  install versioned "versioned-$tag"
done
echo "fixtures installed in $out"
