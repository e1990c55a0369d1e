#!/usr/bin/env bash
# Contract fuzzing: schemathesis generates requests from openapi.yaml against the local server
# (every Lambda's router) with each credential `make dev` prints (admin and service API keys, a
# promoter session, the operator key), and fails on any 5xx or any response that
# differs from the spec (status, content type, schema). Bounded: 5 examples per operation and
# phase, a fixed seed. Run inside with-emulator.sh, which provides AWS_ENDPOINT_URL.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
port=$("$root/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$root/target/contract-server.log"
report="$root/target/contract-report.log"

PORT="$port" TABLE_NAME=contract "$root/target/debug/local-server" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
    grep -q "export PROMOTER_TOKEN=" "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
done

: >"$report"
# The dev tenant's admin key, service key and promoter session, then the operator key (last: it
# may suspend tenants).
for credential in ADMIN_KEY SERVICE_KEY PROMOTER_TOKEN OPERATOR_KEY; do
    token=$(grep -o "export ${credential}=.*" "$log" | cut -d= -f2-)
    [ -n "$token" ] || { cat "$log" >&2; echo "the server printed no $credential" >&2; exit 1; }
    if ! "$root/.venv/bin/schemathesis" run "$root/openapi.yaml" \
        --url "http://127.0.0.1:$port" -H "Authorization: Bearer $token" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
        --max-examples 5 --seed 1 >>"$report" 2>&1; then
        cat "$report" >&2
        echo "contract fuzzing failed with $credential" >&2
        exit 1
    fi
    echo "contract ($credential): $(grep -E '^ +[0-9]+ generated' "$report" | tail -1 | sed 's/^ *//')"
done
if sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -q "internal error"; then
    echo "the server logged an internal error during contract fuzzing:" >&2
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -B2 -A2 "internal error" >&2
    exit 1
fi
