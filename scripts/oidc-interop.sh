#!/usr/bin/env bash
# The provider against oauth4webapi, a strict OpenID Connect client library from another
# ecosystem (Node): discovery, the code flow through the hosted login page with PKCE, state and
# nonce, the ID token's validation, UserInfo, refresh, introspection, revocation and client
# credentials (tests/interop/oauth4webapi/oidc.mjs).
#
#   scripts/oidc-interop.sh        (needs a built target/{debug,release}/auth-service, node, npm)
#
# Starts the server on a free loopback port with its own URL as the issuer, seeds an admin,
# registers a user and the clients over HTTP, installs the locked npm packages when
# node_modules is missing (`npm ci`), and runs the script.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

for tool in node npm curl python3; do
    command -v "$tool" >/dev/null 2>&1 || { echo "oidc-interop: '$tool' is required but not installed" >&2; exit 2; }
done

source scripts/lib/server.sh
source scripts/lib/oidc.sh
binary="$(newest_server_binary)" || { echo "oidc-interop: no server binary; run cargo build first" >&2; exit 1; }

work="$(mktemp -d)"
server_pid=""
trap 'kill $server_pid 2>/dev/null || true; rm -rf "$work"' EXIT
start_test_server oidc "$binary" "$work" "$work/server.log" --own-issuer

admin="interop_admin"
admin_password="interop admin passphrase"
user="interop_user"
password="interop user passphrase"
# A loopback redirect URI: the library reads the redirect's Location, nothing is served there.
redirect_uri="http://127.0.0.1/interop/callback"

seed_admin "$binary" "sqlite://$work/oidc.db" "$admin" "$admin_password"
register_user "$user" "$password" "$user@example.com"
admin_token="$(access_token "$admin" "$admin_password")"
confidential="$(register_client "$admin_token" confidential "$redirect_uri" \
    "openid profile email offline_access user" authorization_code refresh_token client_credentials)"
public="$(register_client "$admin_token" public "$redirect_uri" "openid profile" \
    authorization_code refresh_token)"

package="tests/interop/oauth4webapi"
if [[ ! -d "$package/node_modules" ]]; then
    (cd "$package" && npm ci --no-audit --no-fund --loglevel=error)
fi
if ! node "$package/oidc.mjs" "$BASE_URL" \
    "$(json_field client_id <<<"$confidential")" "$(json_field client_secret <<<"$confidential")" \
    "$(json_field client_id <<<"$public")" "$user" "$password" "$redirect_uri"; then
    echo "oidc-interop: failed; the server's last log lines:" >&2
    tail -n 20 "$work/server.log" | sed 's/^/  /' >&2
    exit 1
fi
