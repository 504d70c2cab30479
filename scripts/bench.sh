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
# RSS; start-to-ready on an existing database; /users/me over the tokens of 30,000 signed-in
# users, HS256 and EdDSA (see working_set_workloads; BENCH_ONLY=working_set runs only that). The ceiling (examples/ceiling.rs) answers
# GET /users/me with a fixed body after reading the Authorization header. One argon2
# verification is timed with `cargo bench --bench crypto` right before the logins, for the hash
# limit (cores / time), and so is one verification on every core at once.
# With BENCH_POSTGRES_URL (a maintenance database, e.g. postgres://postgres@127.0.0.1/postgres)
# the PostgreSQL workloads of scripts/bench/postgres.sh run too: chained refresh and /users/me on
# one replica and on two replicas (one wrk each, summed), beside SQLite figures taken right before;
# the cross-replica revocation latency is measured with two replicas
# (scripts/bench/revocation_latency.py, BENCH_REVOCATIONS trials); and scripts/bench/rate_limit.sh
# measures the shared rate limit's cost per request (PostgreSQL, and Redis when it answers).
# BENCH_ONLY=postgres runs the PostgreSQL workloads alone (with their summary); BENCH_PG_DETAIL=1
# adds a pool size sweep and a synchronous_commit=off run; BENCH_BUILD=0 uses the release
# binaries as built.
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
elif [[ -n "$ONLY" ]]; then
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

# Working set (issue 15): GET /users/me cycling through the tokens of BENCH_WORKING_SET (default
# 30,000) logged-in users, with HS256 and with EdDSA, beside one token sent through the same Lua
# script to the same server right before, and the server's private memory (RssAnon in
# /proc/PID/status; the database's mapped pages are file-backed) after the run. The users are
# inserted directly (scripts/bench/working_set.py) with the hash of a first user registered on a
# server started with cheap argon2 parameters, and signed in through that server's API: real
# tokens, each with its own session. The measuring server is then started with the production
# parameters on the same database and key, and one untimed pass of 5 s over the tokens warms its
# caches, as a busy server's are. `BENCH_ONLY=working_set scripts/bench.sh` runs only this.
WORKING_SET="${BENCH_WORKING_SET:-30000}"
rss_anon_kib() { awk '/^RssAnon/ {print $2}' "/proc/$1/status"; }
ws_start() { # $1: DATABASE_URL, then VAR=VALUE overrides; sets server_pid
    local line
    line="$(READY_LOG="$work/server.log" python3 scripts/bench/ready.py "$base/health" -- \
        "${server_env[@]}" DATABASE_URL="$1" "${@:2}" target/release/auth-service)"
    server_pid="$(awk '{print $4}' <<<"$line")"
    pids+=("$server_pid")
}
working_set_workloads() {
    local alg name key_env ws_db ws_tokens ws_password="bench passphrase 0"
    openssl genpkey -algorithm ed25519 -out "$work/ed25519.pem" 2>/dev/null
    for alg in HS256 EdDSA; do
        name="$(tr '[:upper:]' '[:lower:]' <<<"$alg")"
        key_env=(JWT_ALGORITHM="$alg")
        [[ "$alg" == EdDSA ]] && key_env+=(JWT_PRIVATE_KEY_FILE="$work/ed25519.pem")
        ws_db="$work/working_set_$name.db"
        ws_tokens="$work/working_set_$name.txt"
        echo "bench: working set of $WORKING_SET signed-in users, $alg"
        ws_start "sqlite://$ws_db" "${key_env[@]}" ARGON2_MEMORY_KIB=64 ARGON2_ITERATIONS=1
        curl -sf -o /dev/null -X POST "$base/users" -H 'Content-Type: application/json' \
            -d "{\"username\": \"wsfirst\", \"password\": \"$ws_password\"}"
        python3 scripts/bench/working_set.py fill "$ws_db" "$WORKING_SET"
        python3 scripts/bench/working_set.py login "$base" "$WORKING_SET" "$ws_password" "$ws_tokens"
        head -n 1 "$ws_tokens" >"$work/one_token_$name.txt"
        stop_server
        ws_start "sqlite://$ws_db" "${key_env[@]}"
        BENCH_TOKENS_FILE="$ws_tokens" wrk -d 5s -t2 -c64 -s scripts/bench/tokens.lua "$base/users/me" >/dev/null 2>&1
        BENCH_TOKENS_FILE="$work/one_token_$name.txt" \
            run_wrk "users_me_one_token_$name" -t2 -c64 -s scripts/bench/tokens.lua "$base/users/me"
        BENCH_TOKENS_FILE="$ws_tokens" \
            run_wrk "users_me_working_set_$name" -t2 -c64 -s scripts/bench/tokens.lua "$base/users/me"
        extra "working_set_${name}_rss_anon_mib" "$(python3 -c "print(round($(rss_anon_kib "$server_pid")/1024, 1))")"
        stop_server
    done
    extra "working_set_tokens" "$WORKING_SET"
}
if [[ "$ONLY" == working_set ]]; then
    working_set_workloads
    python3 scripts/bench/summarize.py "$json_results" "$out"
    exit 0
fi

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

# Cross-replica revocation latency (issue 15): two replicas on one fresh PostgreSQL database;
# a logout answered by the first, polled on the second until it refuses the token.
if [[ -n "${BENCH_POSTGRES_URL:-}" ]]; then
    echo "bench: revocation latency across two PostgreSQL replicas"
    rv_db="bench_revocation_$RANDOM$RANDOM"
    psql "$BENCH_POSTGRES_URL" -qc "CREATE DATABASE $rv_db" >/dev/null
    rv_url="$(python3 -c 'import sys; u=sys.argv[1]; print(u.rsplit("/",1)[0]+"/"+sys.argv[2])' "$BENCH_POSTGRES_URL" "$rv_db")"
    rv_pids=()
    rv_bases=()
    for rv_i in 1 2; do
        rv_port="$(free_port)"
        rv_line="$(READY_LOG="$work/revocation_$rv_i.log" python3 scripts/bench/ready.py "http://127.0.0.1:$rv_port/health" -- \
            "${server_env[@]}" PORT="$rv_port" DATABASE_URL="$rv_url" target/release/auth-service)"
        rv_pid="$(awk '{print $4}' <<<"$rv_line")"
        pids+=("$rv_pid")
        rv_pids+=("$rv_pid")
        rv_bases+=("http://127.0.0.1:$rv_port")
    done
    python3 scripts/bench/revocation_latency.py "${rv_bases[0]}" "${rv_bases[1]}" "${BENCH_REVOCATIONS:-200}" >"$work/revocation.json"
    cat "$work/revocation.json"
    for rv_key in p50_ms p99_ms max_ms; do
        extra "revocation_latency_$rv_key" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/revocation.json" "$rv_key")"
    done
    for rv_pid in "${rv_pids[@]}"; do kill "$rv_pid"; wait "$rv_pid" 2>/dev/null || true; done
    psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE $rv_db WITH (FORCE)" >/dev/null
fi

# Issue 15: what the shared rate limit costs per limited request, on PostgreSQL and in
# Redis (when it answers), with leases of 1 and 8 tokens, one client and 10,000 clients.
if [[ -n "${BENCH_POSTGRES_URL:-}" ]]; then
    bash scripts/bench/rate_limit.sh "$json_results"
fi
working_set_workloads

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
