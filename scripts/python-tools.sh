#!/usr/bin/env bash
# Installs the Python tools into target/python-tools (a venv under the
# repository root): componentize-py and schemathesis, both pinned.
# Idempotent: a venv that already has both pinned versions is left alone.
# Prints nothing but errors.
#
# The tools are then target/python-tools/bin/componentize-py (the Python
# SDK's build.sh finds it there or on PATH; see provider-sdk/python/README.md)
# and target/python-tools/bin/schemathesis (API fuzzing of the live
# host's /api/openapi.json).
#
# Needs python3 (3.10 or later) with the venv module; on Debian:
#   apt-get install python3-venv
set -euo pipefail
cd "$(dirname "$0")/.."

COMPONENTIZE_PY_VERSION=0.25.1
SCHEMATHESIS_VERSION=4.32.5
venv=target/python-tools

if ! command -v python3 >/dev/null; then
  echo "python-tools: python3 not found; on Debian: apt-get install python3 python3-venv" >&2
  exit 1
fi

have=""
if [ -x "$venv/bin/python" ]; then
  have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(*(m.version(p) for p in ("componentize-py", "schemathesis")))' 2>/dev/null || true)
fi
[ "$have" = "$COMPONENTIZE_PY_VERSION $SCHEMATHESIS_VERSION" ] && exit 0

# A venv left without pip (made before python3-venv was installed) is made anew.
if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$venv"
fi

if [ ! -x "$venv/bin/python" ]; then
  mkdir -p target
  rm -rf "$venv"
  # Debian's python3 lacks ensurepip until python3-venv is installed: the
  # venv is then left half-made and the command fails.
  if ! err=$(python3 -m venv "$venv" 2>&1); then
    rm -rf "$venv"
    echo "$err" >&2
    echo "python-tools: 'python3 -m venv' failed; on Debian: apt-get install python3-venv" >&2
    exit 1
  fi
fi

if ! out=$("$venv/bin/python" -m pip install --disable-pip-version-check -q \
    "componentize-py==$COMPONENTIZE_PY_VERSION" "schemathesis==$SCHEMATHESIS_VERSION" 2>&1); then
  echo "$out" >&2
  echo "python-tools: installing componentize-py==$COMPONENTIZE_PY_VERSION schemathesis==$SCHEMATHESIS_VERSION failed" >&2
  exit 1
fi
