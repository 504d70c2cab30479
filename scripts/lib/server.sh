# Shared by scripts/e2e.sh, scripts/fuzz.sh, scripts/browser-test.sh and scripts/oidc-interop.sh
# (sourced, not run):
# find the newest server build and start it on a free loopback port with APP_ENV=testing (cheap
# argon2, from .env.testing: run from the repository root) and a temporary SQLite database.

# Prints the newer of target/release/auth-service and target/debug/auth-service, so a stale
# build is never the one tested; fails when neither exists.
newest_server_binary() {
    local binary="" candidate
    for candidate in target/release/auth-service target/debug/auth-service; do
        if [[ -x "$candidate" && ( -z "$binary" || "$candidate" -nt "$binary" ) ]]; then
            binary="$candidate"
        fi
    done
    [[ -n "$binary" ]] && echo "$binary"
}

# start_test_server NAME BINARY WORK_DIR LOG_FILE [--own-issuer]: starts BINARY and waits (30 s
# at most) until GET /health answers; sets BASE_URL and server_pid. On failure prints the server's
# log and exits. With --own-issuer the issuer (JWT_ISSUER) is BASE_URL itself instead of
# .env.testing's, as an OpenID Connect client that discovers the provider from its issuer needs.
# The database is sqlite://WORK_DIR/NAME.db.
start_test_server() {
    local name="$1" binary="$2" work="$3" log="$4" port
    local own_issuer=false
    case "${5:-}" in
        "") ;;
        --own-issuer) own_issuer=true ;;
        *) echo "start_test_server: unknown option '$5'" >&2; exit 2 ;;
    esac
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    BASE_URL="http://127.0.0.1:$port"
    local vars=(APP_ENV=testing HOST=127.0.0.1 PORT="$port" DATABASE_URL="sqlite://$work/$name.db"
                MAIL_OUTBOX_DIR="$work/$name-mail")
    if "$own_issuer"; then
        vars+=("JWT_ISSUER=$BASE_URL")
    fi
    env "${vars[@]}" "$binary" >"$log" 2>&1 & # env execs the binary: $! is the server's pid
    server_pid=$!
    echo "$name: started $binary (pid $server_pid) on $BASE_URL with a temporary database"
    for _ in $(seq 1 300); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "$name: the server exited during start-up; its log:" >&2
            sed 's/^/  /' "$log" >&2
            exit 1
        fi
        if curl -fsS --max-time 1 -o /dev/null "$BASE_URL/health" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "$name: the server did not answer GET /health within 30 s; its log:" >&2
    sed 's/^/  /' "$log" >&2
    exit 1
}
