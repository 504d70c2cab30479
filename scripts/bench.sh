#!/usr/bin/env bash
# Load benchmark of auth-service against a bare axum ceiling, with wrk, on this machine.
#
#   scripts/bench.sh
#
# Builds the release binaries, starts the service on a fresh SQLite database with production
# argon2 parameters (m=19456 KiB, t=2, p=1) and the rate limit off, and drives it with wrk (the
# Debian package, installed if missing; Lua scripts in scripts/bench/). Every workload runs
# BENCH_DURATION (default 10s) against 127.0.0.1 only, and the script stops by itself.
#
# Workloads: GET /health; GET /users/me with a valid token; POST /auth/token logins; POST /users
# registrations; POST /auth/refresh chained per connection; client_credentials grants and
# introspections (client_secret_basic); the whole code flow of a signed-in browser; GET /health latency while 32
# connections hammer login; 500 concurrent logins (every request must be answered: 200, or 503
# with Retry-After); the same /users/me and logins with 1,000,000 users and 1,000,000 live
# sessions (filled directly by scripts/bench/fill.py with one precomputed hash); idle and peak
# RSS; start-to-ready on an existing database. The ceiling (examples/ceiling.rs) answers
# GET /users/me with a fixed body after reading the Authorization header. One argon2
# verification is timed with `cargo bench --bench crypto` right before the logins, for the hash
# limit (cores / time), and so is one verification on every core at once.
# With BENCH_POSTGRES_URL (a maintenance database, e.g. postgres://postgres@127.0.0.1/postgres)
# the PostgreSQL workloads of scripts/bench/postgres.sh run too: chained refresh and /users/me on
# one replica and on two replicas (one wrk each, summed), beside SQLite figures taken right before.
# BENCH_ONLY=postgres runs that block alone (with its summary); BENCH_PG_DETAIL=1 adds its pool
# size sweep and a synchronous_commit=off run; BENCH_BUILD=0 uses the release binaries as built.
#
# Writes target/bench/results.json and target/bench/results.md.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

DURATION="${BENCH_DURATION:-10s}"
FILL="${BENCH_FILL:-1000000}"
out="target/bench"
mkdir -p "$out"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

command -v wrk >/dev/null 2>&1 || {
    echo "bench: installing wrk (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}

ONLY="${BENCH_ONLY:-}"
if [[ "${BENCH_BUILD:-1}" == 0 ]]; then
    echo "bench: using the release binaries as built (BENCH_BUILD=0)"
elif [[ "$ONLY" == postgres ]]; then
    echo "bench: building the release binary"
    cargo build --release --locked --quiet --bin auth-service
else
echo "bench: building release binaries"
cargo build --release --locked --quiet --bin auth-service --example ceiling
cargo bench --locked --quiet --bench crypto --no-run 2>/dev/null
cargo bench --locked --quiet --bench mail_queue --no-run 2>/dev/null
fi

# One argon2id verification at the service's parameters, alone and on every core at once, timed
# by criterion right before the login workloads: this machine's speed drifts by several percent
# over minutes, and the hash limit must be taken at the same speed as the logins it bounds.
time_argon2() {
    echo "bench: timing argon2id verification (criterion)"
    rm -rf target/criterion/argon2id
    cargo bench --locked --quiet --bench crypto -- --noplot argon2id >"$work/criterion.txt" 2>&1
    python3 - "$json_results" <<'PY'
import glob, json, os, sys
out = open(sys.argv[1], "a")
for path in glob.glob("target/criterion/argon2id/*/new/estimates.json"):
    ms = json.load(open(path))["mean"]["point_estimate"] / 1e6
    name = "argon2_verify_all_cores_ms" if " cores at once" in path else "argon2_verify_ms"
    out.write(json.dumps({"name": name, "value": round(ms, 2)}) + "\n")
    print(f"  {name}: {ms:.2f}")
PY
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

port="$(free_port)"
base="http://127.0.0.1:$port"
# Production signs ID tokens with a key file (RSA, as an operator would make it).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/oidc.pem" 2>/dev/null
server_env=(
    env -i PATH="$PATH" APP_ENV=production HOST=127.0.0.1 PORT="$port"
    JWT_SECRET="benchmark-secret-benchmark-secret-benchmark" JWT_ISSUER="$base"
    ARGON2_MEMORY_KIB=19456 ARGON2_ITERATIONS=2 ARGON2_PARALLELISM=1
    RATE_LIMIT_ENABLED=false LOGIN_MAX_FAILURES=1000000000 RUST_LOG=warn LOG_FORMAT=json
    OIDC_SIGNING_KEY_FILE="$work/oidc.pem" MFA_ENCRYPTION_KEY="$(openssl rand -base64 32)"
)
server_pid=""
start_server() { # $1: DATABASE_URL; sets server_pid and ready_ms
    local line
    line="$(READY_LOG="$work/server.log" python3 scripts/bench/ready.py "$base/health" -- \
        "${server_env[@]}" DATABASE_URL="$1" target/release/auth-service)"
    server_pid="$(awk '{print $4}' <<<"$line")"
    ready_ms="$(awk '{print $2}' <<<"$line")"
    pids+=("$server_pid")
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""; }

json_results="$work/results.jsonl"
: >"$json_results"
record() { # $1 name, $2 wrk output file
    local line
    line="$(grep '^BENCH_JSON ' "$2" | sed 's/^BENCH_JSON //')"
    printf '{"name": "%s", "result": %s}\n' "$1" "$line" >>"$json_results"
    python3 - "$1" "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
print("  %-28s %10.1f req/s  p50 %.2f ms  p99 %.2f ms  statuses %s" % (sys.argv[1], r["rps"], r["p50_ms"], r["p99_ms"], r["statuses"]))
PY
}
run_wrk() { # $1 name, then wrk arguments
    local name="$1"; shift
    wrk --latency -d "$DURATION" "$@" >"$work/$name.txt" 2>&1
    record "$name" "$work/$name.txt"
}
extra() { printf '{"name": "%s", "value": %s}\n' "$1" "$2" >>"$json_results"; echo "  $1: $2"; }

# BENCH_ONLY=postgres: the PostgreSQL block alone, then its summary.
if [[ "$ONLY" == postgres ]]; then
    [[ -n "${BENCH_POSTGRES_URL:-}" ]] || { echo "bench: BENCH_ONLY=postgres needs BENCH_POSTGRES_URL" >&2; exit 1; }
    export BENCH_USER=benchuser BENCH_PASSWORD="bench passphrase 0"
    source scripts/bench/postgres.sh
    extra "cores" "$(nproc)"
    python3 scripts/bench/summarize.py "$json_results" "$out"
    exit 0
fi

db="$work/bench.db"
start_server "sqlite://$db"
extra "start_to_ready_ms_new_database" "$ready_ms"
sleep 1
extra "idle_rss_mib" "$(python3 -c "print(round($(rss_kib "$server_pid")/1024, 1))")"

export BENCH_USER=benchuser BENCH_PASSWORD="bench passphrase 0"
curl -sf -o /dev/null -X POST "$base/users" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$BENCH_USER\", \"password\": \"$BENCH_PASSWORD\"}"
login() { curl -sf -X POST "$base/auth/token" -d "username=$BENCH_USER&password=$BENCH_PASSWORD"; }
token="$(login | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

echo "bench: workloads against $base"
run_wrk health -t2 -c64 -s scripts/bench/get.lua "$base/health"
BENCH_TOKEN="$token" run_wrk users_me -t2 -c64 -s scripts/bench/get.lua "$base/users/me"
time_argon2
run_wrk login -t2 -c16 -s scripts/bench/login.lua "$base"
echo "bench: password-grant logins with TOTP against logins without"
python3 scripts/bench/totp_login.py "$base" 200 >"$work/totp.json"
extra "totp_login_overhead_pct" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totp_over_plain_mean_pct"])' "$work/totp.json")"
BENCH_TAG="r$RANDOM" run_wrk register -t2 -c16 -s scripts/bench/register.lua "$base"
for i in $(seq 1 16); do
    login | python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])'
done >"$work/tokens.txt"
BENCH_TOKENS_FILE="$work/tokens.txt" run_wrk refresh_sqlite -t16 -c16 -s scripts/bench/refresh.lua "$base"

# OpenID Connect: client credentials, introspection (both with client_secret_basic) and the whole
# code flow of a signed-in browser (authorize -> 303 with a code -> token), 16 connections.
"${server_env[@]}" DATABASE_URL="sqlite://$db" target/release/auth-service seed \
    --username benchadmin --password "$BENCH_PASSWORD" --role admin >/dev/null 2>&1
eval "$(python3 scripts/bench/oidc_setup.py "$base" benchadmin "$BENCH_PASSWORD" "$BENCH_USER" "$BENCH_PASSWORD")"
BENCH_AUTH="$BENCH_CLIENT_BASIC" BENCH_BODY="grant_type=client_credentials" \
    run_wrk client_credentials -t2 -c16 -s scripts/bench/post_form.lua "$base/auth/token"
BENCH_AUTH="$BENCH_CLIENT_BASIC" BENCH_BODY="token=$BENCH_INTROSPECT_TOKEN" \
    run_wrk introspection -t2 -c16 -s scripts/bench/post_form.lua "$base/auth/introspect"
export BENCH_AUTHORIZE_QUERY BENCH_COOKIE BENCH_CLIENT_ID BENCH_VERIFIER BENCH_REDIRECT_URI_ENCODED
run_wrk code_flow -t16 -c16 -s scripts/bench/code_flow.lua "$base"

# /health while 32 connections hammer login (the login run outlasts the health run).
wrk -d "$((${DURATION%s} + 4))s" -t2 -c32 -s scripts/bench/login.lua "$base" >"$work/storm.txt" 2>&1 &
storm=$!
pids+=("$storm")
sleep 2
run_wrk health_during_login_storm -t1 -c4 -s scripts/bench/get.lua "$base/health"
wait "$storm" || true
record login_storm "$work/storm.txt"

# 500 concurrent logins: every request answered (200 or 503 + Retry-After), bounded memory.
run_wrk login_500_connections -t2 -c500 --timeout 30s -s scripts/bench/login.lua "$base"
extra "peak_rss_mib" "$(python3 -c "print(round($(hwm_kib "$server_pid")/1024, 1))")"
stop_server

# Start to ready on the existing database.
start_server "sqlite://$db"
extra "start_to_ready_ms_existing_database" "$ready_ms"
stop_server

echo "bench: the mail queue to an in-process SMTP sink (SQLite)"
cargo bench --locked --quiet --bench mail_queue >"$work/mail.txt" 2>&1
cat "$work/mail.txt"
extra "mail_queue_mails_per_s" "$(awk '/mails\/s delivered/ {for (i = 1; i <= NF; i++) if ($i == "mails/s") print $(i-1)}' "$work/mail.txt")"

# The same with 1,000,000 users and 1,000,000 live sessions. This machine's speed drifts by
# several percent over minutes, so the small-table figures to compare with are measured again
# right before, on a copy of the small database, rather than taken from the start of the run.
python3 -c 'import sqlite3,sys; sqlite3.connect(sys.argv[1]).backup(sqlite3.connect(sys.argv[2]))' \
    "$db" "$work/small.db"
echo "bench: filling $FILL users and sessions"
python3 scripts/bench/fill.py "$db" "$FILL"
# The fill leaves most of a gigabyte of dirty pages; flushed now, not during the measurements.
sync
start_server "sqlite://$work/small.db"
token="$(login | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
BENCH_TOKEN="$token" run_wrk users_me_small_adjacent -t2 -c64 -s scripts/bench/get.lua "$base/users/me"
run_wrk login_small_adjacent -t2 -c16 -s scripts/bench/login.lua "$base"
stop_server
start_server "sqlite://$db"
token="$(login | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
BENCH_TOKEN="$token" run_wrk users_me_large -t2 -c64 -s scripts/bench/get.lua "$base/users/me"
run_wrk login_large -t2 -c16 -s scripts/bench/login.lua "$base"
stop_server

if [[ -n "${BENCH_POSTGRES_URL:-}" ]]; then
    source scripts/bench/postgres.sh
fi

# The ceiling.
ceiling_port="$(free_port)"
target/release/examples/ceiling "127.0.0.1:$ceiling_port" >/dev/null 2>&1 &
ceiling=$!
pids+=("$ceiling")
sleep 0.5
BENCH_TOKEN="x" run_wrk ceiling_users_me -t2 -c64 -s scripts/bench/get.lua "http://127.0.0.1:$ceiling_port/users/me"
kill "$ceiling"

extra "cores" "$(nproc)"

python3 scripts/bench/summarize.py "$json_results" "$out"
