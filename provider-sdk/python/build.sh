#!/usr/bin/env bash
# Builds a Python DSS provider into a WebAssembly component:
#   provider-sdk/python/build.sh APP_DIR [-o NAME.wasm] [-m MODULE] [-q]
# APP_DIR holds app.py (binding `Provider = dss_provider.export(...)`); the
# component goes to APP_DIR/<dir name>.wasm unless -o says otherwise,
# written atomically. Needs componentize-py: scripts/python-tools.sh
# installs it into target/python-tools (found there or on PATH).
set -euo pipefail
sdk_python="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONPATH="$sdk_python${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m dss_provider.build "$@"
