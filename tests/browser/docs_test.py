#!/usr/bin/env python3
"""Swagger UI in a real browser: /docs loads with no external request and no CSP violation,
"Authorize" logs in through the OAuth2 password flow against /auth/token, and "Try it out" on
GET /users/me returns the user.

    python3 tests/browser/docs_test.py BASE_URL USERNAME PASSWORD SCREENSHOT_DIR

Drives Debian's headless Chromium through chromedriver (selenium). Exits 1 with the reason on
any failure; screenshots go to SCREENSHOT_DIR.
"""
import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait


def browser(performance_log: bool = False) -> webdriver.Chrome:
    """Headless Chromium; its console in the "browser" log and, with `performance_log`, every
    network request in the "performance" log (DevTools events)."""
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--window-size=1280,1600",
    ]:
        options.add_argument(flag)
    logs = {"browser": "ALL", "performance": "ALL"} if performance_log else {"browser": "ALL"}
    options.set_capability("goog:loggingPrefs", logs)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=options)


def main() -> None:
    base, username, password, shots = sys.argv[1:5]
    os.makedirs(shots, exist_ok=True)
    driver = browser()
    wait = WebDriverWait(driver, 20)
    try:
        driver.get(f"{base}/docs/")
        wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title")))
        wait.until(EC.presence_of_element_located((By.ID, "operations-users-me")))

        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        external = [r for r in resources if not r.startswith(base)]
        assert not external, f"external requests: {external}"
        problems = [e for e in driver.get_log("browser")
                    if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]
        assert not problems, f"console errors: {json.dumps(problems, indent=2)}"

        driver.find_element(By.CSS_SELECTOR, "button.btn.authorize").click()
        wait.until(EC.visibility_of_element_located((By.ID, "oauth_username"))).send_keys(username)
        driver.find_element(By.ID, "oauth_password").send_keys(password)
        driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
        # Authorized: the dialog offers "Logout" instead of "Authorize".
        wait.until(EC.visibility_of_element_located(
            (By.XPATH, "//div[contains(@class,'auth-btn-wrapper')]//button[normalize-space()='Logout']")))
        driver.save_screenshot(os.path.join(shots, "docs-authorized.png"))
        driver.find_element(By.CSS_SELECTOR, "button.btn-done").click()

        operation = driver.find_element(By.ID, "operations-users-me")
        operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait.until(lambda d: operation.find_element(By.CSS_SELECTOR, "button.try-out__btn")).click()
        wait.until(lambda d: operation.find_element(By.CSS_SELECTOR, "button.execute")).click()
        status = wait.until(lambda d: operation.find_element(
            By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"))
        wait.until(lambda d: status.text.strip() != "")
        body = operation.find_element(By.CSS_SELECTOR, ".live-responses-table .response-col_description pre").text
        driver.execute_script("arguments[0].scrollIntoView()", status)
        driver.save_screenshot(os.path.join(shots, "docs-users-me.png"))
        assert status.text.strip().startswith("200"), f"GET /users/me answered {status.text!r}: {body}"
        user = json.loads(body)
        assert user["username"] == username, f"unexpected user: {user}"
        print(f"browser: /docs logged in as {username} through Authorize and GET /users/me returned them; "
              f"{len(resources)} resources, all from {base}")
    except Exception as error:  # report with a screenshot of the state it failed in
        driver.save_screenshot(os.path.join(shots, "docs-failure.png"))
        print(f"browser test failed: {error!r}", file=sys.stderr)
        sys.exit(1)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
