#!/usr/bin/env bash
# End-to-end walkthrough of auth-service with curl:
#   health → register → login → /users/me → /protected → refresh (JSON and form) →
#   refresh-token reuse (session revoked) → password change → logout → revoke.
#
# Usage:
#   scripts/e2e.sh            run against $BASE_URL (default http://127.0.0.1:8000)
#   scripts/e2e.sh --spawn    start target/{release,debug}/auth-service on a free port with a
#                             temporary SQLite database (APP_ENV=testing), run, stop it
#
# Every run registers a fresh random user, so it can be repeated against the same server.
# Prints one line per step; exits non-zero with the offending response on the first surprise.
# Needs curl and python3 (used for JSON; jq is not required).
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
}

spawn=false
for arg in "$@"; do
    case "$arg" in
        --spawn) spawn=true ;;
        -h | --help) usage; exit 0 ;;
        *) echo "e2e: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "e2e: '$tool' is required but not installed" >&2; exit 2; }
done

BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
BASE_URL="${BASE_URL%/}"

work="$(mktemp -d "${TMPDIR:-/tmp}/auth-e2e.XXXXXX")"
server_pid=""
server_log="$work/server.log"

cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- output helpers ---------------------------------------------------------------------------

step_no=0
current_step=""

step() {
    step_no=$((step_no + 1))
    current_step="$*"
}

ok() {
    printf 'ok   %2d  %s\n' "$step_no" "${1:-$current_step}"
}

fail() {
    {
        printf 'FAIL %2d  %s\n' "$step_no" "$current_step"
        printf '         %s\n' "$1"
        if [[ -n "${last_request:-}" ]]; then
            printf '         request:  %s\n' "$last_request"
        fi
        if [[ -s "$work/body" ]]; then
            printf '         response: HTTP %s\n' "${status:-?}"
            head -c 2000 "$work/body" | sed 's/^/           /'
            echo
        fi
        if [[ -n "$server_pid" && -s "$server_log" ]]; then
            echo "         last server log lines ($server_log):"
            tail -n 20 "$server_log" | sed 's/^/           /'
        fi
    } >&2
    exit 1
}

# --- HTTP helpers -----------------------------------------------------------------------------

# http METHOD PATH [curl args...]: sets $status; the body is in $work/body, headers in
# $work/headers.
http() {
    local method="$1" path="$2"
    shift 2
    last_request="$method $path"
    : >"$work/body"
    : >"$work/headers"
    if ! status="$(curl -sS --max-time 15 -X "$method" -o "$work/body" -D "$work/headers" \
        -w '%{http_code}' "$@" "$BASE_URL$path" 2>"$work/curl.err")"; then
        fail "curl could not complete $method $BASE_URL$path: $(cat "$work/curl.err")"
    fi
}

# http_json METHOD PATH JSON [curl args...]
http_json() {
    local method="$1" path="$2" json="$3"
    shift 3
    http "$method" "$path" -H 'Content-Type: application/json' --data-binary "$json" "$@"
}

# http_form METHOD PATH name=value... (each value is URL-encoded by curl)
http_form() {
    local method="$1" path="$2"
    shift 2
    local args=()
    for pair in "$@"; do args+=(--data-urlencode "$pair"); done
    http "$method" "$path" "${args[@]}"
}

bearer() { printf 'Authorization: Bearer %s' "$1"; }

expect_status() {
    [[ "$status" == "$1" ]] || fail "expected HTTP $1, got HTTP $status"
}

# json_obj key value [key value...]: a JSON object of strings, safely encoded.
json_obj() {
    python3 -c 'import json, sys; a = sys.argv[1:]; print(json.dumps(dict(zip(a[::2], a[1::2]))))' "$@"
}

# field PATH: the value at a dotted path of the last JSON body (strings raw, the rest as JSON).
# Fails the step if the body is not JSON or the field is missing.
field() {
    local value
    if ! value="$(python3 - "$work/body" "$1" <<'PY'
import json, sys
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
except Exception as e:
    sys.exit(f"body is not JSON: {e}")
for key in sys.argv[2].split("."):
    if isinstance(doc, list) and key.isdigit() and int(key) < len(doc):
        doc = doc[int(key)]
    elif isinstance(doc, dict) and key in doc:
        doc = doc[key]
    else:
        sys.exit(f"field '{sys.argv[2]}' is missing")
print(doc if isinstance(doc, str) else json.dumps(doc))
PY
    )" 2>"$work/field.err"; then
        fail "cannot read '$1' from the response body: $(cat "$work/field.err")"
    fi
    printf '%s' "$value"
}

expect_field() {
    local actual
    actual="$(field "$1")"
    [[ "$actual" == "$2" ]] || fail "expected $1 = $2, got $actual"
}

expect_nonempty_field() {
    local actual
    actual="$(field "$1")"
    [[ -n "$actual" && "$actual" != "null" ]] || fail "expected a non-empty $1"
}

expect_no_field() {
    if python3 -c 'import json, sys; sys.exit(0 if sys.argv[2] in json.load(open(sys.argv[1])) else 1)' \
        "$work/body" "$1" 2>/dev/null; then
        fail "the response must not contain '$1'"
    fi
}

# header NAME: the value of a response header of the last response (case-insensitive name).
header() {
    tr -d '\r' <"$work/headers" | awk -v name="$(echo "$1" | tr '[:upper:]' '[:lower:]')" '
        { split($0, kv, ":"); if (tolower(kv[1]) == name) { sub(/^[^:]*:[ \t]*/, ""); value = $0 } }
        END { print value }'
}

expect_header_contains() {
    local value
    value="$(header "$1")"
    [[ "$value" == *"$2"* ]] || fail "expected header $1 to contain '$2', got '${value:-<absent>}'"
}

# A 401 problem document with a Bearer challenge.
expect_unauthorized() {
    expect_status 401
    expect_header_contains WWW-Authenticate 'Bearer'
    [[ -z "${1:-}" ]] || expect_header_contains WWW-Authenticate "$1"
    expect_header_contains Content-Type 'application/problem+json'
}

# An RFC 6749 error body.
expect_oauth_error() {
    expect_status "$1"
    expect_field error "$2"
    expect_nonempty_field error_description
}

# A successful token response; sets $access and $refresh.
expect_token_response() {
    expect_status 200
    expect_field token_type Bearer
    access="$(field access_token)"
    refresh="$(field refresh_token)"
    [[ "$access" == *.*.* ]] || fail "access_token is not a JWT"
    [[ -n "$refresh" ]] || fail "refresh_token is empty"
    local expires_in
    expires_in="$(field expires_in)"
    [[ "$expires_in" =~ ^[0-9]+$ && "$expires_in" -gt 0 ]] || fail "expires_in is not a positive integer: $expires_in"
    expect_nonempty_field refresh_expires_in
    field scope >/dev/null
    expect_header_contains Cache-Control no-store
    expect_header_contains Pragma no-cache
}

# The payload of a JWT, as JSON, into $work/body (so `field` can read its claims).
decode_jwt_payload() {
    python3 - "$1" >"$work/body" <<'PY'
import base64, sys
payload = sys.argv[1].split(".")[1]
print(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode())
PY
}

decode_jwt_header() {
    python3 - "$1" >"$work/body" <<'PY'
import base64, sys
part = sys.argv[1].split(".")[0]
print(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode())
PY
}

# --- --spawn: start a private server ----------------------------------------------------------

if "$spawn"; then
    repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$repo_root" # .env.testing is read from the working directory
    binary=""
    source scripts/lib/server.sh
    binary="$(newest_server_binary || true)"
    if [[ -z "$binary" ]]; then
        echo "e2e: no server binary in $repo_root/target/{release,debug}/auth-service; run \`cargo build\` (or \`cargo build --release\`) first" >&2
        exit 2
    fi
    start_test_server e2e "$binary" "$work" "$server_log"
fi

echo "e2e: walkthrough against $BASE_URL"

suffix="$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
username="e2e_$suffix"
password="e2e-password-$suffix"
new_password="e2e-new-password-$suffix"
email="$username@example.com"
username_upper="$(printf '%s' "$username" | tr '[:lower:]' '[:upper:]')"

# --- health -----------------------------------------------------------------------------------

step "GET /health is 200 with status ok and database ok"
http GET /health
expect_status 200
expect_field status ok
expect_field checks.database ok
expect_nonempty_field version
ok

step "GET /health/live is 200 with status ok"
http GET /health/live
expect_status 200
expect_field status ok
ok

# --- registration -----------------------------------------------------------------------------

step "POST /users registers $username (201, Location, user object without password)"
http_json POST /users "$(json_obj username "$username" password "$password" email "$email" full_name "E2E Test")"
expect_status 201
user_id="$(field id)"
expect_field username "$username"
expect_field email "$email"
expect_field roles '["user"]'
expect_field is_active true
expect_nonempty_field created_at
expect_no_field password
expect_no_field password_hash
expect_header_contains Location "/users/$user_id"
ok

step "POST /users with the same username in another case is 409 username_taken"
http_json POST /users "$(json_obj username "$username_upper" password "$password")"
expect_status 409
expect_field code username_taken
expect_header_contains Content-Type application/problem+json
ok

# --- login ------------------------------------------------------------------------------------

step "POST /auth/token (password grant) with a wrong password is 400 invalid_grant"
http_form POST /auth/token grant_type=password "username=$username" "password=wrong-$password"
expect_oauth_error 400 invalid_grant
ok

step "POST /auth/token (password grant) issues tokens"
http_form POST /auth/token grant_type=password "username=$username" "password=$password"
expect_token_response
expect_field scope user
access1="$access"
refresh1="$refresh"
ok

step "the access token is an at+jwt with the contract's claims"
decode_jwt_header "$access1"
expect_field typ at+jwt
expect_field alg HS256
expect_nonempty_field kid
decode_jwt_payload "$access1"
expect_field sub "$user_id"
expect_field username "$username"
expect_field roles '["user"]'
expect_field scope user
for claim in iss aud exp iat nbf jti sid; do expect_nonempty_field "$claim"; done
session1="$(field sid)"
ok

# --- authenticated calls ----------------------------------------------------------------------

step "GET /users/me without a token is 401 with WWW-Authenticate: Bearer"
http GET /users/me
expect_unauthorized
ok

step "GET /users/me with the access token returns the user"
http GET /users/me -H "$(bearer "$access1")"
expect_status 200
expect_field id "$user_id"
expect_field username "$username"
ok

step "GET /protected greets the user"
http GET /protected -H "$(bearer "$access1")"
expect_status 200
expect_field message "Hello, $username!"
expect_field username "$username"
expect_field user_id "$user_id"
ok

# --- refresh ----------------------------------------------------------------------------------

step "POST /auth/refresh (JSON) rotates the refresh token"
http_json POST /auth/refresh "$(json_obj refresh_token "$refresh1")"
expect_token_response
refresh2="$refresh"
access2="$access"
[[ "$refresh2" != "$refresh1" ]] || fail "the refresh token was not rotated"
ok

step "POST /auth/token (refresh_token grant) rotates it again, same session"
http_form POST /auth/token grant_type=refresh_token "refresh_token=$refresh2"
expect_token_response
refresh3="$refresh"
access3="$access"
[[ "$refresh3" != "$refresh2" ]] || fail "the refresh token was not rotated"
decode_jwt_payload "$access3"
expect_field sid "$session1"
ok

step "GET /users/me with the refreshed access token works"
http GET /users/me -H "$(bearer "$access3")"
expect_status 200
expect_field id "$user_id"
ok

step "reusing the first (rotated) refresh token is 400 invalid_grant"
http_json POST /auth/refresh "$(json_obj refresh_token "$refresh1")"
expect_oauth_error 400 invalid_grant
ok

step "after the reuse the whole session is revoked: latest refresh token refused"
http_form POST /auth/token grant_type=refresh_token "refresh_token=$refresh3"
expect_oauth_error 400 invalid_grant
ok

step "after the reuse the session's access tokens are refused (401 invalid_token)"
for token in "$access2" "$access3"; do
    http GET /users/me -H "$(bearer "$token")"
    expect_unauthorized 'error="invalid_token"'
done
ok

# --- password change --------------------------------------------------------------------------

step "log in twice more (sessions A and B)"
http_form POST /auth/token grant_type=password "username=$username" "password=$password"
expect_token_response
access_a="$access"
refresh_a="$refresh"
http_form POST /auth/token "username=$username_upper" "password=$password" # no grant_type: password; any case
expect_token_response
access_b="$access"
ok

step "PUT /users/me/password with a wrong current password is 400 wrong_password"
http_json PUT /users/me/password "$(json_obj current_password "wrong-$password" new_password "$new_password")" \
    -H "$(bearer "$access_a")"
expect_status 400
expect_field code wrong_password
ok

step "PUT /users/me/password (session A) is 204"
http_json PUT /users/me/password "$(json_obj current_password "$password" new_password "$new_password")" \
    -H "$(bearer "$access_a")"
expect_status 204
ok

step "the other session (B) is revoked, session A still works"
http GET /users/me -H "$(bearer "$access_b")"
expect_unauthorized 'error="invalid_token"'
http GET /users/me -H "$(bearer "$access_a")"
expect_status 200
ok

step "the old password is refused, the new one logs in"
http_form POST /auth/token grant_type=password "username=$username" "password=$password"
expect_oauth_error 400 invalid_grant
http_form POST /auth/token grant_type=password "username=$username" "password=$new_password"
expect_token_response
access_c="$access"
refresh_c="$refresh"
ok

# --- logout -----------------------------------------------------------------------------------

step "POST /auth/logout (session A) is 204"
http POST /auth/logout -H "$(bearer "$access_a")"
expect_status 204
ok

step "after logout the access token is 401 with WWW-Authenticate: Bearer error=\"invalid_token\""
http GET /users/me -H "$(bearer "$access_a")"
expect_unauthorized 'error="invalid_token"'
ok

step "after logout the session's refresh token is 400 invalid_grant"
http_form POST /auth/token grant_type=refresh_token "refresh_token=$refresh_a"
expect_oauth_error 400 invalid_grant
ok

# --- revocation (RFC 7009) --------------------------------------------------------------------

step "POST /auth/revoke without token is 400 invalid_request"
http_form POST /auth/revoke token_type_hint=refresh_token
expect_oauth_error 400 invalid_request
ok

step "POST /auth/revoke of an unknown token is 200"
http_form POST /auth/revoke "token=unknown-$suffix"
expect_status 200
ok

step "POST /auth/revoke of session C's refresh token is 200"
http_form POST /auth/revoke "token=$refresh_c" token_type_hint=refresh_token
expect_status 200
ok

step "after revocation session C's tokens are refused"
http_form POST /auth/token grant_type=refresh_token "refresh_token=$refresh_c"
expect_oauth_error 400 invalid_grant
http GET /protected -H "$(bearer "$access_c")"
expect_unauthorized 'error="invalid_token"'
ok

echo "e2e: all $step_no steps passed against $BASE_URL"
