#!/usr/bin/env bash
# Builds python-cameras.wasm here, in one command (see README.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../../provider-sdk/python/build.sh" "$here" "$@"
