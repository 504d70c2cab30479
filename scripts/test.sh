#!/usr/bin/env bash
# The whole test suite, as README and CI run it.
#
#   scripts/test.sh [cargo test args...]
#
# 1. `cargo test --all-targets`: unit tests, the HTTP suite on SQLite, the repository contract
#    suite, the binaries, and (when TEST_POSTGRES_URL is set) the contract suite on PostgreSQL
#    and the multi-replica and outage tests.
# 2. With TEST_POSTGRES_URL set: the HTTP suite again, every test on its own fresh PostgreSQL
#    database (TEST_API_BACKEND=postgres).
#
# TEST_POSTGRES_URL names a server's maintenance database on which the tests may create and
# drop databases, e.g. postgres://postgres@127.0.0.1:5432/postgres. Without it the PostgreSQL
# tests are skipped and say so.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --all-targets "$@"

if [[ -n "${TEST_POSTGRES_URL:-}" ]]; then
    echo "== the HTTP suite on PostgreSQL ($TEST_POSTGRES_URL)"
    TEST_API_BACKEND=postgres cargo test --test api "$@"
else
    echo "PostgreSQL tests skipped: set TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run the contract, replica, outage and HTTP suites on PostgreSQL"
fi
