#!/usr/bin/env bash
# The README's walkthrough, as a new user runs it: starts the local server (every Lambda's
# router, as `make dev` does) on a free port against the emulator, then runs the README's
# "Calling the API" block verbatim with its printed dev tokens. Every call's status and time is
# printed; any 5xx, any call that fails to connect, a command that fails, or an internal error
# in the server's log fails the run. Figures, not assertions on time. Run inside
# with-emulator.sh, which provides AWS_ENDPOINT_URL.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=$("$root/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$root/target/walkthrough-server.log"
calls="$root/target/walkthrough-calls.log"

started=$(date +%s%N)
PORT="$port" TABLE_NAME=walkthrough "$root/target/debug/local-server" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
    grep -q "export SERVICE_TOKEN=" "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.05
done
ready_ms=$(( ($(date +%s%N) - started) / 1000000 ))

# The README's block, pointed at this server's port.
block=$(sed -n '/^## Calling the API/,/^To mint a token/p' "$root/README.md" \
    | sed -n '/^```sh$/,/^```$/p' | sed '1d;$d' \
    | sed "s|^API=http://127.0.0.1:3000$|API=http://127.0.0.1:$port|")
[ -n "$block" ] || { echo "no walkthrough block in README.md" >&2; exit 1; }

: >"$calls"
tokens=$(grep -o "export [A-Z]*_TOKEN=.*" "$log")
# Each curl also reports its method, URL, status and time on a line of its own.
prelude='curl() { command curl -w "%{stderr}%{method} %{url_effective} %{http_code} %{time_total}\n" "$@"; }'
if ! bash -euo pipefail -c "$tokens
$prelude
$block" >"$root/target/walkthrough-output.log" 2>"$calls"; then
    cat "$root/target/walkthrough-output.log" "$calls" >&2
    echo "the README's walkthrough failed" >&2
    exit 1
fi

echo "walkthrough: the local server answered after ${ready_ms} ms; the README's calls:"
awk '/^(GET|POST|PATCH|DELETE|PUT) / {
        split($2, url, "127.0.0.1:[0-9]+"); ms = $4 * 1000; total += ms; n += 1
        if (ms > max) max = ms
        printf "  %-6s %-52s %s %7.1f ms\n", $1, substr(url[2], 1, 52), $3, ms
        if ($3 >= 500 || $3 == "000") bad += 1
     }
     END {
        printf "  %d calls, %.1f ms in all, slowest %.1f ms\n", n, total, max
        if (n == 0) { print "no calls were made" > "/dev/stderr"; exit 1 }
        if (bad > 0) { print bad " calls failed (5xx or no answer)" > "/dev/stderr"; exit 1 }
     }' "$calls"
if sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -q "internal error"; then
    echo "the server logged an internal error during the walkthrough:" >&2
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -B2 -A2 "internal error" >&2
    exit 1
fi
