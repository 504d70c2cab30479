#!/usr/bin/env bash
# Property-based fuzzing of auth-service from its own OpenAPI document, with schemathesis.
#
# Usage:
#   scripts/fuzz.sh                start target/{release,debug}/auth-service on a free loopback port
#                                  (APP_ENV=testing, temporary SQLite database), fuzz it, stop it
#   BASE_URL=http://127.0.0.1:8000 scripts/fuzz.sh
#                                  fuzz a server that is already running (loopback only)
#
# Environment:
#   MAX_EXAMPLES   test cases per operation and phase (default 50)
#   FUZZ_TIMEOUT   wall-clock bound of the whole fuzzing, in seconds (default 900)
#   FUZZ_SEED      schemathesis seed, to replay a run (default: random, printed in the log)
#   FUZZ_WORKERS   concurrent schemathesis workers (default 1)
#
# Installs schemathesis (pinned) into .venv/fuzz on first use (needs PyPI). It registers users
# (POST /users), logs them in (POST /auth/token) and runs these passes, each from /openapi.json:
#   logout, logout-all  one operation each, with a session of their own (they revoke it)
#   non-admin           the operations that require a role (admin), with a plain user's token
#                       (only when there is an admin for the main pass)
#   main                every operation but logout/logout-all, with a valid bearer token: an admin
#                       made with the seed binary when this script started the server, else the
#                       registered user
#   anonymous, bad-token
#                       the operations that require a token, with none and with a wrongly
#                       signed one
# Reports go to target/fuzz/ (replaced on each run): schemathesis.log (the console output),
# failures.txt (every failed check, grouped, with a sample request), PASS-junit.xml,
# PASS-cassette.yaml (every request and response), openapi.json and server.log. Exits non-zero
# on any 5xx, any response that does not conform to the document, any other failed check, or
# when the time bound cuts a pass short; the last line is a one-line summary.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5" # 4.x: OpenAPI 3.1 supported natively

usage() {
    sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'
}

for arg in "$@"; do
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        *) echo "fuzz: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root" # .env.testing is read from the working directory

MAX_EXAMPLES="${MAX_EXAMPLES:-50}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-900}"
FUZZ_WORKERS="${FUZZ_WORKERS:-1}"
FUZZ_SEED="${FUZZ_SEED:-}"
for pair in "MAX_EXAMPLES=$MAX_EXAMPLES" "FUZZ_TIMEOUT=$FUZZ_TIMEOUT" "FUZZ_WORKERS=$FUZZ_WORKERS"; do
    [[ "${pair#*=}" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz: ${pair%%=*} must be a positive integer, got '${pair#*=}'" >&2; exit 2; }
done
[[ -z "$FUZZ_SEED" || "$FUZZ_SEED" =~ ^[0-9]+$ ]] || { echo "fuzz: FUZZ_SEED must be an integer" >&2; exit 2; }

for tool in curl python3 timeout; do
    command -v "$tool" >/dev/null 2>&1 || { echo "fuzz: '$tool' is required but not installed" >&2; exit 2; }
done

out_dir="$repo_root/target/fuzz"
venv="$repo_root/.venv/fuzz"
work="$(mktemp -d "${TMPDIR:-/tmp}/auth-fuzz.XXXXXX")"
server_pid=""
fuzz_job=""
server_log="$out_dir/server.log"
log="$out_dir/schemathesis.log"

cleanup() {
    # A schemathesis run still going (timeout passes the TERM on to it).
    if [[ -s "$work/fuzz.pid" ]]; then
        kill "$(cat "$work/fuzz.pid")" 2>/dev/null || true
    fi
    if [[ -n "$fuzz_job" ]]; then
        wait "$fuzz_job" 2>/dev/null || true
    fi
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- target -----------------------------------------------------------------------------------

source scripts/lib/server.sh
binary=""
if [[ -n "${BASE_URL:-}" ]]; then
    BASE_URL="${BASE_URL%/}"
    # Traffic goes only to this machine's loopback interface.
    if ! [[ "$BASE_URL" =~ ^http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?$ ]]; then
        echo "fuzz: BASE_URL must be http://127.0.0.1[:PORT] (or localhost / [::1]), got '$BASE_URL'" >&2
        exit 2
    fi
else
    binary="$(newest_server_binary || true)"
    if [[ -z "$binary" ]]; then
        echo "fuzz: no target/release/auth-service or target/debug/auth-service: run cargo build first" >&2
        exit 1
    fi
fi

# --- schemathesis in .venv/fuzz ---------------------------------------------------------------

st="$venv/bin/schemathesis"
if [[ ! -x "$st" ]] || [[ "$("$st" --version 2>/dev/null)" != *" $SCHEMATHESIS_VERSION" ]]; then
    echo "fuzz: installing schemathesis $SCHEMATHESIS_VERSION into ${venv#"$repo_root"/}"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    if ! timeout 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION"; then
        echo "fuzz: could not install schemathesis $SCHEMATHESIS_VERSION from PyPI into $venv" >&2
        exit 1
    fi
fi
py="$venv/bin/python"

# --- the server -------------------------------------------------------------------------------

rm -rf "$out_dir"
mkdir -p "$out_dir"

if [[ -z "$binary" ]]; then
    server_log=""
    echo "fuzz: targeting the running server at $BASE_URL"
else
    start_test_server fuzz "$binary" "$work" "$server_log"
fi

if ! curl -fsS --max-time 10 -o "$work/openapi.json" "$BASE_URL/openapi.json"; then
    echo "fuzz: cannot fetch $BASE_URL/openapi.json" >&2
    exit 1
fi
cp "$work/openapi.json" "$out_dir/openapi.json"

# --- users and their tokens ------------------------------------------------------------------

# post ARGS...: curl POST; the body goes to $work/body, the status to stdout.
post() {
    curl -sS --max-time 15 -o "$work/body" -w '%{http_code}' -X POST "$@"
}

# register USERNAME PASSWORD (POST /users, JSON).
register() {
    local status
    status="$(post "$BASE_URL/users" -H 'Content-Type: application/json' \
        --data-binary "{\"username\": \"$1\", \"password\": \"$2\"}")"
    if [[ "$status" != 201 ]]; then
        echo "fuzz: registering $1 failed: HTTP $status $(head -c 500 "$work/body")" >&2
        exit 1
    fi
}

# login USERNAME PASSWORD: prints an access token (POST /auth/token, form-encoded).
login() {
    local status
    status="$(post "$BASE_URL/auth/token" --data-urlencode grant_type=password \
        --data-urlencode "username=$1" --data-urlencode "password=$2")"
    if [[ "$status" != 200 ]]; then
        echo "fuzz: login as $1 failed: HTTP $status $(head -c 500 "$work/body")" >&2
        return 1
    fi
    "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' "$work/body"
}

# whoami TOKEN: prints "ID ROLES" (roles comma-separated) of the token's user (GET /users/me).
whoami() {
    local status
    status="$(curl -sS --max-time 15 -o "$work/body" -w '%{http_code}' \
        -H "Authorization: Bearer $1" "$BASE_URL/users/me")"
    if [[ "$status" != 200 ]]; then
        echo "fuzz: GET /users/me failed: HTTP $status $(head -c 500 "$work/body")" >&2
        exit 1
    fi
    "$py" -c 'import json, sys; u = json.load(open(sys.argv[1])); print(u["id"], ",".join(u["roles"]))' "$work/body"
}

# All sessions are opened before any fuzzing (fuzzing POST /auth/token may trip the brute-force
# lockout of this client) and each pass that can end sessions gets its own:
#   $user_token         a plain user (the non-admin pass; the main pass when there is no admin)
#   $logout_token, $logout_all_token
#                       two sessions of a second user, for POST /auth/logout and /auth/logout-all
#                       (they revoke the sessions they are called with, and the second user's
#                       others), so they never touch the tokens of the other passes
#   $admin_token        an admin made with the seed binary, on a server this script started
suffix="$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
user="fuzz_$suffix"
user_password="fuzz-password-$suffix"
logout_user="fuzzlo_$suffix"
logout_password="fuzz-logout-password-$suffix"
register "$user" "$user_password"
register "$logout_user" "$logout_password"
user_token="$(login "$user" "$user_password")"
logout_token="$(login "$logout_user" "$logout_password")"
logout_all_token="$(login "$logout_user" "$logout_password")"

admin_token=""
if [[ -n "$server_pid" ]]; then
    seed="$(dirname "$binary")/seed"
    admin="fuzzadmin_$suffix"
    admin_password="fuzz-admin-password-$suffix"
    if [[ -x "$seed" ]] && APP_ENV=testing DATABASE_URL="sqlite://$work/fuzz.db" "$seed" --username "$admin" \
        --password "$admin_password" --role admin >"$work/seed.log" 2>&1; then
        admin_token="$(login "$admin" "$admin_password")" || admin_token=""
    else
        echo "fuzz: note: could not create an admin with $seed; the admin-only operations get a user token only" >&2
        if [[ -s "$work/seed.log" ]]; then sed 's/^/  /' "$work/seed.log" >&2; fi
    fi
fi
if [[ -n "$admin_token" ]]; then
    main_token="$admin_token"
    main_name="$admin"
else
    main_token="$user_token"
    main_name="$user"
fi
main_who="$(whoami "$main_token")"
user_who="$(whoami "$user_token")"
read -r main_id main_roles <<<"$main_who"
read -r _ user_roles <<<"$user_who"

# --- schemathesis configuration ---------------------------------------------------------------

# Checks: every check schemathesis has (`[checks] enabled = true`), plus bearer_token_enforced
# (below). Each applies to this service:
#   not_a_server_error, status_code_conformance, content_type_conformance,
#   response_headers_conformance, response_schema_conformance: the document is the contract;
#   negative_data_rejection: schema-violating input must be a 4xx, never accepted;
#   positive_data_acceptance: schema-valid input must not be refused with 400/422 (it finds
#   constraints the server enforces but the document does not state) - except where noted below;
#   missing_required_header, unsupported_method (405 for methods a path does not have),
#   allow_header_conformance; use_after_free, ensure_resource_availability,
#   object_level_authorization: stateful, they act where schemathesis infers links;
#   ignored_auth: kept, but schemathesis only probes apiKey/basic/http schemes and this document
#   declares OAuth2, so it never fires here; bearer_token_enforced does that job.
# Disabled where structurally inapplicable:
#   positive_data_acceptance on POST /auth/token, POST /auth/refresh, PUT /users/me/password,
#   /auth/authorize, /auth/logout/browser, POST /auth/introspect and the TOTP operations
#   (/users/me/mfa/totp, /users/me/mfa/totp/confirm: the password, a code of the pending
#   secret): a request there only
#   succeeds with a secret or a registration the generator cannot know (the user's password, a
#   live refresh token, the current password, a registered client and its redirect URI, a
#   client secret, the CSRF cookie of the form); a well-formed wrong one is rightly refused with
#   400 invalid_grant / wrong_password / an error page, as documented. Not a bug. The same for
#   POST /users/me/passkeys/register/finish, POST /auth/passkey/start and /auth/passkey/finish:
#   they succeed only with a live WebAuthn ceremony and an authenticator's signature over its
#   challenge (or the login page's CSRF cookie), which no generator can make. And for
#   DELETE /users/me (the password, and a second factor where one is set), POST
#   /auth/email/verify and POST /auth/password-reset/confirm (a token from a mail), and the
#   hosted recovery forms /auth/email/verify/form and /auth/password-reset/form (a token and
#   the page's CSRF cookie), and the reset link's page GET /auth/password-reset (its mailed
#   token). Two rules no schema states are left out too: POST /auth/password-reset takes
#   `email` or `username`, not both (422 conflicting), and POST /users refuses the 10,000 most
#   common passwords (422 password_too_common), which a generator hits now and then with
#   passwords like "00000000".
# Widened: negative_data_rejection also takes 413 (its defaults plus 413). A schema-violating body
#   over BODY_LIMIT_BYTES (list fields of long strings can get there, e.g. the redirect URIs of
#   PATCH /admin/clients/{client_id}) is refused 413 payload_too_large before it is parsed,
#   as documented; that is a rejection, not an acceptance.
cat >"$work/schemathesis.toml" <<'TOML'
[checks]
enabled = true

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[[operations]]
include-path = ["/auth/token", "/auth/refresh", "/users/me/password", "/auth/authorize", "/auth/logout/browser", "/auth/introspect", "/users/me/passkeys/register/finish", "/auth/passkey/start", "/auth/passkey/finish", "/users/me/mfa/totp", "/users/me/mfa/totp/confirm", "/users/me", "/auth/email/verify", "/auth/password-reset/confirm", "/auth/email/verify/form", "/auth/password-reset/form", "/auth/password-reset", "/users"]
checks.positive_data_acceptance.enabled = false
TOML

# Hooks, loaded through SCHEMATHESIS_HOOKS:
# - check bearer_token_enforced (API.md "Conventions"): an operation whose `security` requires the
#   OAuth2 scheme must not answer 2xx to a request without a valid token (passes "anonymous" and
#   "bad-token") nor to a token lacking the scope (role) it requires (pass "non-admin"); a 401
#   must carry `WWW-Authenticate: Bearer`, with error="invalid_token" when a token was sent; a 403
#   to a request with a token must carry error="insufficient_scope". On the endpoints where
#   clients authenticate (token, introspection, revocation), a 401 is RFC 6749's `invalid_client`
#   and must carry a `WWW-Authenticate: Basic` challenge instead.
# - filter_case, before_add_examples: no DELETE /users/{id} of the fuzzing identity itself (it
#   would succeed while another admin exists, and end the run), and no PATCH /users/{id} on it that
#   disables it or drops its admin role. The server rightly refuses these (422 self_lockout: a business rule no
#   schema can state, so positive_data_acceptance would flag it), and a server that accepted
#   them would lock the rest of the run out.
# - filter_case, before_add_examples: no client registration of a public client with the
#   client_credentials grant, and no PATCH /admin/clients/{client_id} adding that grant (the
#   generator cannot know whether the stored client is public). The server rightly refuses these
#   (422 not_allowed_for_public_client: a rule across two fields, one of them stored, that no
#   schema can state).
hooks="$work/fuzz_hooks.py"
cat >"$hooks" <<'PY'
import json
import os
import re

import schemathesis

with open(os.environ["FUZZ_OPENAPI"], encoding="utf-8") as f:
    _DOC = json.load(f)
_KIND = os.environ.get("FUZZ_TOKEN_KIND", "valid")  # valid, none or invalid
_ROLES = set(filter(None, os.environ.get("FUZZ_TOKEN_ROLES", "").split(",")))
_SELF_ID = os.environ.get("FUZZ_SELF_ID", "")


def _requirements(method, path):
    op = _DOC.get("paths", {}).get(path, {}).get(method.lower(), {})
    return op.get("security", _DOC.get("security", []))


def _oauth2_scopes(requirement):
    return set().union(*requirement.values()) if requirement else set()


# Where a 401 is client authentication (RFC 6749 §2.3, §5.2), not a bearer token's.
_CLIENT_AUTH_PATHS = {"/auth/token", "/auth/introspect", "/auth/revoke"}


@schemathesis.check
def bearer_token_enforced(ctx, response, case):
    method, path = case.operation.method.upper(), case.operation.path
    requirements = _requirements(method, path)
    # An empty requirement object ({}) in the list makes authentication optional.
    required = bool(requirements) and all(requirements)
    status = response.status_code
    if required and 200 <= status < 300:
        if _KIND != "valid":
            sent = "without a token" if _KIND == "none" else "with an invalid token"
            raise AssertionError(f"{method} {path} requires a bearer token but answered {status} to a request {sent}")
        if not any(_oauth2_scopes(r) <= _ROLES for r in requirements):
            needed = " or ".join("+".join(sorted(_oauth2_scopes(r))) for r in requirements)
            raise AssertionError(f"{method} {path} requires the scope {needed} but answered {status} "
                                 f"to a token with roles {','.join(sorted(_ROLES))}")
    challenge = ", ".join(response.headers.get("www-authenticate", []))
    sent_token = response.request.headers.get("Authorization", "").lower().startswith("bearer ")
    if status == 401 and path in _CLIENT_AUTH_PATHS:
        if not re.match(r"\s*Basic\b", challenge, re.I):
            raise AssertionError(f"401 invalid_client without a `WWW-Authenticate: Basic` challenge (got {challenge!r})")
    elif status == 401:
        if not re.match(r"\s*Bearer\b", challenge, re.I):
            raise AssertionError(f"401 without a `WWW-Authenticate: Bearer` challenge (got {challenge!r})")
        if sent_token and 'error="invalid_token"' not in challenge:
            raise AssertionError(f'401 to a request with a token, without error="invalid_token" (got {challenge!r})')
    if status == 403 and sent_token:
        if not re.match(r"\s*Bearer\b", challenge, re.I) or 'error="insufficient_scope"' not in challenge:
            raise AssertionError(f'403 without `WWW-Authenticate: Bearer error="insufficient_scope"` (got {challenge!r})')
    return None


def _locks_self_out(case):
    if not _SELF_ID or case.operation.path != "/users/{id}":
        return False
    if case.operation.method.upper() == "DELETE":
        return str((case.path_parameters or {}).get("id")) == _SELF_ID
    if case.operation.method.upper() != "PATCH":
        return False
    if str((case.path_parameters or {}).get("id")) != _SELF_ID or not isinstance(case.body, dict):
        return False
    roles = case.body.get("roles")
    return case.body.get("is_active") is False or (isinstance(roles, list) and "admin" not in roles)


def _public_client_credentials(case):
    method, path = case.operation.method.upper(), case.operation.path
    if not isinstance(case.body, dict) or not path.startswith("/admin/clients"):
        return False
    grants = case.body.get("grant_types")
    if not isinstance(grants, list) or "client_credentials" not in grants:
        return False
    return method == "PATCH" or case.body.get("client_type") == "public"


def _refused_by_rule(case):
    return _locks_self_out(case) or _public_client_credentials(case)


@schemathesis.hook
def filter_case(ctx, case):
    return not _refused_by_rule(case)


@schemathesis.hook
def before_add_examples(ctx, examples):  # the examples phase does not go through filter_case
    examples[:] = [case for case in examples if not _refused_by_rule(case)]
PY

# Path regexes of the operations that require a token, and of those that require a scope.
path_regexes="$("$py" - "$work/openapi.json" <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1], encoding="utf-8"))
protected, scoped = set(), set()
for path, item in doc.get("paths", {}).items():
    for method, op in item.items():
        if method not in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
            continue
        security = op.get("security", doc.get("security", []))
        if security and all(security):
            protected.add(path)
            if all(set().union(*r.values()) for r in security):
                scoped.add(path)
regex = lambda paths: "^(" + "|".join(re.escape(p) for p in sorted(paths)) + ")$" if paths else "-"
print(regex(protected), regex(scoped))
PY
)"
read -r protected_paths scoped_paths <<<"$path_regexes"

# A well-formed access token with a wrong signature.
bad_token="${main_token%.*}.$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n' | head -c 43)"

# --- passes -----------------------------------------------------------------------------------

deadline=$((SECONDS + FUZZ_TIMEOUT))
timed_out=false
pass_rcs=()

# run_pass NAME TOKEN-KIND TOKEN ROLES FILTER-ARGS...  (TOKEN-KIND: valid, none or invalid)
run_pass() {
    local name="$1" token_kind="$2" token="$3" roles="$4"
    shift 4
    local remaining=$((deadline - SECONDS))
    if ((remaining < 5)); then
        echo "fuzz: no time left for pass $name (FUZZ_TIMEOUT=$FUZZ_TIMEOUT)" | tee -a "$log" >&2
        timed_out=true
        pass_rcs+=("$name=timeout")
        return
    fi
    local extra=()
    [[ -z "$FUZZ_SEED" ]] || extra+=(--seed "$FUZZ_SEED")
    [[ -z "$token" ]] || extra+=(-H "Authorization: Bearer $token")
    local label="$token_kind token"
    [[ "$token_kind" != none ]] || label="no token"
    printf '\nfuzz: pass %s (%s%s) against %s, max %s examples per operation, %s s left\n' \
        "$name" "$label" "${roles:+, roles $roles}" "$BASE_URL" "$MAX_EXAMPLES" "$remaining" | tee -a "$log"
    local rc=0
    # In the background, so that a TERM to this script is handled at once (see cleanup), not when
    # the pass ends. Runs from target/fuzz so schemathesis's crash cache (for `st replay`) lands
    # there. -k: if schemathesis ignores the TERM at the deadline, KILL it 10 s later.
    {
        (
            cd "$out_dir"
            export SCHEMATHESIS_HOOKS="$hooks" FUZZ_OPENAPI="$work/openapi.json" \
                FUZZ_TOKEN_KIND="$token_kind" FUZZ_TOKEN_ROLES="$roles" FUZZ_SELF_ID="$main_id"
            echo "$BASHPID" >"$work/fuzz.pid" # becomes timeout's pid through exec
            exec timeout -k 10 "$remaining" "$st" --config-file "$work/schemathesis.toml" run "$BASE_URL/openapi.json" \
                --url "$BASE_URL" \
                --max-examples "$MAX_EXAMPLES" \
                --continue-on-failure \
                --workers "$FUZZ_WORKERS" \
                --request-timeout 10 \
                --generation-database none \
                --no-color \
                --report junit,vcr \
                --report-junit-path "$out_dir/$name-junit.xml" \
                --report-vcr-path "$out_dir/$name-cassette.yaml" \
                "${extra[@]}" \
                "$@"
        ) 2>&1 | tee -a "$log"
    } &
    fuzz_job=$!
    wait "$fuzz_job" || rc=$?
    fuzz_job=""
    rm -f "$work/fuzz.pid"
    if ((rc == 124 || rc == 137)); then
        echo "fuzz: pass $name hit the time bound (FUZZ_TIMEOUT=$FUZZ_TIMEOUT s) and was stopped" | tee -a "$log" >&2
        timed_out=true
    fi
    pass_rcs+=("$name=$rc")
}

echo "fuzz: schemathesis $SCHEMATHESIS_VERSION; main pass as $main_name (roles $main_roles)" | tee -a "$log"
# Order matters: the passes with session-ending operations and the plain user's pass run before
# the main pass, whose admin may disable any user it finds.
run_pass logout valid "$logout_token" "$user_roles" --include-path-regex '^/auth/logout$'
run_pass logout-all valid "$logout_all_token" "$user_roles" --include-path-regex '^/auth/logout-all$'
if [[ -n "$admin_token" && "$scoped_paths" != - ]]; then
    run_pass non-admin valid "$user_token" "$user_roles" --include-path-regex "$scoped_paths"
fi
run_pass main valid "$main_token" "$main_roles" --exclude-path-regex '^/auth/logout(-all)?$'
if [[ "$protected_paths" != - ]]; then
    run_pass anonymous none "" "" --include-path-regex "$protected_paths"
    run_pass bad-token invalid "$bad_token" "" --include-path-regex "$protected_paths"
fi

# --- summary ----------------------------------------------------------------------------------

failed=false
for rc in "${pass_rcs[@]}"; do
    [[ "${rc#*=}" == 0 ]] || failed=true
done
if "$timed_out"; then failed=true; fi

summary="$("$py" - "$out_dir" "$log" <<'PY'
import collections, glob, json, os, re, sys
import xml.etree.ElementTree as ET

import yaml

out_dir, log = sys.argv[1], sys.argv[2]
operations, passes = set(), 0
runs = failing = errors = 0
for path in sorted(glob.glob(f"{out_dir}/*-junit.xml")):
    try:
        cases = list(ET.parse(path).getroot().iter("testcase"))
    except (OSError, ET.ParseError):
        continue  # a pass stopped by the time bound may leave no report
    passes += 1
    for case in cases:
        operations.add(case.get("name"))
        runs += 1
        failing += bool(case.findall("failure") or case.findall("error"))
        errors += len(case.findall("error"))
text = open(log, encoding="utf-8", errors="replace").read()
generated = sum(int(n) for n in re.findall(r"^\s*(\d+) generated", text, re.M))
unique = sum(int(n) for n in re.findall(r"(\d+) unique failures?", text))
codes = sorted(set(re.findall(r"^\s*❌ (ST\d+ [^:]+): \d+", text, re.M)))

# failures.txt: every failed check of every pass, grouped by operation, check, status and the
# server's error code, with one sample request each (from the cassettes).
try:
    doc = json.load(open(f"{out_dir}/openapi.json", encoding="utf-8"))
    templates = [(re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(p)) + "$"), p) for p in doc.get("paths", {})]
except (OSError, ValueError):
    templates = []
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
groups = collections.OrderedDict()
for path in sorted(glob.glob(f"{out_dir}/*-cassette.yaml"), key=os.path.getmtime):
    name = os.path.basename(path)[: -len("-cassette.yaml")]
    try:
        interactions = yaml.load(open(path, encoding="utf-8"), Loader=Loader).get("http_interactions") or []
    except Exception:
        continue
    for item in interactions:
        request, response = item.get("request") or {}, item.get("response")
        if not response:
            continue
        url_path = re.sub(r"^[a-z]+://[^/]+", "", request.get("uri", ""))
        bare = url_path.split("?")[0]
        template = next((t for rx, t in templates if rx.match(bare)), bare)
        body = (response.get("body") or {}).get("string") or ""
        failed = [c for c in item.get("checks") or [] if c.get("status") == "FAILURE"]
        if not failed:
            continue
        # The field-level codes of a 422 only matter to the checks about the data.
        content_type_only = all(c.get("name") == "content_type_conformance" for c in failed)
        try:
            parsed = json.loads(body)
            code = parsed.get("code") or parsed.get("error") or ""
            if parsed.get("errors") and not content_type_only:
                code += " [" + ", ".join(f"{e.get('field')}: {e.get('code')}" for e in parsed["errors"]) + "]"
        except (ValueError, AttributeError):
            code = ""
        for check in failed:
            key = (name, request.get("method"), template, check.get("name"), response["status"]["code"], code)
            if key not in groups:
                sent = (request.get("body") or {}).get("string") or ""
                ctype = next((v[0] for k, v in (response.get("headers") or {}).items() if k.lower() == "content-type"), "")
                groups[key] = [0, check.get("message") or "", f"{request.get('method')} {url_path}", sent[:300], ctype, body[:300]]
            groups[key][0] += 1


def printable(value):
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\x{ord(m.group()):02x}", value)


with open(f"{out_dir}/failures.txt", "w", encoding="utf-8") as f:
    if not groups:
        f.write("No failed checks.\n")
    for (name, method, template, check, status, code), (count, message, sample, sent, ctype, body) in groups.items():
        f.write(f"[{name}] {method} {template}: {check} ({message}): HTTP {status} {code} x{count}\n")
        f.write(f"    request:  {printable(sample)}\n")
        if sent:
            f.write(f"    body:     {printable(sent)}\n")
        f.write(f"    response: {ctype} {printable(body)}\n\n")

print(f"{len(operations)} operations in {passes} passes, {generated} test cases, {unique} unique "
      f"failures in {failing} of {runs} operation runs, {errors} errors"
      + (f" ({'; '.join(codes)})" if codes else ""))
PY
)" || summary="(no summary: reports unreadable)"

if "$failed"; then
    bound=""
    if "$timed_out"; then bound=", time bound hit"; fi
    echo "fuzz: FAILED: schemathesis $SCHEMATHESIS_VERSION: $summary; exit codes ${pass_rcs[*]}$bound; see ${out_dir#"$repo_root"/}/" | tee -a "$log"
    exit 1
fi
echo "fuzz: PASSED: schemathesis $SCHEMATHESIS_VERSION: $summary; see ${out_dir#"$repo_root"/}/" | tee -a "$log"
