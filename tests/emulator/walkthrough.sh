#!/usr/bin/env bash
# The README's walkthrough, as a new user runs it: starts the local server (every Lambda's
# router, as `make dev` does) on a free port against the emulator, takes the credentials it
# printed, and runs the README's "Calling the API" blocks verbatim, twice at once: for the dev
# tenant `acme`, and for a second tenant the operator creates (the second block, then the first
# again). Each output line must be what the README shows after `# →`; each tenant's click goes to
# its own landing URL and its credit to its own billing endpoint, checked with its own secret;
# neither tenant's admin key can read the other's program. Every call's status and time is
# printed; any 5xx, failed command or internal error in the server's log fails the run. Run inside
# with-emulator.sh, which provides AWS_ENDPOINT_URL.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python="$root/.venv/bin/python"
port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="$root/target/walkthrough-server.log"
work="$root/target/walkthrough"
rm -rf "$work" && mkdir -p "$work"

started=$(date +%s%N)
PORT="$port" TABLE_NAME=walkthrough "$root/target/debug/local-server" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
    grep -q "export PROMOTER_TOKEN=" "$log" && break
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.05
done
ready_ms=$(( ($(date +%s%N) - started) / 1000000 ))

# The README's blocks: the walkthrough, and the second tenant's set-up.
section=$(sed -n '/^## Calling the API/,/^## Integrate it/p' "$root/README.md")
blocks="$work/blocks"
echo "$section" | awk -v dir="$work" '
    /^```sh$/ { n += 1; inside = 1; next }
    /^```$/ { inside = 0; next }
    inside { print > (dir "/block" n ".sh") }'
[ -s "$work/block1.sh" ] && [ -s "$work/block2.sh" ] || { echo "README.md lacks the walkthrough blocks" >&2; exit 1; }

credentials=$(grep -o "export [A-Z_]*=.*" "$log")
# Each curl also reports its method, URL, status and time on a line of its own.
prelude='curl() { command curl -w "%{stderr}%{method} %{url_effective} %{http_code} %{time_total}\n" "$@"; }'
epilogue='echo; echo "CHECK $TENANT_ID $ADMIN_KEY $PROGRAM $CODE"'
run() {
    local name=$1; shift
    bash -euo pipefail -c "$credentials
$prelude
$(cat "$@")
$epilogue" >"$work/$name.out" 2>"$work/$name.calls"
}
run acme "$work/block1.sh" & first=$!
run globex "$work/block2.sh" "$work/block1.sh" & second=$!
failed=0
wait "$first" || failed=1
wait "$second" || failed=1
if [ "$failed" = 1 ]; then
    tail -n 20 "$work"/*.out "$work"/*.calls >&2
    echo "the README's walkthrough failed" >&2
    exit 1
fi

# What each run printed against what the README says it prints.
"$python" - "$work" <<'PY'
import re, sys, pathlib
work = pathlib.Path(sys.argv[1])
def expected(*blocks):
    lines = []
    for block in blocks:
        for line in (work / block).read_text().splitlines():
            if line.startswith("# → "):
                lines.append(re.split(r"\s{3}\(", line[4:])[0].rstrip())
    return lines
for name, blocks in [("acme", ["block1.sh"]), ("globex", ["block2.sh", "block1.sh"])]:
    # A body without a final newline (the error envelope) ends its line at the epilogue's echo.
    out = [l for l in (work / f"{name}.out").read_text().splitlines()
           if l and not l.startswith("CHECK ")]
    want = [w.replace("acme", name) for w in expected(*blocks)]
    if len(out) != len(want):
        sys.exit(f"{name}: {len(out)} output lines, the README shows {len(want)}:\n" + "\n".join(out))
    for got, line in zip(out, want):
        pattern = re.escape(line).replace(re.escape("<CODE>"), "[A-Z0-9]+")
        if not re.fullmatch(pattern, got):
            sys.exit(f"{name}: the README shows\n  {line}\nbut the walkthrough printed\n  {got}")
print("walkthrough: every output line is the one the README shows (acme and globex)")
PY

# Neither tenant can read the other's program.
read -r _ acme_tenant acme_admin acme_program acme_code < <(grep "^CHECK " "$work/acme.out")
read -r _ globex_tenant globex_admin globex_program globex_code < <(grep "^CHECK " "$work/globex.out")
for pair in "$acme_admin $globex_program" "$globex_admin $acme_program"; do
    set -- $pair
    status=$(command curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/programs/$2" -H "Authorization: Bearer $1")
    [ "$status" = 404 ] || { echo "a tenant read another's program: $status" >&2; exit 1; }
done
# Each tenant's credit reached its own endpoint with a signature of its own secret.
for tenant in "$acme_tenant" "$globex_tenant"; do
    for _ in $(seq 1 100); do
        sed 's/\x1b\[[0-9;]*m//g' "$log" | grep "dev billing: credit booked" | grep -q "path=$tenant/new-customer" && break
        sleep 0.1
    done
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep "dev billing: credit booked" | grep -q "path=$tenant/new-customer" \
        || { echo "no credit of $tenant reached its endpoint" >&2; exit 1; }
done
if sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -q "bad signature"; then
    echo "the dev billing sink refused a signature" >&2; exit 1
fi

echo "walkthrough: the local server answered after ${ready_ms} ms; the README's calls (two tenants at once):"
cat "$work/acme.calls" "$work/globex.calls" | awk '/^(GET|POST|PATCH|DELETE|PUT) / {
        split($2, url, "127.0.0.1:[0-9]+"); ms = $4 * 1000; total += ms; n += 1
        if (ms > max) max = ms
        printf "  %-6s %-52s %s %7.1f ms\n", $1, substr(url[2], 1, 52), $3, ms
        if ($3 >= 500 || $3 == "000") bad += 1
     }
     END {
        printf "  %d calls, %.1f ms in all, slowest %.1f ms\n", n, total, max
        if (n == 0) { print "no calls were made" > "/dev/stderr"; exit 1 }
        if (bad > 0) { print bad " calls failed (5xx or no answer)" > "/dev/stderr"; exit 1 }
     }'
if sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -q "internal error"; then
    echo "the server logged an internal error during the walkthrough:" >&2
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -B2 -A2 "internal error" >&2
    exit 1
fi
