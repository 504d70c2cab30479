#!/usr/bin/env python3
"""Make N logged-in users for the working-set workloads, and write their access tokens.

    python3 scripts/bench/working_set.py fill DB_PATH N
    python3 scripts/bench/working_set.py login BASE_URL N PASSWORD TOKENS_FILE

`fill` inserts N users `ws0` .. `ws{N-1}` directly (the server may be running: it caches no
user it has not read), each with the password hash of the database's first user, role `user`.
Start that server with cheap argon2 parameters (e.g. ARGON2_MEMORY_KIB=64 ARGON2_ITERATIONS=1)
before registering the first user, so that the hash is cheap to verify.

`login` signs every filled user in through the API (the password grant, 16 connections kept
alive) and writes the access tokens the server issued, one a line: real tokens, signed with
its key, each with its own live session.
"""
import http.client
import sqlite3
import sys
import threading
import time
import urllib.parse
import uuid
import json


def fill(path: str, count: int) -> None:
    db = sqlite3.connect(path, timeout=30)
    (hash_,) = db.execute("SELECT password_hash FROM users ORDER BY created_at LIMIT 1").fetchone()
    now = int(time.time() * 1_000_000)
    with db:
        db.executemany(
            "INSERT INTO users (id, username, password_hash, roles, is_active, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            ((str(uuid.uuid4()), f"ws{i}", hash_, "user", 1, now, now) for i in range(count)))
    db.close()


def login(base: str, count: int, password: str, out: str) -> None:
    url = urllib.parse.urlsplit(base)
    tokens = [None] * count
    failures = []
    next_index = iter(range(count))
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            body = urllib.parse.urlencode(
                {"grant_type": "password", "username": f"ws{i}", "password": password})
            conn.request("POST", "/auth/token", body,
                         {"Content-Type": "application/x-www-form-urlencoded"})
            response = conn.getresponse()
            data = response.read()
            if response.status == 200:
                tokens[i] = json.loads(data)["access_token"]
            else:
                failures.append(response.status)

    started = time.time()
    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"{len(failures)} logins failed, e.g. status {failures[0]}")
    with open(out, "w") as f:
        f.write("\n".join(tokens) + "\n")
    print(f"logged in {count} users in {time.time() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        fill(sys.argv[2], int(sys.argv[3]))
    else:
        login(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
