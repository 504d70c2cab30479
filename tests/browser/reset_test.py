#!/usr/bin/env python3
"""The password-reset page in a real browser: a reset is requested over HTTP, the mail lands in
the service's outbox directory (no SMTP_URL in the test server), its link opens the hosted page;
a password that breaks the rules shows the error (role=alert) and the form again; a good one shows
"Password changed"; the link then no longer works, and the new password logs in. No request goes
anywhere but the service, and the console shows no error (no CSP violation: the page has no
script).

    python3 tests/browser/reset_test.py BASE_URL OUTBOX_DIR USERNAME EMAIL SCREENSHOT_DIR

Exits 1 with the reason on any failure.
"""
import email
import email.policy
import glob
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from docs_test import browser
from login_test import console_problems, requested_urls


def post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def reset_link(outbox: str, base: str) -> str:
    deadline = time.time() + 20
    while time.time() < deadline:
        files = glob.glob(os.path.join(outbox, "*.eml"))
        if files:
            with open(files[0], "rb") as f:
                message = email.message_from_binary_file(f, policy=email.policy.default)
            text = message.get_body(("plain",)).get_content()
            match = re.search(r"(\S+/auth/password-reset\?token=[A-Za-z0-9_-]+)", text)
            assert match, f"no reset link in the mail: {text!r}"
            link = match.group(1)
            assert link.startswith(base + "/"), f"the link {link} does not start at {base}"
            return link
        time.sleep(0.1)
    sys.exit(f"reset: no mail in {outbox} within 20 s")


def main() -> None:
    base, outbox, username, address, shots = sys.argv[1:6]
    os.makedirs(shots, exist_ok=True)
    status = post(f"{base}/auth/password-reset", json.dumps({"email": address}).encode(),
                  "application/json")
    assert status == 202, f"the reset request answered {status}"
    link = reset_link(outbox, base)
    new_password = "a brand new browser passphrase"

    driver = browser(performance_log=True)
    wait = WebDriverWait(driver, 20)
    seen, problems = [], []
    try:
        driver.get(link)
        field = wait.until(EC.visibility_of_element_located((By.NAME, "new_password")))
        assert driver.find_element(By.TAG_NAME, "h1").text == "Choose a new password"
        assert field.get_attribute("type") == "password"
        assert field.get_attribute("autocomplete") == "new-password"
        driver.save_screenshot(os.path.join(shots, "reset.png"))
        seen += requested_urls(driver)
        problems += console_problems(driver)

        # Too short: the form again, the error announced, nothing changed.
        field.send_keys("short" + Keys.ENTER)
        alert = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[role=alert]")))
        assert "password" in alert.text.lower(), f"the alert says {alert.text!r}"
        driver.save_screenshot(os.path.join(shots, "reset-error.png"))
        seen += requested_urls(driver)
        problems += console_problems(driver)

        driver.find_element(By.NAME, "new_password").send_keys(new_password + Keys.ENTER)
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Password changed"))
        driver.save_screenshot(os.path.join(shots, "reset-done.png"))
        seen += requested_urls(driver)
        problems += console_problems(driver)

        # Used: the error page (a 400, which the console reports as a failed load: expected).
        driver.get(link)
        wait.until(EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "no longer valid"))
        seen += requested_urls(driver)
        problems += [p for p in console_problems(driver)
                     if not (p.get("source") == "network" and link in p["message"])]
    finally:
        driver.quit()

    external = [u for u in seen if not u.startswith(base) and not u.startswith("data:")]
    assert not external, f"requests beyond the service: {external}"
    assert not problems, f"console errors: {json.dumps(problems, indent=2)}"
    form = urllib.parse.urlencode({"grant_type": "password", "username": username,
                                   "password": new_password}).encode()
    status = post(f"{base}/auth/token", form, "application/x-www-form-urlencoded")
    assert status == 200, f"the new password does not log in ({status})"
    print("reset: the mail's link opened the reset page; a short password was refused on the page, "
          "a good one was set, the link then refused, and the new password logs in")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        sys.exit(f"reset: {failure}")
