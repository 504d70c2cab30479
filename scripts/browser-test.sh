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

source scripts/lib/server.sh
binary="$(newest_server_binary)" || { echo "browser: no server binary; run cargo build first" >&2; exit 1; }

work="$(mktemp -d)"
server_pid=""
trap 'kill $server_pid 2>/dev/null || true; rm -rf "$work"' EXIT
start_test_server browser "$binary" "$work" "$work/server.log"
base="$BASE_URL"

username="browser_user"
password="browser passphrase 1"
curl -sf -o /dev/null -X POST "$base/users" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$username\", \"password\": \"$password\"}"
mkdir -p target/browser
"$venv/bin/python" tests/browser/docs_test.py "$base" "$username" "$password" target/browser
