#!/usr/bin/env python3
"""Turn the workload lines of scripts/bench.sh into results.json and a markdown table with the
ceiling ratio and each target of the performance issue, met or not.

    python3 scripts/bench/summarize.py RESULTS.jsonl OUT_DIR
"""
import datetime
import json
import os
import platform
import subprocess
import sys


def code_flows_per_s(run) -> float:
    """Flows completed per second: scripts/bench/code_flow.lua counts each as status 1000."""
    return run["statuses"].get("1000", 0) / (run["duration_us"] / 1e6)


def working_set(runs, values):
    """The working-set workloads (issue 15): table rows and targets, per algorithm, /users/me
    over the tokens of many signed-in users against one token on the same server, and the
    server's private memory after the run."""
    rows, targets = [], []
    for alg, label in [("hs256", "HS256"), ("eddsa", "EdDSA")]:
        one, many = runs.get(f"users_me_one_token_{alg}"), runs.get(f"users_me_working_set_{alg}")
        if not one or not many:
            continue
        ratio = many["rps"] / one["rps"]
        rss = values.get(f"working_set_{alg}_rss_anon_mib")
        rows.append(f"| `/users/me`, {label}, SQLite | {one['rps']:,.0f}/s | {many['rps']:,.0f}/s | {ratio:.2f} "
                    f"| {many['p99_ms']:.2f} | {rss} MiB | {many['statuses']} |")
        tokens = values.get("working_set_tokens", 30000)
        targets.append((f"/users/me over {tokens:,} tokens ≥ 75% of one token ({label})", ratio, 0.75,
                        f"{many['rps']:,.0f}/s of {one['rps']:,.0f}/s ({ratio:.0%})"))
        if rss is not None:
            targets.append((f"RssAnon ≤ 128 MiB after the working-set run ({label})", -rss, -128, f"{rss} MiB"))
    if rows:
        tokens = values.get("working_set_tokens", 30000)
        rows = ["", f"| workload | one token | {tokens:,} tokens | ratio | p99 ms ({tokens:,}) | RssAnon after | statuses |",
                "|---|---:|---:|---:|---:|---:|---|"] + rows
    return rows, targets


def working_set_only(runs, values, out) -> None:
    """BENCH_ONLY=working_set: only the working-set table and targets."""
    rows, targets = working_set(runs, values)
    report = {"runs": runs, "values": values,
              "targets": [{"target": t, "met": v >= goal, "measured": m} for t, v, goal, m in targets]}
    json.dump(report, open(os.path.join(out, "results.json"), "w"), indent=2)
    md = rows + ["", "| target | measured | met |", "|---|---|---|"]
# PostgreSQL (scripts/bench/postgres.sh): one and two replicas against SQLite measured right
# before, with the targets of issue 15 (refresh ≥ 50 % of SQLite, /users/me ≥ 70 %).
POSTGRES_ROWS = [
    ("POST /auth/refresh, chained, SQLite (right before the PostgreSQL runs)", "refresh_sqlite_pg_adjacent"),
    ("GET /users/me, SQLite (right before the PostgreSQL runs)", "users_me_sqlite_pg_adjacent"),
    ("POST /auth/refresh, chained (PostgreSQL)", "refresh_postgres"),
    ("GET /users/me (PostgreSQL)", "users_me_postgres"),
    ("POST /auth/refresh, chained, PostgreSQL, 2 replicas (summed)", "refresh_postgres_2_replicas"),
    ("GET /users/me, PostgreSQL, 2 replicas (summed)", "users_me_postgres_2_replicas"),
] + [(f"POST /auth/refresh, chained, PostgreSQL, pool {n}", f"refresh_postgres_pool_{n}") for n in (4, 8, 16, 32)] + [
    ("POST /auth/refresh, chained, PostgreSQL, synchronous_commit=off (not a setting: measurement only)", "refresh_postgres_sync_off"),
]


def postgres_targets(runs):
    """(target, value, goal, measured) of the PostgreSQL ratios, for the runs present."""
    def rps(name):
        return runs[name]["rps"] if name in runs else None
    targets = []
    for kind, goal, sqlite_names, label in [
        ("refresh", 0.5, ["refresh_sqlite_pg_adjacent", "refresh_sqlite"], "chained refresh"),
        ("users_me", 0.7, ["users_me_sqlite_pg_adjacent", "users_me"], "GET /users/me"),
    ]:
        sqlite = next((rps(n) for n in sqlite_names if n in runs), None)
        if not sqlite:
            continue
        for suffix, replicas in [("", "one replica"), ("_2_replicas", "two replicas")]:
            pg = rps(f"{kind}_postgres{suffix}")
            if pg is None:
                continue
            targets.append((f"{label} on PostgreSQL ({replicas}) ≥ {goal:.0%} of SQLite", pg / sqlite, goal,
                            f"{pg:.0f}/s vs {sqlite:.0f}/s ({pg / sqlite:.0%})"))
    return targets


def postgres_only(runs, values, out) -> None:
    """The summary of a BENCH_ONLY=postgres run."""
    targets = postgres_targets(runs)
    report = {"runs": runs, "values": values,
              "targets": [{"target": t, "met": v >= goal, "measured": m} for t, v, goal, m in targets]}
    json.dump(report, open(os.path.join(out, "results.json"), "w"), indent=2)
    md = [f"PostgreSQL block only (BENCH_ONLY=postgres), {values.get('cores')} cores, "
          f"{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.", "",
          "| workload | req/s | p50 ms | p99 ms | statuses |", "|---|---:|---:|---:|---|"]
    for label, name in POSTGRES_ROWS:
        if name in runs:
            r = runs[name]
            md.append(f"| {label} | {r['rps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['statuses']} |")
    md += ["", "| target | measured | met |", "|---|---|---|"]
    for t in report["targets"]:
        md.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    open(os.path.join(out, "results.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
    out = sys.argv[2]
    runs = {l["name"]: l["result"] for l in lines if "result" in l}
    values = {l["name"]: l["value"] for l in lines if "value" in l}
    if "ceiling_users_me" not in runs:
        if any(name.startswith("users_me_working_set_") for name in runs):
            return working_set_only(runs, values, out)
        return postgres_only(runs, values, out)
    ceiling = runs["ceiling_users_me"]["rps"]
    cores = values["cores"]
    verify_ms = values["argon2_verify_ms"]
    hash_limit = cores / (verify_ms / 1000)
    # Hashing threads (HASH_CONCURRENCY defaults to the cores). The hasher admits one queued hash
    # per thread besides, but a queued hash holds no argon2 memory, so the stricter bound holds.
    permits = cores
    rss_budget = permits * 19456 / 1024 + 64

    def rps(name):
        return runs[name]["rps"] if name in runs else None

    def small(name):
        """The small-table figure measured right before the 1M runs, if there is one."""
        return rps(f"{name}_small_adjacent") or rps(name)

    def answered(name):
        r = runs[name]
        errors = sum(r["errors"][k] for k in ("connect", "read", "write", "timeout"))
        statuses = {int(s) for s in r["statuses"]}
        return errors == 0 and statuses <= {200, 503}

    targets = [
        ("GET /users/me ≥ 50% of the ceiling", rps("users_me") / ceiling, 0.5, f"{rps('users_me') / ceiling:.0%} of ceiling"),
        ("logins ≥ 90% of the hash limit", rps("login") / hash_limit, 0.9, f"{rps('login'):.1f}/s of {hash_limit:.1f}/s ({rps('login') / hash_limit:.0%})"),
        ("registrations ≥ 90% of the hash limit", rps("register") / hash_limit, 0.9, f"{rps('register'):.1f}/s of {hash_limit:.1f}/s ({rps('register') / hash_limit:.0%})"),
        ("POST /auth/refresh ≥ 5,000/s (SQLite)", rps("refresh_sqlite"), 5000, f"{rps('refresh_sqlite'):.0f}/s"),
        ("GET /health p99 ≤ 10 ms during a login storm", -runs["health_during_login_storm"]["p99_ms"], -10, f"p99 {runs['health_during_login_storm']['p99_ms']:.2f} ms"),
        ("500 concurrent logins all answered (200/503)", 1 if answered("login_500_connections") else 0, 1, f"statuses {runs['login_500_connections']['statuses']}, errors {runs['login_500_connections']['errors']}"),
        (f"peak RSS ≤ {rss_budget:.0f} MiB", -values["peak_rss_mib"], -rss_budget, f"{values['peak_rss_mib']} MiB"),
        ("/users/me with 1M users within 10%", rps("users_me_large") / small("users_me"), 0.9, f"{rps('users_me_large') / small('users_me'):.0%} of the small-table figure"),
        ("logins with 1M users within 10%", rps("login_large") / small("login"), 0.9, f"{rps('login_large') / small('login'):.0%} of the small-table figure"),
        ("idle RSS ≤ 20 MiB", -values["idle_rss_mib"], -20, f"{values['idle_rss_mib']} MiB"),
        ("start to ready ≤ 100 ms (existing database)", -values["start_to_ready_ms_existing_database"], -100, f"{values['start_to_ready_ms_existing_database']} ms"),
    ]
    refresh = rps("refresh_sqlite")
    for name, label in [("client_credentials", "client_credentials grants"), ("introspection", "introspections")]:
        if name in runs:
            r = runs[name]
            targets.append((f"{label} ≥ 50% of chained refresh (SQLite)", r["rps"] / refresh, 0.5,
                            f"{r['rps']:.0f}/s, {r['rps'] / refresh:.0%} of {refresh:.0f}/s"))
            targets.append((f"{label} p99 ≤ 20 ms at 16 connections", -r["p99_ms"], -20, f"p99 {r['p99_ms']:.2f} ms"))
    if "totp_login_overhead_pct" in values:
        targets.append(("logins with TOTP within 5% of plain logins", -values["totp_login_overhead_pct"], -5,
                        f"{values['totp_login_overhead_pct']:+.1f}% (mean latency, one at a time)"))
    if "mail_queue_mails_per_s" in values:
        targets.append(("mail queue ≥ 200 mails/s to a local SMTP sink", values["mail_queue_mails_per_s"], 200,
                        f"{values['mail_queue_mails_per_s']:.0f} mails/s"))
    if "code_flow" in runs:
        flows = code_flows_per_s(runs["code_flow"])
        targets.append(("full code flows (authorize → token) ≥ 1,000/s (SQLite)", flows, 1000, f"{flows:.0f}/s"))
    if "revocation_latency_p99_ms" in values:
        p99 = values["revocation_latency_p99_ms"]
        targets.append(("revocation seen on another replica ≤ 100 ms (p99, PostgreSQL)", -p99, -100,
                        f"p50 {values['revocation_latency_p50_ms']} ms, p99 {p99} ms, max {values['revocation_latency_max_ms']} ms"))
    ws_rows, ws_targets = working_set(runs, values)
    targets += ws_targets
    targets += postgres_targets(runs)
    machine = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor()),
        "cores": cores,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "wrk": subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()[0] if True else "",
        "command": ("BENCH_POSTGRES_URL=" + os.environ["BENCH_POSTGRES_URL"] + " " if os.environ.get("BENCH_POSTGRES_URL") else "") + "scripts/bench.sh",
    }
    report = {
        "machine": machine,
        "runs": runs,
        "values": values,
        "hash_limit_per_s": hash_limit,
        "targets": [{"target": t, "met": v >= goal, "measured": m} for t, v, goal, m in targets],
    }
    json.dump(report, open(os.path.join(out, "results.json"), "w"), indent=2)

    rows = [
        ("GET /health", "health"),
        ("GET /users/me (valid token)", "users_me"),
        ("POST /auth/token (login)", "login"),
        ("POST /users (registration)", "register"),
        ("POST /auth/refresh, chained (SQLite)", "refresh_sqlite"),
        ("POST /auth/token, client_credentials (client_secret_basic)", "client_credentials"),
        ("POST /auth/introspect (client_secret_basic)", "introspection"),
        ("code flow: GET /auth/authorize (signed in) + POST /auth/token, requests", "code_flow"),
        ("GET /health during a 32-connection login storm", "health_during_login_storm"),
        ("POST /auth/token, 500 connections", "login_500_connections"),
        ("GET /users/me, small table, right before the 1M runs", "users_me_small_adjacent"),
        ("POST /auth/token, small table, right before the 1M runs", "login_small_adjacent"),
        ("GET /users/me, 1M users + 1M sessions", "users_me_large"),
        ("POST /auth/token, 1M users + 1M sessions", "login_large"),
        ("ceiling: bare axum GET /users/me", "ceiling_users_me"),
    ] + POSTGRES_ROWS
    md = [
        f"Machine: {machine['cpu']}, {cores} cores, {machine['memory_gib']} GiB, Linux {machine['kernel']}; "
        f"{machine['wrk']}; load generator on the same machine. Date: {machine['date']}. Command: `{machine['command']}`.",
        "",
        "| workload | req/s | p50 ms | p99 ms | vs ceiling | statuses |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, name in rows:
        if name not in runs:
            continue
        r = runs[name]
        md.append(f"| {label} | {r['rps']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps'] / ceiling:.1%} | {r['statuses']} |")
    md += ws_rows
    md += [
        "",
        f"Hash limit: {cores} cores / {verify_ms} ms per argon2id verification (m=19456, t=2, p=1) = {hash_limit:.1f}/s, "
        f"timed by criterion right before the login workload.",
    ]
    if "argon2_verify_all_cores_ms" in values:
        all_ms = values["argon2_verify_all_cores_ms"]
        parallel = cores / (all_ms / 1000)
        md.append(
            f"With every core verifying at once (no HTTP, no database) {cores} verifications take {all_ms} ms: "
            f"{parallel:.1f}/s, {parallel / hash_limit:.0%} of the hash limit; logins reached {rps('login') / parallel:.0%} "
            f"and registrations {rps('register') / parallel:.0%} of that rate."
        )
    md += [
        f"Idle RSS {values['idle_rss_mib']} MiB; peak RSS {values['peak_rss_mib']} MiB; start to ready "
        f"{values['start_to_ready_ms_new_database']} ms (new database), {values['start_to_ready_ms_existing_database']} ms (existing).",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for t in report["targets"]:
        md.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    open(os.path.join(out, "results.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
