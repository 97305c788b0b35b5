#!/usr/bin/env bash
# Sets up, builds the providers and the host (release), and runs
# `dss serve` on the shipped demo (dss.toml at the repository root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-providers.sh
cargo build --release -p dss-host
exec target/release/dss serve "$@"
