#!/usr/bin/env bash
# Sets up, builds the providers and the host, and runs every test
# (unit tests of each crate and the end-to-end tests in tests/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-providers.sh
scripts/build-fixtures.sh
cargo build --release -p dss-host
cargo test --release --workspace "$@"
