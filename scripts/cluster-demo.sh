#!/usr/bin/env bash
# Three DSS hosts sharing one MongoDB (CongoDB) on this machine, serving the
# demo as one cluster: each stream runs on exactly one host, viewers on any
# host get it (relayed from the owner's nginx-rtmp), and a host that dies
# loses its streams to the others within its lease.
#
# Run from the repository root after the README's set-up (scripts/run.sh or
# scripts/test.sh built the providers and the host):
#
#   scripts/cluster-demo.sh
#
# Host N (1-3): API http://127.0.0.1:810N, nginx HTTP :818N, RTMP :194N,
# each with its own managed nginx-rtmp and state in var/cluster/hostN
# (its log: dss.log, its pid: dss.pid). CongoDB listens on
# $CLUSTER_STORE_PORT (default 8199); the city's camera feeds (www/demo)
# are served on $CLUSTER_FEED_PORT (default 8190), so that the three hosts'
# instance files are the same: each instance is refreshed by one host, the
# others read its listing from the store. SIGTERM or SIGINT stops them all.
# CLUSTER_STORE_PORTS="P1 P2 P3" makes host N reach the store on port PN
# instead (a test's cuttable proxies). CLUSTER_LEASE_SECONDS (default 10)
# sets [cluster] lease_seconds; CLUSTER_DEMO_BIN
# the dss binary (default target/release/dss). (Not DSS_*: those are dss.toml keys.)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
bin="${CLUSTER_DEMO_BIN:-target/release/dss}"
port="${CLUSTER_STORE_PORT:-8199}"
feed_port="${CLUSTER_FEED_PORT:-8190}"
lease="${CLUSTER_LEASE_SECONDS:-10}"
base=var/cluster
[ -x "$bin" ] || { echo "cluster-demo: $bin missing: run scripts/run.sh or scripts/test.sh first" >&2; exit 1; }
[ -f target/providers/static-list.wasm ] || { echo "cluster-demo: no provider modules: run scripts/build-providers.sh" >&2; exit 1; }

pids=()
stop() {
  trap - TERM INT EXIT
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  # A host killed by a test leaves its managed nginx (by design): stop those.
  for n in 1 2 3; do
    f="$base/host$n/state/run/nginx.pid"
    if [ -f "$f" ]; then kill -TERM -- "-$(cat "$f")" 2>/dev/null || kill -TERM "$(cat "$f")" 2>/dev/null || true; fi
  done
  scripts/congodb.sh stop "$port" >/dev/null 2>&1 || true
  [ -z "${feed_pid:-}" ] || kill -TERM "$feed_pid" 2>/dev/null || true
  exit 0
}
trap stop TERM INT EXIT

scripts/congodb.sh start "$port" >/dev/null
node scripts/feed-server.mjs "$feed_port" www >/dev/null &
feed_pid=$!
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$feed_port/demo/cameras.json" >/dev/null 2>&1 && break
  kill -0 "$feed_pid" 2>/dev/null || { echo "cluster-demo: the feed server did not start (port $feed_port in use?)" >&2; exit 1; }
  sleep 0.1
done
store="mongodb://127.0.0.1:$port/dss_cluster?directConnection=true"
read -r -a store_ports <<<"${CLUSTER_STORE_PORTS:-$port $port $port}"

# One compile cache for the three hosts (entries are written atomically,
# by content hash): compiled once here, loaded by each host in milliseconds
# instead of three compilations of the JavaScript provider at once.
mkdir -p "$base/shared/providers.d"
printf 'state_dir = "state"\n[providers]\nmodules_dir = "../../../target/providers"\n' >"$base/shared/dss.toml"
"$bin" --config "$base/shared/dss.toml" providers list >/dev/null

for n in 1 2 3; do
  dir="$base/host$n"
  rm -rf "$dir"
  mkdir -p "$dir/providers.d" "$dir/state"
  ln -s ../../shared/state/cache "$dir/state/cache"
  # The demo's instances, the same on each host, their feeds read from
  # the feed server.
  for f in examples/demo/providers.d/*.toml; do
    sed "s/127\.0\.0\.1:8000/127.0.0.1:$feed_port/g" "$f" >"$dir/providers.d/$(basename "$f")"
  done
  cat >"$dir/dss.toml" <<EOF
# Host $n of scripts/cluster-demo.sh.
listen = "127.0.0.1:810$n"
base_dir = "../../.."
state_dir = "$dir/state"
[providers]
modules_dir = "target/providers"
instances_dir = "$dir/providers.d"
[nginx]
managed = true
bind = "127.0.0.1"
http_port = 818$n
rtmp_port = 194$n
[mobile]
listen = "127.0.0.1:999$n"
[store]
url = "mongodb://127.0.0.1:${store_ports[$((n - 1))]}/dss_cluster?directConnection=true"
[cluster]
enabled = true
node_id = "host$n"
lease_seconds = $lease
EOF
  "$bin" --config "$dir/dss.toml" serve >"$dir/dss.log" 2>&1 &
  pids+=($!)
  echo $! >"$dir/dss.pid"
done

for n in 1 2 3; do
  # Ready: nginx up and every provider instance listed (a first start
  # compiles the JavaScript provider: tens of seconds on two cores).
  for _ in $(seq 1 1800); do
    curl -fs "http://127.0.0.1:810$n/readyz" >/dev/null 2>&1 && break
    kill -0 "${pids[$((n - 1))]}" 2>/dev/null || { echo "cluster-demo: host $n exited; see $base/host$n/dss.log" >&2; tail -5 "$base/host$n/dss.log" >&2; exit 1; }
    sleep 0.1
  done
done
echo "cluster of 3 hosts sharing $store (lease ${lease} s):"
for n in 1 2 3; do
  echo "  host$n: http://127.0.0.1:810$n/  rtmp://127.0.0.1:194$n/dss/ID  http://127.0.0.1:818$n/hls/ID/index.m3u8  (log $base/host$n/dss.log)"
done
echo "  who runs what, who refreshes which provider: curl http://127.0.0.1:8101/api/cluster"
echo "  camera feeds: http://127.0.0.1:$feed_port/demo/"
echo "ready"
wait
