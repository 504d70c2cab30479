//! The hosted login page's second step, driven as a browser would (cookie jar, forms).

use chrono::Duration;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;
use crate::oidc::*;

use super::Authenticator;

/// The world with TOTP on for alice; her authenticator and recovery codes.
async fn world_with_totp() -> (World, Authenticator, Vec<String>) {
    let w = world().await;
    let alice = w.app.tokens("alice", PASSWORD).await;
    let authenticator = w.app.enrolled(&alice.access).await;
    let response = w
        .app
        .confirm(&alice.access, &authenticator.code(&w.app, 0))
        .await;
    let body: Value = response.json().await.unwrap();
    let codes = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    w.app.next_step();
    (w, authenticator, codes)
}

/// Submits the second step's form of `page` with `otp`.
async fn submit_code(browser: &mut Browser<'_>, page: &str, otp: &str) -> reqwest::Response {
    let mut pairs = hidden_inputs(page);
    // The page has two forms (code, recovery code) with the same hidden fields: send one set.
    pairs.truncate(pairs.len() / 2);
    pairs.push(("otp".into(), otp.into()));
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    browser.post_form("/auth/authorize", &form(&pairs)).await
}

/// The login page, then the password: the second step's page.
async fn password_step(w: &World, browser: &mut Browser<'_>) -> String {
    let query = auth_query(&w.public.id, &[]);
    let page = browser.get(&format!("/auth/authorize?{query}")).await;
    let html = page.text().await.unwrap();
    let second = browser.submit_login(&html, "alice", PASSWORD).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert!(
        second.headers().get_all("set-cookie").iter().all(|c| {
            let c = c.to_str().unwrap();
            !c.contains("signin") || c.contains("Max-Age=0")
        }),
        "no sign-in cookie before the second factor"
    );
    second.text().await.unwrap()
}

#[tokio::test]
async fn the_login_page_asks_for_the_code_after_the_password_and_signs_in_with_it() {
    let (w, authenticator, _) = world_with_totp().await;
    let mut browser = Browser::new(&w.app);
    let page = password_step(&w, &mut browser).await;
    assert!(page.contains("autocomplete=\"one-time-code\""));
    assert!(page.contains("inputmode=\"numeric\""));
    assert!(page.contains("Use a recovery code instead"));
    assert!(!page.contains("<script"));
    assert!(hidden_inputs(&page).iter().any(|(n, _)| n == "pending"));
    let wrong = submit_code(&mut browser, &page, "000000").await;
    assert_eq!(wrong.status(), StatusCode::OK);
    let again = wrong.text().await.unwrap();
    assert!(again.contains("role=\"alert\"") && again.contains("Wrong code"));
    let back = submit_code(&mut browser, &again, &authenticator.code(&w.app, 0)).await;
    let (code, _) = redirected_with_code(back);
    assert_eq!(exchange_public(&w, &code).await.status(), StatusCode::OK);
    // The sign-in is live: the next authorization needs no page at all.
    let query = auth_query(&w.public.id, &[]);
    let next = browser.get(&format!("/auth/authorize?{query}")).await;
    redirected_with_code(next);
}

#[tokio::test]
async fn a_recovery_code_signs_in_on_the_page_and_a_pending_sign_in_is_used_once() {
    let (w, _, codes) = world_with_totp().await;
    let mut browser = Browser::new(&w.app);
    let page = password_step(&w, &mut browser).await;
    let back = submit_code(&mut browser, &page, &codes[3].to_uppercase()).await;
    redirected_with_code(back);
    let alice = w.app.tokens_with_otp("alice", &codes[4]).await;
    assert_eq!(w.app.mfa_of(&alice.access).await["recovery_codes_left"], 8);
    // The same pending sign-in again: expired, back to the password.
    let replay = submit_code(&mut browser, &page, &codes[5]).await;
    let html = replay.text().await.unwrap();
    assert!(html.contains("This sign-in expired"), "{html}");
    assert!(html.contains("name=\"password\""));
}

#[tokio::test]
async fn a_pending_sign_in_expires_after_five_minutes() {
    let (w, authenticator, _) = world_with_totp().await;
    let mut browser = Browser::new(&w.app);
    let page = password_step(&w, &mut browser).await;
    w.app.clock.advance(Duration::minutes(5));
    let late = submit_code(&mut browser, &page, &authenticator.code(&w.app, 0)).await;
    assert_eq!(late.status(), StatusCode::OK);
    assert!(late.text().await.unwrap().contains("This sign-in expired"));
}

#[tokio::test]
async fn wrong_codes_on_the_page_lock_the_account_like_wrong_passwords() {
    let (w, authenticator, _) = world_with_totp().await;
    let mut browser = Browser::new(&w.app);
    let mut page = password_step(&w, &mut browser).await;
    for _ in 0..5 {
        let wrong = submit_code(&mut browser, &page, "000000").await;
        assert_eq!(wrong.status(), StatusCode::OK);
        page = wrong.text().await.unwrap();
    }
    let locked = submit_code(&mut browser, &page, &authenticator.code(&w.app, 0)).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header_text(&locked, "retry-after").parse::<u64>().unwrap() > 0);
    let locked = w
        .app
        .login_otp("alice", PASSWORD, &authenticator.code(&w.app, 0))
        .await;
    assert_eq!(
        locked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "one lockout for both"
    );
}

#[tokio::test]
async fn a_forged_or_foreign_pending_token_and_a_missing_csrf_get_nowhere() {
    let (w, authenticator, _) = world_with_totp().await;
    let mut browser = Browser::new(&w.app);
    let page = password_step(&w, &mut browser).await;
    // Without the CSRF cookie (another browser): the form again, nothing used up.
    let mut stranger = Browser::new(&w.app);
    let response = submit_code(&mut stranger, &page, &authenticator.code(&w.app, 0)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("This form expired"), "{html}");
    let back = submit_code(&mut browser, &page, &authenticator.code(&w.app, 0)).await;
    redirected_with_code(back);
    // A forged pending token: back to the password.
    let mut browser = Browser::new(&w.app);
    let page = password_step(&w, &mut browser).await;
    let pending = hidden_inputs(&page)
        .into_iter()
        .find(|(n, _)| n == "pending")
        .unwrap()
        .1;
    let forged = page.replace(&pending, "forged-token");
    w.app.next_step();
    let response = submit_code(&mut browser, &forged, &authenticator.code(&w.app, 0)).await;
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("This sign-in expired"));
}
