#!/usr/bin/env bash
# CongoDB: an in-memory server speaking the MongoDB wire protocol (from the
# npm package @push.rocks/smartmongo), used by the store's tests and bench
# because no real mongod installs on the project's machines.
#
#   scripts/congodb.sh install       installs it into $CONGODB_DIR (reused if present)
#   scripts/congodb.sh serve PORT [FILE]
#                                    installs if needed, then serves 127.0.0.1:PORT in
#                                    the foreground until SIGTERM/SIGINT. With FILE, the
#                                    data is loaded from FILE at start and saved to it
#                                    on SIGTERM (CongoDB is otherwise in-memory only)
#   scripts/congodb.sh start PORT    serves in the background; returns once the port
#                                    accepts connections; writes $CONGODB_DIR/PORT.pid
#   scripts/congodb.sh stop PORT     stops a server started with `start`
#
# CONGODB_DIR defaults to target/congodb in the repository.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${CONGODB_DIR:-$root/target/congodb}"
# `npm install smartmongo` fails on a missing transitive dependency; these
# pinned versions are the ones its CongoDB part needs, measured to work.
deps=(bson@6.10.4 mingo@7.2.7 @push.rocks/smartfs@1.5.0 @push.rocks/smartpath@5.1.0
  @push.rocks/smartpromise@4.2.3 @push.rocks/smartrx@3.0.10)
version=2.2.0
pkg="@push.rocks/smartmongo@$version"

install() {
  if [ -f "$dir/.installed-$version" ]; then return 0; fi
  mkdir -p "$(dirname "$dir")"
  # Tests may start several servers at once: one installs, the others wait.
  (
    flock 9
    if [ ! -f "$dir/.installed-$version" ]; then do_install; fi
  ) 9>"$dir.lock"
}

do_install() {
  command -v npm >/dev/null || {
    echo "congodb.sh: npm is needed (apt-get install nodejs npm)" >&2
    exit 1
  }
  mkdir -p "$dir"
  (
    cd "$dir"
    [ -f package.json ] || echo '{"name":"congodb-runner","private":true,"type":"module"}' >package.json
    npm install --no-audit --no-fund --loglevel=error "${deps[@]}" >&2
    rm -rf node_modules/@push.rocks/smartmongo pack
    mkdir -p pack node_modules/@push.rocks/smartmongo
    (cd pack && npm pack --silent "$pkg" >/dev/null)
    tar -xzf pack/*.tgz -C node_modules/@push.rocks/smartmongo --strip-components=1
    rm -rf pack
    touch .installed-$version
  )
}

# The runner is rewritten at each start so that edits here take effect on
# an existing install.
write_runner() {
  cat >"$dir/serve.mjs.$$" <<'EOF'
// Serves CongoDB on 127.0.0.1:PORT (argv[2]) until SIGTERM/SIGINT; with
// argv[3], loads the data from that file and saves it there on stop.
import { CongoServer } from '@push.rocks/smartmongo/dist_ts/congodb/index.js';
const port = Number(process.argv[2]);
const persistPath = process.argv[3] || '';
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node serve.mjs PORT [FILE]');
  process.exit(2);
}
const server = new CongoServer({ host: '127.0.0.1', port, persistPath });
await server.start();
console.log(`congodb listening on 127.0.0.1:${port}`);
// Not server.stop(): it waits for every client to hang up, and drivers
// reconnect at once. Refuse new clients, save the data, exit.
const stop = async () => {
  try {
    server.server?.close();
    await server.getStorage().close();
  } finally {
    process.exit(0);
  }
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
EOF
  # Renamed into place: a server starting at the same time never reads half a file.
  mv -f "$dir/serve.mjs.$$" "$dir/serve.mjs"
}

port_arg() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] || {
    echo "congodb.sh: a port number is needed" >&2
    exit 2
  }
}

case "${1:-}" in
install)
  install
  ;;
serve)
  port_arg "${2:-}"
  install
  write_runner
  file="${3:-}"
  if [ -n "$file" ]; then file="$(realpath -m "$file")"; fi
  cd "$dir"
  exec node serve.mjs "$2" ${file:+"$file"}
  ;;
start)
  port_arg "${2:-}"
  install
  write_runner
  cd "$dir"
  nohup node serve.mjs "$2" >"$dir/$2.log" 2>&1 &
  echo $! >"$dir/$2.pid"
  # Wait up to 20 s (CongoDB starts in well under 1 s here).
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then exit 0; fi
    kill -0 "$(cat "$dir/$2.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "congodb.sh: server on port $2 did not start; log:" >&2
  cat "$dir/$2.log" >&2
  exit 1
  ;;
stop)
  port_arg "${2:-}"
  if [ -f "$dir/$2.pid" ]; then
    kill "$(cat "$dir/$2.pid")" 2>/dev/null || true
    rm -f "$dir/$2.pid"
  fi
  ;;
*)
  sed -n '2,17p' "$0" >&2
  exit 2
  ;;
esac
