#!/usr/bin/env python3
"""Passkey sign-in on the hosted login page in a real browser, with Chromium's virtual
authenticator (DevTools WebAuthn domain: CTAP2, internal, resident keys, user verification).

    python3 tests/browser/passkey_test.py BASE_URL CLIENT_ID USERNAME PASSWORD SCREENSHOT_DIR

BASE_URL must name the host `localhost` (browsers refuse an IP address as WebAuthn RP id; the
service's default RP id for a loopback issuer is `localhost`). The client must be registered with
the redirect URI http://127.0.0.1/callback; the test serves it on a free port. Steps:

1. a bearer token for USERNAME from the password grant (the user must have no second factor yet);
2. the login page of an authorization request; the virtual authenticator is added, and the page
   registers a passkey through POST /users/me/passkeys/register/start and /finish (fetch with the
   bearer token, `navigator.credentials.create`, the page script's base64url helpers);
3. a fresh login page: "Sign in with a passkey" is clicked, the browser signs with the passkey,
   and it lands on the callback with `code`, `state` and `iss`; the code is exchanged at the token
   endpoint with the PKCE verifier for tokens of USERNAME.

Screenshots (passkey-login.png, passkey-failure.png) go to SCREENSHOT_DIR. Exits 1 with the
reason on any failure.
"""
import base64
import hashlib
import http.server
import json
import os
import secrets
import sys
import threading
import urllib.parse
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from docs_test import browser
from login_test import Callback, console_problems

REGISTER = """
const [token, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const started = await fetch("/users/me/passkeys/register/start",
    {method: "POST", headers: {Authorization: "Bearer " + token}});
  if (!started.ok) return done({step: "start", status: started.status, body: await started.text()});
  const ceremony = await started.json();
  const credential = await navigator.credentials.create(
    {publicKey: authPasskeys.creationOptions(ceremony.publicKey)});
  const finished = await fetch("/users/me/passkeys/register/finish", {method: "POST",
    headers: {Authorization: "Bearer " + token, "Content-Type": "application/json"},
    body: JSON.stringify({ceremony_id: ceremony.ceremony_id, name: "Virtual authenticator",
                          credential: authPasskeys.credentialJSON(credential)})});
  done({step: "finish", status: finished.status, body: await finished.text()});
})().catch(error => done({step: "exception", status: 0, body: String(error)}));
"""


def post_form(url: str, fields: dict) -> tuple:
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def authorization_url(base: str, client_id: str, callback: str) -> tuple:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": callback,
        "scope": "openid profile", "state": state, "nonce": secrets.token_urlsafe(16),
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    return f"{base}/auth/authorize?{query}", verifier, state


def main() -> None:
    base, client_id, username, password, shots = sys.argv[1:6]
    os.makedirs(shots, exist_ok=True)
    assert urllib.parse.urlsplit(base).hostname == "localhost", "BASE_URL must use localhost"

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{server.server_address[1]}/callback"

    status, tokens = post_form(f"{base}/auth/token", {
        "grant_type": "password", "username": username, "password": password})
    assert status == 200, f"password grant answered {status}: {tokens}"

    driver = browser()
    wait = WebDriverWait(driver, 20)
    try:
        driver.execute_cdp_cmd("WebAuthn.enable", {})
        driver.execute_cdp_cmd("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
            "hasUserVerification": True, "isUserVerified": True,
            "automaticPresenceSimulation": True,
        }})

        # Register a passkey from a page of the service's origin.
        url, _, _ = authorization_url(base, client_id, callback)
        driver.get(url)
        wait.until(EC.visibility_of_element_located((By.ID, "passkey-button")))
        driver.set_script_timeout(30)
        registered = driver.execute_async_script(REGISTER, tokens["access_token"])
        assert registered["status"] == 201, f"registration failed: {registered}"
        passkey = json.loads(registered["body"])
        assert passkey["name"] == "Virtual authenticator", passkey

        # Sign in with it on a fresh login page.
        url, verifier, state = authorization_url(base, client_id, callback)
        driver.get(url)
        button = wait.until(EC.element_to_be_clickable((By.ID, "passkey-button")))
        label = button.text
        assert "passkey" in label.lower(), f"the button says {label!r}"
        assert driver.find_elements(By.CSS_SELECTOR, "[role=alert]") == [], "no error yet"
        driver.save_screenshot(os.path.join(shots, "passkey-login.png"))
        button.click()
        wait.until(lambda d: d.current_url.startswith(callback)
                   or d.find_elements(By.CSS_SELECTOR, "[role=alert]"))
        alerts = driver.find_elements(By.CSS_SELECTOR, "[role=alert]")
        assert not alerts, f"the page says {alerts[0].text!r}"
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(driver.current_url).query))
        assert params.get("code") and "error" not in params, f"came back with {params}"
        assert params.get("state") == state, f"state {params.get('state')!r}, sent {state!r}"
        problems = console_problems(driver)
        assert not problems, f"console errors: {json.dumps(problems, indent=2)}"

        status, exchanged = post_form(f"{base}/auth/token", {
            "grant_type": "authorization_code", "client_id": client_id, "code": params["code"],
            "redirect_uri": callback, "code_verifier": verifier})
        assert status == 200, f"the code exchange answered {status}: {exchanged}"
        request = urllib.request.Request(f"{base}/users/me", headers={
            "Authorization": f"Bearer {exchanged['access_token']}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            me = json.loads(response.read())
        assert me["username"] == username, me
        assert me["mfa"]["passkeys"] == 1, me
        print(f"browser: registered a passkey with Chromium's virtual authenticator, signed in "
              f"with it on the login page ('{label}'), landed on the callback with a code, "
              f"and exchanged it for {username}'s tokens")
    except Exception as error:  # report with a screenshot of the state it failed in
        driver.save_screenshot(os.path.join(shots, "passkey-failure.png"))
        print(f"passkey test failed: {error!r}", file=sys.stderr)
        sys.exit(1)
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
