#!/usr/bin/env bash
# Swagger UI and the hosted login page in a real browser (headless Chromium from Debian, driven
# by selenium through chromedriver):
# - /docs loads with no external request, "Authorize" logs in through the OAuth2 password flow,
#   "Try it out" on GET /users/me returns the user (tests/browser/docs_test.py);
# - an OpenID Connect authorization request for a public client opens the login page; a wrong
#   password shows the error, the right one ends at the client's loopback redirect URI with
#   code, state and iss (tests/browser/login_test.py); then the code is exchanged here over HTTP
#   and an ID token for that client and nonce must come back;
# - a passkey registered with Chromium's virtual authenticator signs in on the login page and
#   ends at the callback with a code that the token endpoint accepts (tests/browser/passkey_test.py).
# - a user with TOTP signs in on the login page with password + code, the code computed in Python
#   from the secret the enrolment returned (tests/browser/totp_test.py).
# - a password-reset mail's link opens the reset page, which refuses a short password and sets a
#   good one (tests/browser/reset_test.py).
# Screenshots: target/browser/.
#
#   scripts/browser-test.sh        (needs a built target/{debug,release}/auth-service)
#
# Installs chromium and chromium-driver (apt) and selenium (pip, in .venv/browser) when missing.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "browser: installing chromium and chromium-driver"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
venv=".venv/browser"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -c 'import selenium' 2>/dev/null || "$venv/bin/pip" install -q "selenium==4.27.1"

source scripts/lib/server.sh
source scripts/lib/oidc.sh
binary="$(newest_server_binary)" || { echo "browser: no server binary; run cargo build first" >&2; exit 1; }

work="$(mktemp -d)"
server_pid=""
trap 'kill $server_pid 2>/dev/null || true; rm -rf "$work"' EXIT
start_test_server browser "$binary" "$work" "$work/server.log" --own-issuer
base="$BASE_URL"

username="browser_user"
password="browser passphrase 1"
curl -sf -o /dev/null -X POST "$base/users" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$username\", \"password\": \"$password\"}"
mkdir -p target/browser
"$venv/bin/python" tests/browser/docs_test.py "$base" "$username" "$password" target/browser

# The login page: a public client with a loopback redirect URI (any port: the test serves it).
seed_admin "$binary" "sqlite://$work/browser.db" browser_admin "browser admin passphrase 1"
admin_token="$(access_token browser_admin "browser admin passphrase 1")"
client_id="$(register_client "$admin_token" public "http://127.0.0.1/callback" "openid profile email" \
    authorization_code | json_field client_id)"
"$venv/bin/python" tests/browser/login_test.py "$base" "$client_id" "$username" "$password" \
    target/browser "$work/login.json"

# The client's side: the code for tokens, with the PKCE verifier; an ID token must come back.
read_login() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/login.json" "$1"; }
curl -sS -o "$work/tokens.json" -w '%{http_code}' -X POST "$base/auth/token" \
    --data-urlencode grant_type=authorization_code --data-urlencode "client_id=$client_id" \
    --data-urlencode "code=$(read_login code)" --data-urlencode "redirect_uri=$(read_login redirect_uri)" \
    --data-urlencode "code_verifier=$(read_login code_verifier)" >"$work/status"
python3 - "$work/tokens.json" "$(cat "$work/status")" "$base" "$client_id" "$(read_login nonce)" "$username" <<'PY'
import base64, json, sys
path, status, issuer, client_id, nonce, username = sys.argv[1:]
body = open(path, encoding="utf-8").read()
if status != "200":
    sys.exit(f"browser: the code exchange answered HTTP {status}: {body}")
tokens = json.loads(body)
if "id_token" not in tokens:
    sys.exit(f"browser: no ID token came back: {sorted(tokens)}")
payload = tokens["id_token"].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
expected = {"iss": issuer, "aud": client_id, "nonce": nonce, "preferred_username": username}
wrong = {k: claims.get(k) for k, v in expected.items() if claims.get(k) != v}
if wrong:
    sys.exit(f"browser: the ID token's claims differ from {expected}: {wrong}")
print(f"browser: the code from the browser was exchanged for an ID token (iss, aud, nonce, "
      f"preferred_username as expected) and {tokens['token_type']} tokens")
PY

# Passkeys: Chromium's virtual authenticator registers one for a user of its own (a passkey is a
# second factor for the password grant), then signs in with it on the login page. Browsers
# refuse an IP address as RP id: the same server is opened as localhost (the default RP id and
# origin of a loopback issuer).
passkey_user="passkey_user"
curl -sf -o /dev/null -X POST "$base/users" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$passkey_user\", \"password\": \"$password\"}"
"$venv/bin/python" tests/browser/passkey_test.py "${base/127.0.0.1/localhost}" "$client_id" \
    "$passkey_user" "$password" target/browser
# Password + TOTP on the login page, for a user of its own (TOTP turned on by the test).
totp_user="browser_totp"
totp_password="browser totp passphrase 1"
curl -sf -o /dev/null -X POST "$base/users" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$totp_user\", \"password\": \"$totp_password\"}"
"$venv/bin/python" tests/browser/totp_test.py "$base" "$client_id" "$totp_user" "$totp_password" \
    target/browser
# The password-reset page: the mail lands in the test server's outbox directory (no SMTP_URL).
curl -sf -o /dev/null -X POST "$base/users" -H 'Content-Type: application/json' \
    -d '{"username": "browser_reset", "password": "browser passphrase 2", "email": "browser_reset@example.com"}'
"$venv/bin/python" tests/browser/reset_test.py "$base" "$work/browser-mail" browser_reset \
    browser_reset@example.com target/browser
