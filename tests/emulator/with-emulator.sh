#!/usr/bin/env bash
# Runs a command against a fresh emulator: starts tests/emulator/serve.py from ./.venv on
# 127.0.0.1:PORT (0 = a free port), exports AWS_ENDPOINT_URL and dummy credentials, runs the
# command, and stops the emulator afterwards, also on failure or Ctrl-C.
# Usage: tests/emulator/with-emulator.sh PORT command [args...]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python="$root/.venv/bin/python"
port="${1:?usage: with-emulator.sh PORT command [args...]}"
shift
[ -x "$python" ] || { echo "no $python: run 'make venv' first" >&2; exit 1; }

mkdir -p "$root/target"
log="$root/target/emulator.log"
port_file=$(mktemp)
rm -f "$port_file"
"$python" "$here/serve.py" --host 127.0.0.1 --port "$port" --port-file "$port_file" >"$log" 2>&1 &
emulator=$!

stop() {
    kill "$emulator" 2>/dev/null || true
    wait "$emulator" 2>/dev/null || true
    rm -f "$port_file"
}
trap stop EXIT
trap 'exit 130' INT TERM

for _ in $(seq 1 300); do
    [ -s "$port_file" ] && break
    if ! kill -0 "$emulator" 2>/dev/null; then
        echo "the emulator did not start; its log ($log):" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
[ -s "$port_file" ] || { echo "the emulator did not report its port within 30 s" >&2; exit 1; }

export AWS_ENDPOINT_URL="http://127.0.0.1:$(cat "$port_file")"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"
echo "emulator (moto, serialised) at $AWS_ENDPOINT_URL; log: $log" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
