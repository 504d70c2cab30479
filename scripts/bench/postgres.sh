# The PostgreSQL workloads of scripts/bench.sh (sourced by it, with BENCH_POSTGRES_URL set; with
# BENCH_ONLY=postgres this block runs alone). Uses bench.sh's helpers: start_server, stop_server,
# run_wrk, record, extra, login, free_port, server_env, $work, $json_results, $DURATION.
#
# 1. SQLite figures measured right before, on a fresh database (the machine's speed drifts over
#    minutes, so the ratios are taken between adjacent runs): chained refresh, GET /users/me.
# 2. One replica on a fresh PostgreSQL database: the same two workloads.
# 3. Two replicas (two release binaries, one database), one wrk per replica at the same time,
#    half the connections each, summed.
# With BENCH_PG_DETAIL=1 also: chained refresh at DATABASE_MAX_CONNECTIONS 4, 8, 16, 32, and with
# `synchronous_commit = off` set on the bench database only (ALTER DATABASE, dropped with it).

# Sets pg_name and pg_url to a fresh database on BENCH_POSTGRES_URL's server (not in a
# subshell: pg_dbs must remember it, for pg_drop_all).
pg_create() {
    pg_name="bench_$RANDOM$RANDOM"
    psql "$BENCH_POSTGRES_URL" -qc "CREATE DATABASE $pg_name" >/dev/null
    pg_dbs+=("$pg_name")
    pg_url="$(python3 -c 'import sys; u=sys.argv[1]; print(u.rsplit("/",1)[0]+"/"+sys.argv[2])' "$BENCH_POSTGRES_URL" "$pg_name")"
}
pg_drop_all() {
    for name in "${pg_dbs[@]}"; do
        psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null || true
    done
    pg_dbs=()
}
pg_dbs=()
trap 'pg_drop_all; cleanup' EXIT

# $1: base URL; $2: how many refresh tokens to write to $3 (one login each).
pg_tokens() {
    local url="$1" n="$2" file="$3"
    for i in $(seq 1 "$n"); do
        curl -sf -X POST "$url/auth/token" -d "username=$BENCH_USER&password=$BENCH_PASSWORD" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])'
    done >"$file"
}
pg_access_token() {
    curl -sf -X POST "$1/auth/token" -d "username=$BENCH_USER&password=$BENCH_PASSWORD" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
pg_register() {
    curl -sf -o /dev/null -X POST "$1/users" -H 'Content-Type: application/json' \
        -d "{\"username\": \"$BENCH_USER\", \"password\": \"$BENCH_PASSWORD\"}"
}

# Records the sum of several wrk runs made at the same time: requests and rates add up, the
# latency percentiles are the worst of the runs (an upper bound of the merged percentile).
record_sum() { # $1 name, then the wrk output files
    local name="$1"; shift
    local line
    line="$(python3 - "$@" <<'PY'
import json, sys
runs = []
for path in sys.argv[1:]:
    line = next(l for l in open(path) if l.startswith("BENCH_JSON "))
    runs.append(json.loads(line[len("BENCH_JSON "):]))
out = {
    "requests": sum(r["requests"] for r in runs),
    "duration_us": max(r["duration_us"] for r in runs),
    "rps": round(sum(r["rps"] for r in runs), 1),
    "replicas": len(runs),
    "per_replica_rps": [r["rps"] for r in runs],
}
for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
    out[k] = max(r[k] for r in runs)
out["errors"] = {k: sum(r["errors"][k] for r in runs) for k in runs[0]["errors"]}
statuses = {}
for r in runs:
    for s, n in r["statuses"].items():
        statuses[s] = statuses.get(s, 0) + n
out["statuses"] = statuses
print(json.dumps(out))
PY
)"
    printf '{"name": "%s", "result": %s}\n' "$name" "$line" >>"$json_results"
    python3 - "$name" "$line" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
print("  %-28s %10.1f req/s  (%s)  p99 ≤ %.2f ms  statuses %s" % (sys.argv[1], r["rps"], " + ".join(f"{x:.0f}" for x in r["per_replica_rps"]), r["p99_ms"], r["statuses"]))
PY
}

echo "bench: SQLite reference for the PostgreSQL ratios (adjacent runs)"
start_server "sqlite://$work/pg_reference.db"
pg_register "$base"
pg_tokens "$base" 16 "$work/tokens.txt"
BENCH_TOKENS_FILE="$work/tokens.txt" run_wrk refresh_sqlite_pg_adjacent -t16 -c16 -s scripts/bench/refresh.lua "$base"
BENCH_TOKEN="$(pg_access_token "$base")" run_wrk users_me_sqlite_pg_adjacent -t2 -c64 -s scripts/bench/get.lua "$base/users/me"
stop_server

echo "bench: PostgreSQL, one replica"
pg_create
start_server "$pg_url"
pg_register "$base"
pg_tokens "$base" 16 "$work/tokens.txt"
BENCH_TOKENS_FILE="$work/tokens.txt" run_wrk refresh_postgres -t16 -c16 -s scripts/bench/refresh.lua "$base"
BENCH_TOKEN="$(pg_access_token "$base")" run_wrk users_me_postgres -t2 -c64 -s scripts/bench/get.lua "$base/users/me"
stop_server

echo "bench: PostgreSQL, two replicas on one database, one wrk per replica"
pg_create
start_server "$pg_url"
replica_a="$server_pid"
port_b="$(free_port)"
base_b="http://127.0.0.1:$port_b"
line="$(READY_LOG="$work/server_b.log" python3 scripts/bench/ready.py "$base_b/health" -- \
    "${server_env[@]}" PORT="$port_b" DATABASE_URL="$pg_url" target/release/auth-service)"
replica_b="$(awk '{print $4}' <<<"$line")"
pids+=("$replica_b")
pg_register "$base"
pg_tokens "$base" 8 "$work/tokens_a.txt"
pg_tokens "$base_b" 8 "$work/tokens_b.txt"
BENCH_TOKENS_FILE="$work/tokens_a.txt" wrk --latency -d "$DURATION" -t8 -c8 -s scripts/bench/refresh.lua "$base" >"$work/refresh_a.txt" 2>&1 &
wrk_a=$!
BENCH_TOKENS_FILE="$work/tokens_b.txt" wrk --latency -d "$DURATION" -t8 -c8 -s scripts/bench/refresh.lua "$base_b" >"$work/refresh_b.txt" 2>&1
wait "$wrk_a"
record_sum refresh_postgres_2_replicas "$work/refresh_a.txt" "$work/refresh_b.txt"
token="$(pg_access_token "$base")"
BENCH_TOKEN="$token" wrk --latency -d "$DURATION" -t1 -c32 -s scripts/bench/get.lua "$base/users/me" >"$work/me_a.txt" 2>&1 &
wrk_a=$!
BENCH_TOKEN="$token" wrk --latency -d "$DURATION" -t1 -c32 -s scripts/bench/get.lua "$base_b/users/me" >"$work/me_b.txt" 2>&1
wait "$wrk_a"
record_sum users_me_postgres_2_replicas "$work/me_a.txt" "$work/me_b.txt"
kill "$replica_b"; wait "$replica_b" 2>/dev/null || true
stop_server

if [[ "${BENCH_PG_DETAIL:-}" == 1 ]]; then
    echo "bench: PostgreSQL chained refresh by pool size, and with synchronous_commit off"
    for size in 4 8 16 32; do
        saved=("${server_env[@]}")
        server_env+=(DATABASE_MAX_CONNECTIONS="$size")
        pg_create
        start_server "$pg_url"
        server_env=("${saved[@]}")
        pg_register "$base"
        pg_tokens "$base" 16 "$work/tokens.txt"
        BENCH_TOKENS_FILE="$work/tokens.txt" run_wrk "refresh_postgres_pool_$size" -t16 -c16 -s scripts/bench/refresh.lua "$base"
        stop_server
    done
    pg_create
    psql "$BENCH_POSTGRES_URL" -qc "ALTER DATABASE $pg_name SET synchronous_commit = off" >/dev/null
    start_server "$pg_url"
    pg_register "$base"
    pg_tokens "$base" 16 "$work/tokens.txt"
    BENCH_TOKENS_FILE="$work/tokens.txt" run_wrk refresh_postgres_sync_off -t16 -c16 -s scripts/bench/refresh.lua "$base"
    stop_server
fi
pg_drop_all
