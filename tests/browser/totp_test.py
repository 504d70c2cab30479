#!/usr/bin/env python3
"""Password + TOTP on the hosted login page in a real browser. The test turns TOTP on for the user
over HTTP (POST /users/me/mfa/totp, then .../confirm with a code it computes itself with
hmac/hashlib from the returned secret, RFC 6238), then signs in: the login page, the password,
the second step's page (a one-time-code input, a recovery-code alternative, no script), a wrong
code (the alert, the page again), the right code, and the client's redirect URI with `code`,
`state` and `iss`. Console errors and requests to other origins fail it.

    python3 tests/browser/totp_test.py BASE_URL CLIENT_ID USERNAME PASSWORD SCREENSHOT_DIR

The client must be registered with the redirect URI http://127.0.0.1/callback (a loopback URI).
Screenshots (totp.png, totp-error.png) go to SCREENSHOT_DIR. Exits 1 with the reason on failure.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import secrets
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from docs_test import browser
from login_test import Callback, console_problems, origin, requested_urls


def totp(secret_b32: str, step: int) -> str:
    """RFC 6238 / RFC 4226: HMAC-SHA-1 of the step, dynamic truncation, 6 digits."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def call(method: str, url: str, body=None, token=None, form=None):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def turn_totp_on(base: str, username: str, password: str) -> tuple:
    status, tokens = call("POST", f"{base}/auth/token",
                          form={"grant_type": "password", "username": username, "password": password})
    assert status == 200, f"login: {status} {tokens}"
    token = tokens["access_token"]
    status, enrolment = call("POST", f"{base}/users/me/mfa/totp", {"password": password}, token)
    assert status == 201, f"enrolment: {status} {enrolment}"
    secret = enrolment["secret"]
    step = int(time.time()) // 30
    status, confirmed = call("POST", f"{base}/users/me/mfa/totp/confirm", {"code": totp(secret, step)}, token)
    assert status == 200 and len(confirmed["recovery_codes"]) == 10, f"confirm: {status} {confirmed}"
    status, required = call("POST", f"{base}/auth/token",
                            form={"grant_type": "password", "username": username, "password": password})
    assert status == 400 and required["error"] == "mfa_required", f"{status} {required}"
    return secret, step


def main() -> None:
    base, client_id, username, password, shots = sys.argv[1:6]
    os.makedirs(shots, exist_ok=True)
    secret, confirmed_step = turn_totp_on(base, username, password)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{server.server_address[1]}/callback"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": callback,
        "scope": "openid profile", "state": state, "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge, "code_challenge_method": "S256",
    })

    driver = browser(performance_log=True)
    wait = WebDriverWait(driver, 20)
    seen, problems = [], []
    try:
        driver.get(f"{base}/auth/authorize?{query}")
        wait.until(EC.visibility_of_element_located((By.NAME, "username"))).send_keys(username)
        driver.find_element(By.NAME, "password").send_keys(password + Keys.ENTER)

        # The second step: a one-time-code field with the focus, a recovery-code alternative.
        otp = wait.until(EC.visibility_of_element_located((By.ID, "otp")))
        assert driver.find_element(By.TAG_NAME, "h1").text == "Two-step verification"
        assert otp.get_attribute("autocomplete") == "one-time-code"
        assert otp.get_attribute("inputmode") == "numeric"
        assert driver.switch_to.active_element == otp, "the code field has the focus"
        assert not driver.find_elements(By.TAG_NAME, "script"), "the page runs no script"
        assert not driver.find_element(By.ID, "recovery-code").is_displayed()
        driver.find_element(By.CSS_SELECTOR, "details.alternative summary").click()
        assert driver.find_element(By.ID, "recovery-code").is_displayed(), "the toggle opens"
        assert not [c for c in driver.get_cookies() if "signin" in c["name"]], "no sign-in yet"
        driver.save_screenshot(os.path.join(shots, "totp.png"))
        seen += requested_urls(driver)
        problems += console_problems(driver)

        # A wrong code: the page again with the alert.
        otp.send_keys("000000" + Keys.ENTER)
        alert = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[role=alert]")))
        assert "Wrong code" in alert.text, f"the alert says {alert.text!r}"
        driver.save_screenshot(os.path.join(shots, "totp-error.png"))
        seen += requested_urls(driver)
        problems += console_problems(driver)

        # The right code: a step after the one that confirmed the enrolment (±1 step is accepted).
        step = max(int(time.time()) // 30, confirmed_step + 1)
        driver.find_element(By.ID, "otp").send_keys(totp(secret, step) + Keys.ENTER)
        wait.until(lambda d: d.current_url.startswith(callback))
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(driver.current_url).query))
        assert "error" not in params, f"an error came back: {params}"
        assert params.get("code") and params.get("state") == state and params.get("iss") == base, params
        assert [c for c in driver.get_cookies() if "signin" in c["name"]], "signed in now"
        seen += requested_urls(driver)
        problems += console_problems(driver)

        allowed = {origin(base), origin(callback)}
        elsewhere = [u for u in seen if not u.startswith("data:") and origin(u) not in allowed]
        assert not elsewhere, f"requests to other origins: {elsewhere}"
        assert not problems, f"console errors: {json.dumps(problems, indent=2)}"
        print("browser: signed in on the login page with password + TOTP (after a wrong code) "
              f"and landed on {callback} with code, state and iss; no console error")
    except Exception as error:
        driver.save_screenshot(os.path.join(shots, "totp-failure.png"))
        print(f"TOTP login test failed: {error!r}", file=sys.stderr)
        sys.exit(1)
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
