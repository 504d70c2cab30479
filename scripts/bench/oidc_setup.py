#!/usr/bin/env python3
"""Prepares the OpenID Connect workloads of scripts/bench.sh against a running service: an admin
(made with the seed command by the caller), a public and a confidential client, a browser
sign-in cookie (through the real login page), and a live access token to introspect.

    python3 scripts/bench/oidc_setup.py BASE_URL ADMIN_USER ADMIN_PASSWORD USER PASSWORD

Prints shell assignments (BENCH_*) for the workloads to `eval`.
"""
import base64
import hashlib
import html.parser
import http.client
import json
import os
import shlex
import sys
import urllib.parse

BASE, ADMIN, ADMIN_PASSWORD, USER, PASSWORD = sys.argv[1:6]
URL = urllib.parse.urlsplit(BASE)
REDIRECT = "https://bench.example/callback"
VERIFIER = "bench-verifier-0123456789-0123456789-0123456789-abcdef"


def call(method, path, body=None, headers=None):
    connection = http.client.HTTPConnection(URL.hostname, URL.port, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.getheaders(), response.read().decode()


def form(pairs):
    return urllib.parse.urlencode(pairs)


def token(pairs, auth=None):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth:
        headers["Authorization"] = auth
    status, _, body = call("POST", "/auth/token", form(pairs), headers)
    assert status == 200, (status, body)
    return json.loads(body)


admin = token([("grant_type", "password"), ("username", ADMIN), ("password", ADMIN_PASSWORD)])["access_token"]


def register(client_type, grants):
    body = json.dumps({
        "client_name": f"bench {client_type}", "client_type": client_type,
        "redirect_uris": [REDIRECT], "grant_types": grants,
        "scope": "openid profile email offline_access user",
    })
    status, _, answer = call("POST", "/admin/clients", body,
                             {"Content-Type": "application/json", "Authorization": f"Bearer {admin}"})
    assert status == 201, (status, answer)
    return json.loads(answer)


public = register("public", ["authorization_code", "refresh_token"])
confidential = register("confidential", ["client_credentials"])
basic = "Basic " + base64.b64encode(
    f"{confidential['client_id']}:{confidential['client_secret']}".encode()).decode()

challenge = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
query = form([
    ("response_type", "code"), ("client_id", public["client_id"]), ("redirect_uri", REDIRECT),
    ("scope", os.environ.get("BENCH_SCOPE", "openid profile")), ("state", "bench"), ("code_challenge", challenge),
    ("code_challenge_method", "S256"),
])


class Hidden(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "hidden":
            self.fields.append((attrs["name"], attrs.get("value", "")))


def cookies(headers):
    return [v.split(";", 1)[0] for k, v in headers if k.lower() == "set-cookie"]


status, headers, page = call("GET", f"/auth/authorize?{query}")
assert status == 200, status
parser = Hidden()
parser.feed(page)
csrf_cookie = "; ".join(cookies(headers))
status, headers, _ = call("POST", "/auth/authorize",
                          form(parser.fields + [("username", USER), ("password", PASSWORD)]),
                          {"Content-Type": "application/x-www-form-urlencoded", "Cookie": csrf_cookie})
assert status == 303, status
signin = next(c for c in cookies(headers) if "auth_signin=" in c)
user_token = token([("grant_type", "password"), ("username", USER), ("password", PASSWORD)])["access_token"]

for name, value in {
    "BENCH_AUTHORIZE_QUERY": query,
    "BENCH_COOKIE": signin,
    "BENCH_CLIENT_ID": public["client_id"],
    "BENCH_VERIFIER": VERIFIER,
    "BENCH_REDIRECT_URI_ENCODED": urllib.parse.quote(REDIRECT, safe=""),
    "BENCH_CLIENT_BASIC": basic,
    "BENCH_INTROSPECT_TOKEN": user_token,
}.items():
    print(f"{name}={shlex.quote(value)}")
