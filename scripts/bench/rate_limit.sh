#!/usr/bin/env bash
# What the shared rate limit costs per request (issue 15): the cheapest limited request
# (POST /auth/refresh with an unknown token, scripts/bench/rate_limited.lua) on PostgreSQL with
# the rate limit off, then on with a burst too large to refuse anything (at the default rate, so
# leases live as long as in production), its budgets in
# PostgreSQL and (when BENCH_REDIS_URL, default redis://127.0.0.1:6379, answers) in Redis, each
# with leases of 1 token (one round trip per request) and of 8; all from one client (one hot key)
# and from 10,000 clients (X-Forwarded-For).
#
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1/postgres scripts/bench/rate_limit.sh [RESULTS.jsonl]
#
# Needs target/release/auth-service (scripts/bench.sh builds it) and wrk. Prints one line per
# run and, per variant, the cost per request over the rate limit off: 1e6/rps − 1e6/rps(off), in
# µs of the server's capacity. Appends the runs to RESULTS.jsonl when given (scripts/bench.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

: "${BENCH_POSTGRES_URL:?set BENCH_POSTGRES_URL to a maintenance database}"
DURATION="${BENCH_DURATION:-10s}"
REDIS="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"
results="${1:-}"
work="$(mktemp -d)"
server_pid=""
pg_db="bench_rl_$RANDOM$RANDOM"
cleanup() {
    [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
    psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$port"
psql "$BENCH_POSTGRES_URL" -qc "CREATE DATABASE $pg_db" >/dev/null
pg_url="$(python3 -c 'import sys; u=sys.argv[1]; print(u.rsplit("/",1)[0]+"/"+sys.argv[2])' "$BENCH_POSTGRES_URL" "$pg_db")"
server_env=(
    env -i PATH="$PATH" APP_ENV=production HOST=127.0.0.1 PORT="$port" DATABASE_URL="$pg_url"
    JWT_SECRET="benchmark-secret-benchmark-secret-benchmark" JWT_ISSUER="$base"
    RUST_LOG=warn LOG_FORMAT=json TRUST_PROXY_HEADERS=true
    MFA_ENCRYPTION_KEY="$(openssl rand -base64 32)" OIDC_SIGNING_KEY_FILE="$work/oidc.pem"
    RATE_LIMIT_PER_SECOND=5 RATE_LIMIT_BURST=1000000000
)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/oidc.pem" 2>/dev/null

redis_up=false
if command -v redis-cli >/dev/null 2>&1 && redis-cli -u "$REDIS" ping 2>/dev/null | grep -q PONG; then
    redis_up=true
fi

declare -A rps
run() { # $1 name, $2 clients (0: one), then server variables
    local name="$1" clients="$2"; shift 2
    local line
    line="$(READY_LOG="$work/server.log" python3 scripts/bench/ready.py "$base/health" -- \
        "${server_env[@]}" "$@" target/release/auth-service)"
    server_pid="$(awk '{print $4}' <<<"$line")"
    BENCH_CLIENTS="$clients" wrk --latency -d "$DURATION" -t2 -c16 -s scripts/bench/rate_limited.lua \
        "$base" >"$work/$name.txt" 2>&1
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    line="$(grep '^BENCH_JSON ' "$work/$name.txt" | sed 's/^BENCH_JSON //')"
    if [[ -n "$results" ]]; then
        printf '{"name": "%s", "result": %s}\n' "$name" "$line" >>"$results"
    fi
    rps[$name]="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["rps"])' "$line")"
    python3 - "$name" "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
print("  %-34s %9.1f req/s  p50 %.3f ms  p99 %.3f ms  statuses %s" % (sys.argv[1], r["rps"], r["p50_ms"], r["p99_ms"], r["statuses"]))
PY
}

echo "bench: the shared rate limit's cost per request (PostgreSQL${redis_up:+, Redis: $redis_up})"
for clients in 0 10000; do
    tag="$([[ $clients == 0 ]] && echo one_client || echo 10k_clients)"
    run "rl_off_$tag" "$clients" RATE_LIMIT_ENABLED=false
    for lease in 1 8; do
        run "rl_postgres_lease${lease}_$tag" "$clients" RATE_LIMIT_ENABLED=true RATE_LIMIT_LEASE="$lease"
        if $redis_up; then
            run "rl_redis_lease${lease}_$tag" "$clients" RATE_LIMIT_ENABLED=true \
                RATE_LIMIT_LEASE="$lease" REDIS_URL="$REDIS" RATE_LIMIT_KEY_PREFIX="bench-$pg_db:"
        fi
    done
done
echo "bench: cost per limited request over the rate limit off (µs of capacity: 1e6/rps - 1e6/rps_off)"
for name in "${!rps[@]}"; do
    [[ $name == rl_off_* ]] && continue
    off="rl_off_${name#*_lease?_}"
    cost="$(python3 -c "print(round(1e6/${rps[$name]} - 1e6/${rps[$off]}, 1))")"
    echo "  $name: $cost µs"
    if [[ -n "$results" ]]; then
        printf '{"name": "%s_cost_us", "value": %s}\n' "$name" "$cost" >>"$results"
    fi
done | sort
