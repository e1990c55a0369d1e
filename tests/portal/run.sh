#!/usr/bin/env bash
# The portal's browser test: starts the local server (every route, as `make dev` does) with
# `make demo`'s month of activity on a free port against the emulator, then drives the portal in
# headless Chromium (portal.test.mjs). Run inside with-emulator.sh (AWS_ENDPOINT_URL); the
# Makefile's portal-deps target installs Chromium and the test's two npm packages first.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=$("$root/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$root/target/portal-server.log"
mkdir -p "$root/target"

PORT="$port" TABLE_NAME=portal DEMO=1 "$root/target/debug/local-server" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 1200); do
    grep -q "export PROMOTER_TOKEN=" "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.05
done
grep -q "export PROMOTER_TOKEN=" "$log" || { tail -n 20 "$log" >&2; echo "the local server did not start" >&2; exit 1; }
grep "^Demo:" "$log"

eval "$(grep -o "export [A-Z_]*=.*" "$log")"
cd "$root"
SCREENSHOTS="${SCREENSHOTS:-$root/target/portal}" node "$here/portal.test.mjs"
if grep -q "panicked" "$log"; then
    grep -B2 -A10 "panicked" "$log" >&2
    echo "the server panicked during the browser test" >&2
    exit 1
fi
