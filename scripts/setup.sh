#!/usr/bin/env bash
# Installs what DSS needs on Debian 12 (run as root, or with sudo
# available): nginx with the RTMP module, FFmpeg, Node.js (for the tests'
# CongoDB and the JavaScript provider's build), and the wasm32-wasip2 Rust
# target; with --tests also Chromium (the web page's browser tests),
# Python's venv (componentize-py for the Python providers' tests), and
# dpkg-dev, lintian and systemd-analyze (the Debian package's test); and the
# unprivileged user `dss` that FFmpeg and nginx's workers run as when the
# host runs as root ([security] run_as). Skips what is already there.
set -euo pipefail
need=()
command -v nginx >/dev/null || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need+=(libnginx-mod-rtmp)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
# Node.js runs CongoDB, the MongoDB-protocol server of the store's tests.
command -v npm >/dev/null || need+=(nodejs npm)
if [ "${1:-}" = "--tests" ]; then
  command -v chromium >/dev/null || need+=(chromium)
  python3 -c 'import ensurepip' 2>/dev/null || need+=(python3 python3-venv)
  # The package's test: building it, checking it and its unit.
  command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
  command -v lintian >/dev/null || need+=(lintian)
  command -v systemd-analyze >/dev/null || need+=(systemd)
fi
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}"
fi
if ! getent passwd dss >/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dss
fi
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
