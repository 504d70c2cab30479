use super::*;
use crate::application::harness::Harness;
use crate::application::{AppError, Principal, UserPatch};
use crate::domain::user::User;

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

async fn admin_and_user(h: &Harness) -> (Principal, User) {
    let ctx = RequestContext::default();
    let mut input = new_user("root", "root password", None);
    input.roles = Some(vec!["admin".into(), "user".into()]);
    h.users.create_user(input, &ctx).await.unwrap();
    let user = h
        .users
        .create_user(new_user("erin", "erin password", None), &ctx)
        .await
        .unwrap();
    let pair = h
        .auth
        .login("root", &Password::candidate("root password"), None, &ctx)
        .await
        .unwrap();
    let admin = h.auth.authenticate(&pair.access_token.token).await.unwrap();
    (admin, user)
}

#[tokio::test]
async fn disabling_a_user_revokes_every_session_at_once() {
    let h = Harness::new();
    let ctx = RequestContext::default();
    let (admin, erin) = admin_and_user(&h).await;
    let pair = h
        .auth
        .login("erin", &Password::candidate("erin password"), None, &ctx)
        .await
        .unwrap();
    let patch = UserPatch {
        is_active: Some(false),
        ..UserPatch::default()
    };
    let updated = h
        .users
        .update_user(&admin, erin.id, patch, &ctx)
        .await
        .unwrap();
    assert!(!updated.is_active);
    assert!(h.auth.authenticate(&pair.access_token.token).await.is_err());
    assert_eq!(h.store.live_sessions(erin.id), 0);
}

#[tokio::test]
async fn admin_operations_refuse_non_admins_and_admins_cannot_lock_themselves_out() {
    let h = Harness::new();
    let ctx = RequestContext::default();
    let (admin, erin) = admin_and_user(&h).await;
    let pair = h
        .auth
        .login("erin", &Password::candidate("erin password"), None, &ctx)
        .await
        .unwrap();
    let plain = h.auth.authenticate(&pair.access_token.token).await.unwrap();
    assert!(matches!(
        h.users.list_users(&plain, 20, 0).await,
        Err(AppError::Forbidden)
    ));
    assert!(matches!(
        h.users.get_user(&plain, erin.id).await,
        Err(AppError::Forbidden)
    ));

    let disable_self = UserPatch {
        is_active: Some(false),
        roles: Some(vec!["user".into()]),
        ..UserPatch::default()
    };
    let Err(AppError::Validation(errors)) = h
        .users
        .update_user(&admin, admin.user.id, disable_self, &ctx)
        .await
    else {
        panic!("an admin must not lock themself out");
    };
    assert_eq!(errors.len(), 2);
    let page = h.users.list_users(&admin, 1, 1).await.unwrap();
    assert_eq!((page.total, page.items.len()), (2, 1));
    assert!(matches!(
        h.users.list_users(&admin, 101, 0).await,
        Err(AppError::Validation(_))
    ));
}
