use super::*;
use crate::application::fakes::Harness;
use crate::application::AppError;

fn new_user(username: &str, password: &str, email: Option<&str>) -> NewUser {
    NewUser {
        username: username.into(),
        password: Password::candidate(password),
        email: email.map(String::from),
        full_name: None,
        roles: None,
    }
}

#[tokio::test]
async fn registration_stores_a_hashed_password_and_the_user_role() {
    let h = Harness::new();
    let ctx = RequestContext::default();
    let user = h
        .users
        .create_user(
            new_user("bob", "long enough", Some("bob@example.com")),
            &ctx,
        )
        .await
        .unwrap();
    assert_eq!(user.roles, Roles::new([Role::User]));
    assert!(user.is_active);
    assert_ne!(user.password_hash.as_str(), "long enough");
}

#[tokio::test]
async fn registration_reports_every_invalid_field_at_once() {
    let h = Harness::new();
    let mut input = new_user("x", "short", Some("not-an-email"));
    input.full_name = Some("n".repeat(101));
    input.roles = Some(vec!["root".into()]);
    let Err(AppError::Validation(errors)) =
        h.users.create_user(input, &RequestContext::default()).await
    else {
        panic!("expected a validation error");
    };
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["username", "password", "email", "full_name", "roles"]
    );
}

#[tokio::test]
async fn usernames_and_emails_are_unique_regardless_of_case() {
    let h = Harness::new();
    let ctx = RequestContext::default();
    h.users
        .create_user(
            new_user("carol", "long enough", Some("c@example.com")),
            &ctx,
        )
        .await
        .unwrap();
    let taken = h
        .users
        .create_user(new_user("CAROL", "long enough", None), &ctx)
        .await;
    assert!(matches!(taken, Err(AppError::UsernameTaken)));
    let taken = h
        .users
        .create_user(
            new_user("carol2", "long enough", Some("C@EXAMPLE.com")),
            &ctx,
        )
        .await;
    assert!(matches!(taken, Err(AppError::EmailTaken)));
}

#[tokio::test]
async fn changing_the_password_checks_the_current_one_and_revokes_other_sessions() {
    let h = Harness::new();
    let ctx = RequestContext::default();
    let user = h
        .users
        .create_user(new_user("dave", "first password", None), &ctx)
        .await
        .unwrap();
    let login = |pw: &'static str| {
        let auth = h.auth.clone();
        async move {
            auth.login(
                "dave",
                &Password::candidate(pw),
                None,
                &RequestContext::default(),
            )
            .await
        }
    };
    let mine = login("first password").await.unwrap();
    let other = login("first password").await.unwrap();
    let me = h.auth.authenticate(&mine.access_token.token).await.unwrap();

    let wrong = h
        .users
        .change_password(&me, &Password::candidate("not it"), "second password", &ctx)
        .await;
    assert!(matches!(wrong, Err(AppError::WrongPassword)));
    let weak = h
        .users
        .change_password(&me, &Password::candidate("first password"), "short", &ctx)
        .await;
    assert!(
        matches!(weak, Err(AppError::Validation(ref e)) if e[0].field == "new_password"),
        "{weak:?}"
    );

    h.users
        .change_password(
            &me,
            &Password::candidate("first password"),
            "second password",
            &ctx,
        )
        .await
        .unwrap();
    assert!(h.auth.authenticate(&mine.access_token.token).await.is_ok());
    assert!(h
        .auth
        .authenticate(&other.access_token.token)
        .await
        .is_err());
    assert_eq!(h.store.live_sessions(user.id), 1);
    assert!(login("first password").await.is_err());
    assert!(login("second password").await.is_ok());
}
