#!/usr/bin/env bash
# Swagger UI in a real browser (headless Chromium from Debian, driven by selenium through
# chromedriver): /docs loads with no external request, "Authorize" logs in through the OAuth2
# password flow, "Try it out" on GET /users/me returns the user. Screenshots: target/browser/.
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

binary=""
for candidate in target/release/auth-service target/debug/auth-service; do
    if [[ -x "$candidate" && ( -z "$binary" || "$candidate" -nt "$binary" ) ]]; then binary="$candidate"; fi
done
[[ -n "$binary" ]] || { echo "browser: no server binary; run cargo build first" >&2; exit 1; }

work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$port"
APP_ENV=testing PORT="$port" DATABASE_URL="sqlite://$work/browser.db" "$binary" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf -o /dev/null "$base/health" && break; sleep 0.1; done

username="browser_user"
password="browser passphrase 1"
curl -sf -o /dev/null -X POST "$base/users" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$username\", \"password\": \"$password\"}"
mkdir -p target/browser
"$venv/bin/python" tests/browser/docs_test.py "$base" "$username" "$password" target/browser
