#!/usr/bin/env bash
# Sets up, builds the providers, the test fixtures and the host, and runs
# every test: the unit tests of each crate and the end-to-end tests in
# tests/ (the web page's in Chromium). The MongoDB half of the store's
# suite runs against CongoDB (a MongoDB-protocol server from npm), started
# here on a free port unless MONGO_TEST_URI already names a server.
set -euo pipefail
cd "$(dirname "$0")/.."
# One concern per module: no import cycle between the host's modules.
scripts/check-cycles.py
scripts/setup.sh --tests
# playwright-core (drives Chromium in tests/tests/page.rs), pinned by its lockfile.
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
# componentize-py (Python providers), pinned, in target/python-tools.
scripts/python-tools.sh
scripts/build-providers.sh
scripts/build-fixtures.sh
# The SDKs in other languages and their providers: native tests, and the
# Python example's component (tests/tests/platform.rs checks and serves it).
(cd provider-sdk/js && npm test --silent)
(cd providers/geojson-feed && npm test --silent)
(cd provider-sdk/python && python3 -m unittest discover -q -s tests)
(cd examples/python-cameras && python3 -m unittest -q && ./build.sh -q)
cargo build --release -p dss-host
if [ -z "${MONGO_TEST_URI:-}" ]; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  scripts/congodb.sh start "$port"
  trap 'scripts/congodb.sh stop '"$port" EXIT
  export MONGO_TEST_URI="mongodb://127.0.0.1:$port/?directConnection=true"
fi
cargo test --release --workspace "$@"
