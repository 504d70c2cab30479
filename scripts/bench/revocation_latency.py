#!/usr/bin/env python3
"""Cross-replica revocation latency: how long after a logout answered by replica A does replica B
refuse the token (issue 15: p99 ≤ 100 ms). Python standard library only.

    python3 scripts/bench/revocation_latency.py A_URL B_URL [TRIALS]

Registers one user on A, then TRIALS times (default 200): logs in on A, uses the access token on
B (twice, so that B has the session in its live-session cache), logs out on A, and from the
moment A's 204 arrives polls `GET /users/me` on B as fast as it answers (one kept-alive
connection) until it is 401. The latency of a trial is from A's answer to B's 401 (so it
includes one request to B). Prints one JSON line: trials, p50/p90/p99/max/mean in ms, and how many
trials were refused on the first poll.
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse
import uuid

PASSWORD = "revocation latency benchmark passphrase"


class Replica:
    """One kept-alive HTTP connection to a replica."""

    def __init__(self, base: str):
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port or 80
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=10)

    def call(self, method: str, path: str, body=None, token=None, form=None):
        headers = {}
        data = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if form is not None:
            data = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                text = response.read()
                return response.status, (json.loads(text) if text.strip() else None)
            except (http.client.HTTPException, ConnectionError):
                # The server closed the kept-alive connection: reconnect once.
                self.connection.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
                if attempt:
                    raise


def percentile(sorted_values, p):
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def main() -> None:
    a, b = Replica(sys.argv[1]), Replica(sys.argv[2])
    trials = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    username = "rev" + uuid.uuid4().hex[:12]
    status, body = a.call("POST", "/users", {"username": username, "password": PASSWORD})
    assert status == 201, (status, body)
    latencies, first_poll, polls = [], 0, 0
    for _ in range(trials):
        status, tokens = a.call("POST", "/auth/token",
                                form={"grant_type": "password", "username": username, "password": PASSWORD})
        assert status == 200, (status, tokens)
        access = tokens["access_token"]
        for _ in range(2):
            status, _ = b.call("GET", "/users/me", token=access)
            assert status == 200, status
        status, _ = a.call("POST", "/auth/logout", token=access)
        assert status == 204, status
        answered = time.perf_counter()
        count = 0
        while True:
            status, _ = b.call("GET", "/users/me", token=access)
            count += 1
            if status == 401:
                latencies.append((time.perf_counter() - answered) * 1000)
                break
            assert status == 200, status
            assert time.perf_counter() - answered < 10, "B never refused the token"
        polls += count
        first_poll += count == 1
    ordered = sorted(latencies)
    print(json.dumps({
        "trials": trials,
        "p50_ms": round(percentile(ordered, 50), 2),
        "p90_ms": round(percentile(ordered, 90), 2),
        "p99_ms": round(percentile(ordered, 99), 2),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.mean(ordered), 2),
        "refused_on_first_poll": first_poll,
        "mean_polls": round(polls / trials, 2),
    }))


if __name__ == "__main__":
    main()
