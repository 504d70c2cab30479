#!/usr/bin/env python3
"""Fill an auth-service SQLite database with N users and N live sessions (each with a refresh
token), directly, for the large-table benchmark.

    python3 scripts/bench/fill.py DB_PATH N

Every user gets the password hash of the database's first user (one precomputed argon2id hash,
so no hashing is needed), role `user`; each session belongs to a random filled user, expires in
14 days and is not revoked. Rows are inserted in one transaction in batches of 10,000.
"""
import os
import random
import sqlite3
import sys
import time
import uuid


def main() -> None:
    path, count = sys.argv[1], int(sys.argv[2])
    db = sqlite3.connect(path)
    (hash_,) = db.execute("SELECT password_hash FROM users ORDER BY created_at LIMIT 1").fetchone()
    now = int(time.time() * 1_000_000)
    expires = now + 14 * 24 * 3600 * 1_000_000
    not_after = now + 30 * 24 * 3600 * 1_000_000
    started = time.time()
    user_ids = []
    with db:
        batch = []
        for i in range(count):
            uid = str(uuid.uuid4())
            user_ids.append(uid)
            batch.append((uid, f"filled{i}", hash_, "user", 1, now, now))
            if len(batch) == 10_000:
                db.executemany(
                    "INSERT INTO users (id, username, password_hash, roles, is_active, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
                batch.clear()
        if batch:
            db.executemany(
                "INSERT INTO users (id, username, password_hash, roles, is_active, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
        sessions, tokens = [], []
        for _ in range(count):
            sid = str(uuid.uuid4())
            sessions.append((sid, random.choice(user_ids), "user", now, expires, not_after))
            tokens.append((os.urandom(32).hex(), sid, now, expires))
            if len(sessions) == 10_000:
                db.executemany("INSERT INTO sessions (id, user_id, scope, created_at, expires_at, not_after) VALUES (?, ?, ?, ?, ?, ?)", sessions)
                db.executemany("INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)", tokens)
                sessions.clear()
                tokens.clear()
        if sessions:
            db.executemany("INSERT INTO sessions (id, user_id, scope, created_at, expires_at, not_after) VALUES (?, ?, ?, ?, ?, ?)", sessions)
            db.executemany("INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?, ?, ?, ?)", tokens)
    db.execute("ANALYZE")
    db.close()
    print(f"filled {count} users and {count} sessions in {time.time() - started:.1f} s")


if __name__ == "__main__":
    main()
