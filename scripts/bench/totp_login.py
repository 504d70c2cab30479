#!/usr/bin/env python3
"""Password-grant logins with TOTP against logins without, on a running server (release build,
production argon2 settings, rate limit off): the cost the second factor adds to a login.

    python3 scripts/bench/totp_login.py BASE_URL [USERS]

Registers USERS (default 300) users without and USERS with TOTP (enrolled and confirmed over
HTTP, the code computed here with hmac/hashlib, RFC 6238), then logs every user in once, one
request at a time, alternating a plain and a TOTP login so that both see the same machine. A TOTP
code is accepted once per user, hence one login per user: each TOTP login sends the code of the
step after its confirmation (accepted within the one-step skew). Prints the latency of each kind
(mean, p50, p90, p99 in ms) and the difference of the means, as one JSON line at the end.
"""
import base64
import hashlib
import hmac
import json
import statistics
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

PASSWORD = "benchmark passphrase 1"


def totp(secret_b32, step):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def call(base, method, path, body=None, token=None, form=None):
    headers, data = {}, None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def login(base, username, otp=None):
    form = {"grant_type": "password", "username": username, "password": PASSWORD}
    if otp:
        form["otp"] = otp
    started = time.perf_counter()
    status, body = call(base, "POST", "/auth/token", form=form)
    elapsed = (time.perf_counter() - started) * 1000
    assert status == 200, f"login of {username}: {status} {body}"
    return elapsed


def summary(samples):
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return {"n": len(samples), "mean_ms": round(statistics.fmean(samples), 2),
            "p50_ms": round(pick(0.5), 2), "p90_ms": round(pick(0.9), 2),
            "p99_ms": round(pick(0.99), 2)}


def main():
    base = sys.argv[1].rstrip("/")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    run = str(int(time.time()))[-6:]
    plain, with_totp = [], []
    for i in range(count):
        for kind in ("p", "t"):
            name = f"b{kind}{run}_{i}"
            status, body = call(base, "POST", "/users", {"username": name, "password": PASSWORD})
            assert status == 201, f"register {name}: {status} {body}"
            if kind == "p":
                plain.append(name)
                continue
            status, tokens = call(base, "POST", "/auth/token",
                                  form={"grant_type": "password", "username": name, "password": PASSWORD})
            assert status == 200, tokens
            status, enrolment = call(base, "POST", "/users/me/mfa/totp", {"password": PASSWORD},
                                     tokens["access_token"])
            assert status == 201, enrolment
            step = int(time.time()) // 30
            status, body = call(base, "POST", "/users/me/mfa/totp/confirm",
                                {"code": totp(enrolment["secret"], step)}, tokens["access_token"])
            assert status == 200, body
            with_totp.append((name, enrolment["secret"], step))
    plain_ms, totp_ms = [], []
    for i in range(count):
        plain_ms.append(login(base, plain[i]))
        name, secret, confirmed = with_totp[i]
        step = max(int(time.time()) // 30, confirmed + 1)
        totp_ms.append(login(base, name, totp(secret, step)))
    result = {"plain": summary(plain_ms), "totp": summary(totp_ms)}
    result["totp_minus_plain_mean_ms"] = round(result["totp"]["mean_ms"] - result["plain"]["mean_ms"], 2)
    result["totp_over_plain_mean_pct"] = round(
        100 * (result["totp"]["mean_ms"] / result["plain"]["mean_ms"] - 1), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
