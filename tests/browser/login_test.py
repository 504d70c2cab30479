#!/usr/bin/env python3
"""The hosted login page of the OpenID Connect provider in a real browser: an authorization
request (code flow, PKCE S256, state, nonce) opens the login page; a wrong password shows the
error (role=alert) with the focus in the password field, ready to type again; the right password
ends at the client's redirect URI with `code`, `state` and `iss`. No request goes anywhere but
the service and the callback, and the console shows no error.

    python3 tests/browser/login_test.py BASE_URL CLIENT_ID USERNAME PASSWORD SCREENSHOT_DIR RESULT_JSON

The client must be registered with the redirect URI http://127.0.0.1/callback (a loopback URI,
so any port matches, RFC 8252 §7.3): the test serves that callback itself on a free port. On
success it writes what the token request needs to RESULT_JSON: code, redirect_uri,
code_verifier, and the state and nonce it sent. Screenshots (login.png, login-error.png) go to
SCREENSHOT_DIR. Exits 1 with the reason on any failure.
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

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from docs_test import browser


class Callback(http.server.BaseHTTPRequestHandler):
    """The client's redirect URI: a page saying the code arrived (it does nothing with it)."""

    def do_GET(self):  # noqa: N802 (the http.server API)
        if urllib.parse.urlsplit(self.path).path == "/favicon.ico":  # the client has none
            self.send_response(204)
            self.end_headers()
            return
        if urllib.parse.urlsplit(self.path).path != "/callback":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<!doctype html><title>Callback</title><p>The client got its code.</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def requested_urls(driver) -> list:
    """Every URL the browser asked for since the last call (Chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def console_problems(driver) -> list:
    return [e for e in driver.get_log("browser")
            if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]


def main() -> None:
    base, client_id, username, password, shots, result_file = sys.argv[1:7]
    os.makedirs(shots, exist_ok=True)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    callback = f"http://127.0.0.1:{server.server_address[1]}/callback"

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    nonce = secrets.token_urlsafe(16)
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": callback,
        "scope": "openid profile email", "state": state, "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256",
    })

    driver = browser(performance_log=True)
    wait = WebDriverWait(driver, 20)
    seen = []
    problems = []
    try:
        driver.get(f"{base}/auth/authorize?{query}")
        user_field = wait.until(EC.visibility_of_element_located((By.NAME, "username")))
        assert driver.title.strip(), "the page has a title"
        assert driver.find_element(By.TAG_NAME, "h1").text == "Sign in"
        assert driver.switch_to.active_element == user_field, "the username field has the focus"
        pass_field = driver.find_element(By.NAME, "password")
        assert pass_field.get_attribute("type") == "password"
        assert driver.find_elements(By.CSS_SELECTOR, "[role=alert]") == [], "no error yet"
        driver.save_screenshot(os.path.join(shots, "login.png"))
        seen += requested_urls(driver)
        problems += console_problems(driver)

        # A wrong password: the page again, the error announced, the focus in the password field.
        user_field.send_keys(username)
        pass_field.send_keys("not the password")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        alert = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[role=alert]")))
        assert "Wrong username or password" in alert.text, f"the alert says {alert.text!r}"
        pass_field = driver.find_element(By.NAME, "password")
        assert driver.switch_to.active_element == pass_field, (
            "after the error the focus is in the password field, not "
            f"{driver.switch_to.active_element.get_attribute('outerHTML')!r}")
        assert pass_field.get_attribute("value") == "", "the wrong password is not kept"
        assert pass_field.get_attribute("aria-describedby") == alert.get_attribute("id")
        assert driver.find_element(By.NAME, "username").get_attribute("value") == username
        driver.save_screenshot(os.path.join(shots, "login-error.png"))
        seen += requested_urls(driver)
        problems += console_problems(driver)

        # Type the right password where the focus is and press Enter.
        driver.switch_to.active_element.send_keys(password + Keys.ENTER)
        wait.until(lambda d: d.current_url.startswith(callback))
        assert "The client got its code." in driver.page_source
        landed = urllib.parse.urlsplit(driver.current_url)
        params = dict(urllib.parse.parse_qsl(landed.query))
        assert f"{landed.scheme}://{landed.netloc}{landed.path}" == callback, driver.current_url
        assert "error" not in params, f"an error came back: {params}"
        assert params.get("code"), f"no code: {params}"
        assert params.get("state") == state, f"state {params.get('state')!r}, sent {state!r}"
        assert params.get("iss") == base, f"iss {params.get('iss')!r}, expected {base!r}"
        seen += requested_urls(driver)
        problems += console_problems(driver)

        allowed = {origin(base), origin(callback)}
        elsewhere = [u for u in seen if not u.startswith("data:") and origin(u) not in allowed]
        assert not elsewhere, f"requests to other origins: {elsewhere}"
        assert any(u.startswith(f"{base}/auth/authorize") for u in seen), f"requests seen: {seen}"
        # The pages declare an empty icon (`data:`), so the browser asks the service for no
        # /favicon.ico (which would be a 404 and a console error).
        assert not any(u.startswith(f"{base}/favicon.ico") for u in seen), f"asked the service for a favicon: {seen}"
        assert not problems, f"console errors: {json.dumps(problems, indent=2)}"

        with open(result_file, "w", encoding="utf-8") as f:
            json.dump({"code": params["code"], "redirect_uri": callback,
                       "code_verifier": verifier, "state": state, "nonce": nonce}, f)
        print(f"browser: signed in on the login page (after a wrong password) and landed on "
              f"{callback} with code, state and iss; {len(seen)} requests, all to "
              f"{' or '.join(sorted(allowed))}, no console error")
    except Exception as error:  # report with a screenshot of the state it failed in
        driver.save_screenshot(os.path.join(shots, "login-failure.png"))
        print(f"login page test failed: {error!r}", file=sys.stderr)
        sys.exit(1)
    finally:
        driver.quit()
        server.shutdown()


if __name__ == "__main__":
    main()
