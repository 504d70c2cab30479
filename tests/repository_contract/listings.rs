//! The listings: users page by page, oldest first; audit events newest first, by every filter
//! alone and combined, page by page.

use super::*;

/// An event of `kind` about `user_id` at `at`.
fn event(kind: AuditEventKind, user_id: Option<UserId>, at: DateTime<Utc>) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7(),
        at,
        kind,
        user_id,
        username: None,
        ip: None,
        user_agent: None,
        success: kind != AuditEventKind::LoginFailed,
        detail: None,
    }
}

/// The ids of `events` a filter selects, as the port defines it: newest first (ties by id,
/// greatest first), at most `limit`.
fn expected(events: &[AuditEvent], filter: &AuditFilter) -> Vec<uuid::Uuid> {
    let mut selected: Vec<&AuditEvent> = events
        .iter()
        .filter(|e| filter.user_id.is_none_or(|id| e.user_id == Some(id)))
        .filter(|e| filter.kind.is_none_or(|kind| e.kind == kind))
        .filter(|e| filter.before.is_none_or(|before| e.at < before))
        .collect();
    selected.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
    selected
        .iter()
        .take(filter.limit as usize)
        .map(|e| e.id)
        .collect()
}

pub async fn audit_filters_select_alone_and_combined(b: Backend) {
    let (alice, bob) = (UserId::new(), UserId::new());
    let base = now() - Duration::hours(1);
    let kinds = [AuditEventKind::LoginFailed, AuditEventKind::LoginSucceeded];
    let mut events = Vec::new();
    for i in 0..12 {
        let user_id = [Some(alice), Some(bob), None][i % 3];
        // Every third pair shares its time, so the tie-break by id shows.
        let at = base + Duration::seconds((i - i % 2) as i64 * 10);
        events.push(event(kinds[i % 2], user_id, at));
    }
    for e in &events {
        b.repos.audit.record(e).await.unwrap();
    }
    let middle = base + Duration::seconds(60);
    for user_id in [None, Some(alice), Some(bob), Some(UserId::new())] {
        for kind in [
            None,
            Some(kinds[0]),
            Some(kinds[1]),
            Some(AuditEventKind::Logout),
        ] {
            for before in [None, Some(middle), Some(base)] {
                for limit in [1, 3, 100] {
                    let filter = AuditFilter {
                        user_id,
                        kind,
                        before,
                        limit,
                    };
                    let listed: Vec<_> = (b.repos.audit.list(&filter).await.unwrap())
                        .into_iter()
                        .map(|e| e.id)
                        .collect();
                    assert_eq!(listed, expected(&events, &filter), "{filter:?}");
                }
            }
        }
    }
}

pub async fn the_audit_trail_pages_backwards_by_time(b: Backend) {
    let base = now() - Duration::hours(1);
    let mut events = Vec::new();
    for i in 0..10 {
        let e = event(AuditEventKind::Logout, None, base + Duration::seconds(i));
        b.repos.audit.record(&e).await.unwrap();
        events.push(e);
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let filter = AuditFilter {
            before,
            limit: 4,
            ..AuditFilter::default()
        };
        let page = b.repos.audit.list(&filter).await.unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        before = Some(last.at);
        seen.extend(page.iter().map(|e| e.id));
    }
    let newest_first: Vec<_> = events.iter().rev().map(|e| e.id).collect();
    assert_eq!(seen, newest_first, "every event once, newest first");
}

pub async fn users_are_listed_oldest_first_page_by_page(b: Backend) {
    let at = now() - Duration::days(1);
    // Inserted out of order; two share their creation time (then the id decides).
    let minutes = [3, 0, 4, 1, 1];
    let mut users = Vec::new();
    for (i, minute) in minutes.into_iter().enumerate() {
        let mut u = user(&format!("user{i}"), None);
        u.created_at = at + Duration::minutes(minute);
        u.updated_at = u.created_at;
        b.repos.users.insert(&u).await.unwrap();
        users.push(u);
    }
    users.sort_by_key(|u| (u.created_at, u.id.as_uuid()));
    let mut listed = Vec::new();
    for offset in [0, 2, 4] {
        let (page, total) = b.repos.users.list(2, offset).await.unwrap();
        assert_eq!(total, 5);
        assert_eq!(page.len(), if offset == 4 { 1 } else { 2 });
        listed.extend(page);
    }
    assert_eq!(listed, users);
    let (beyond, total) = b.repos.users.list(10, 5).await.unwrap();
    assert!(beyond.is_empty());
    assert_eq!(total, 5);
    let (all, _) = b.repos.users.list(100, 0).await.unwrap();
    assert_eq!(all, users);
}
