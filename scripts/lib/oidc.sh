# Shared by scripts/oidc-interop.sh and scripts/browser-test.sh (sourced, not run, after
# scripts/lib/server.sh and start_test_server): what an OpenID Connect test needs on a fresh
# server, done as an operator and an admin would: an admin seeded with the `seed` command on the
# server's database, a user registered and clients registered over HTTP. Needs curl and python3.

# json_field FIELD: the string FIELD of the JSON object on standard input (fails when absent).
json_field() {
    python3 -c 'import json, sys; v = json.load(sys.stdin)[sys.argv[1]]; assert isinstance(v, str), v; print(v)' "$1"
}

# seed_admin BINARY DATABASE_URL USERNAME PASSWORD: an admin (roles user and admin), created with
# `BINARY seed` on the server's database (the seed command reads .env.testing as the server does).
seed_admin() {
    APP_ENV=testing DATABASE_URL="$2" "$1" seed --username "$3" --password "$4" --role admin >/dev/null
}

# register_user USERNAME PASSWORD EMAIL: POST /users.
register_user() {
    curl -sSf -o /dev/null -X POST "$BASE_URL/users" -H 'Content-Type: application/json' \
        -d "$(python3 -c 'import json, sys; print(json.dumps({"username": sys.argv[1], "password": sys.argv[2], "email": sys.argv[3]}))' "$1" "$2" "$3")"
}

# access_token USERNAME PASSWORD: a password-grant access token.
access_token() {
    curl -sSf -X POST "$BASE_URL/auth/token" --data-urlencode grant_type=password \
        --data-urlencode "username=$1" --data-urlencode "password=$2" | json_field access_token
}

# register_client ADMIN_TOKEN TYPE REDIRECT_URI SCOPE GRANT...: POST /admin/clients; prints the
# client's JSON (client_id, and client_secret for a confidential client).
register_client() {
    local token="$1" type="$2" redirect="$3" scope="$4"
    shift 4
    local body
    body="$(python3 -c '
import json, sys
kind, redirect, scope, *grants = sys.argv[1:]
print(json.dumps({"client_name": f"Interop {kind} client", "client_type": kind,
                  "redirect_uris": [redirect], "post_logout_redirect_uris": [],
                  "grant_types": grants, "scope": scope}))' "$type" "$redirect" "$scope" "$@")"
    curl -sSf -X POST "$BASE_URL/admin/clients" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' -d "$body"
}
