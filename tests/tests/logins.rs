//! Logins that resist guessing without locking the owner out, tokens read
//! one way everywhere, and sessions that end everywhere at once (open
//! streams included).

use std::time::Duration;

use chrono::Utc;
use dispatcher::api::auth::MAX_FAILURES;
use dispatcher::domain::{Role, User};
use dispatcher::store::logins::Throttle;
use eldercare_tests::app::{ADMIN_PASSWORD, Options, TestApp};
use eldercare_tests::on_both_backends;
use eldercare_tests::store_harness::Harness;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn app() -> TestApp {
    TestApp::spawn(Options::default()).await
}

async fn login_as(app: &TestApp, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{}/api/v1/auth/login", app.base))
        .json(&body)
        .send()
        .await
        .expect("login request")
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_guesses_get_at_most_the_limits_tries() {
    let app = app().await;
    let guesses: Vec<_> = (0..64)
        .map(|i| {
            let http = app.http.clone();
            let url = format!("{}/api/v1/auth/login", app.base);
            tokio::spawn(async move {
                http.post(url)
                    .json(&json!({"username": "admin", "password": format!("guess-{i}")}))
                    .send()
                    .await
                    .expect("login request")
                    .status()
            })
        })
        .collect();
    let mut tried = 0;
    for g in guesses {
        match g.await.unwrap() {
            StatusCode::UNAUTHORIZED => tried += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        tried <= MAX_FAILURES,
        "{tried} guesses were tried; the limit is {MAX_FAILURES}"
    );
    // Locked now, even with the right password, from an unknown device.
    let r = login_as(
        &app,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&r) > 60);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_on_a_known_device_gets_a_backoff_not_the_lock() {
    let app = app().await;
    // The owner logged in from this device before.
    let r = login_as(
        &app,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("eldercare_device=") && cookie.contains("HttpOnly"));
    let device: Value = r.json().await.unwrap();
    let device = device["device_token"].as_str().unwrap().to_owned();

    // Someone at the same address guesses until the username is locked.
    for i in 0..MAX_FAILURES + 3 {
        let r = login_as(
            &app,
            json!({"username": "admin", "password": format!("guess-{i}")}),
        )
        .await;
        assert!(
            matches!(
                r.status(),
                StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
            ),
            "{}",
            r.status()
        );
    }
    let r = login_as(
        &app,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the username is locked"
    );

    // The owner mistypes on their known device, then must wait a little.
    let r = login_as(
        &app,
        json!({"username": "admin", "password": "typo-password", "device_token": device}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = login_as(
        &app,
        json!({"username": "admin", "password": ADMIN_PASSWORD, "device_token": device}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "a backoff");
    let wait = retry_after(&r);
    assert!((1..=2).contains(&wait), "a short wait: {wait} s");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    // The device token from the cookie works as well as from the body.
    let r = app
        .http
        .post(format!("{}/api/v1/auth/login", app.base))
        .header("cookie", format!("other=1; eldercare_device={device}"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the owner is in");
    let again: Value = r.json().await.unwrap();
    assert_eq!(
        again["device_token"], device,
        "a known device keeps its token"
    );
    // A device token this server never gave is no key.
    let r = login_as(
        &app,
        json!({"username": "admin", "password": ADMIN_PASSWORD, "device_token": "0".repeat(64)}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_usernames_from_one_address_are_locked_by_address() {
    let app = TestApp::spawn(Options {
        env: vec![("ELDERCARE__AUTH__FAILURES_PER_ADDRESS".into(), "3".into())],
        ..Default::default()
    })
    .await;
    for i in 0..3 {
        let r = login_as(
            &app,
            json!({"username": format!("user-{i}"), "password": "wrong-pass"}),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = login_as(
        &app,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the address is locked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upper_case_token_is_the_same_token_everywhere() {
    let app = app().await;
    let token = app.login("admin", ADMIN_PASSWORD).await;
    let upper = token.to_ascii_uppercase();
    let (s, _) = app
        .call(Some(&upper), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .call(Some(&upper), Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .call(Some(&token), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "logging out with it ended the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_password_or_role() {
    let app = app().await;
    app.post(
        "/api/v1/users",
        json!({"username": "sup1", "password": "old-password", "role": "supervisor"}),
    )
    .await;
    let old = app.login("sup1", "old-password").await;
    let patch = |body: Value| {
        let app = &app;
        async move {
            app.call(
                Some(&app.admin),
                Method::PATCH,
                "/api/v1/users/sup1",
                Some(body),
            )
            .await
        }
    };
    assert_eq!(patch(json!({})).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        patch(json!({"password": "short"})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        patch(json!({"role": "steward"})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        patch(json!({"role": "steward", "steward_id": "s-nobody"}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (s, user) = patch(json!({"password": "new-password"})).await;
    assert_eq!(s, StatusCode::OK, "{user}");
    assert!(user.get("password_hash").is_none());
    let (s, _) = app
        .call(Some(&old), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the old session ended");
    let r = login_as(
        &app,
        json!({"username": "sup1", "password": "old-password"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let new = app.login("sup1", "new-password").await;
    let (s, user) = patch(json!({"role": "admin"})).await;
    assert_eq!((s, user["role"].as_str()), (StatusCode::OK, Some("admin")));
    let (s, _) = app
        .call(Some(&new), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, b) = app
        .call(
            Some(&app.admin),
            Method::PATCH,
            "/api/v1/users/admin",
            Some(json!({"role": "supervisor"})),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("cannot_change_own_role"))
    );
    let (s, _) = app
        .call(
            Some(&app.admin),
            Method::PATCH,
            "/api/v1/users/nobody",
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// --- streams end with their session ---

/// A steward's open stream, past its snapshot.
async fn open_stream(app: &TestApp, token: &str) -> reqwest::Response {
    let mut resp = app
        .http
        .get(format!("{}/api/v1/stream", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("stream request");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut seen = String::new();
    while !seen.contains("event: snapshot") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("the snapshot")
            .expect("stream read")
            .expect("the stream is open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    resp
}

/// Asserts the stream ends (no event in between) within a generous
/// second.
async fn assert_closes(mut resp: reqwest::Response, after: &str) {
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    assert!(!text.contains("event:"), "an event after {after}: {text}");
                }
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream is still open a second after {after}"
    );
}

async fn steward_app() -> (TestApp, String) {
    let app = app().await;
    let token = app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    (app, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_closes_at_logout() {
    let (app, token) = steward_app().await;
    let stream = open_stream(&app, &token).await;
    let (s, _) = app
        .call(Some(&token), Method::POST, "/api/v1/auth/logout", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_closes(stream, "logout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_closes_when_its_user_is_deleted() {
    let (app, token) = steward_app().await;
    let stream = open_stream(&app, &token).await;
    let (s, _) = app
        .call(Some(&app.admin), Method::DELETE, "/api/v1/users/s-1", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_closes(stream, "the user's deletion").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_closes_when_its_password_changes() {
    let (app, token) = steward_app().await;
    let stream = open_stream(&app, &token).await;
    let (s, _) = app
        .call(
            Some(&app.admin),
            Method::PATCH,
            "/api/v1/users/s-1",
            Some(json!({"password": "a-new-password"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_closes(stream, "a password change").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_closes_when_its_role_changes() {
    let (app, token) = steward_app().await;
    let stream = open_stream(&app, &token).await;
    let (s, _) = app
        .call(
            Some(&app.admin),
            Method::PATCH,
            "/api/v1/users/s-1",
            Some(json!({"role": "supervisor"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_closes(stream, "a role change").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ended_by_another_instance_closes_at_its_next_check() {
    // Another instance sharing the database deleted the session: this
    // one hears nothing, and finds out when the stream checks.
    let (app, token) = steward_app().await;
    let mut stream = open_stream(&app, &token).await;
    let hash = dispatcher::api::auth::session_hash(&token).unwrap();
    app.state.store.delete_session(&hash).await.unwrap();
    let ended = tokio::time::timeout(
        dispatcher::api::session_ends::RECHECK + Duration::from_secs(5),
        async { while let Ok(Some(_)) = stream.chunk().await {} },
    )
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");
}

// --- the store's half, on both databases ---

on_both_backends!(
    expired_sessions_and_stale_counts_are_deleted_in_batches,
    a_count_changed_by_someone_else_is_not_overwritten,
);

async fn expired_sessions_and_stale_counts_are_deleted_in_batches(h: Harness) {
    let s = h.store.as_ref();
    s.insert_user(&User {
        username: "u1".into(),
        role: Role::Supervisor,
        steward_id: None,
        scope: Default::default(),
        password_hash: "x".into(),
    })
    .await
    .unwrap();
    let now = Utc::now();
    for i in 0..3 {
        s.insert_session(&format!("old-{i}"), "u1", now - chrono::Duration::hours(1))
            .await
            .unwrap();
    }
    s.insert_session("live", "u1", now + chrono::Duration::hours(1))
        .await
        .unwrap();
    s.insert_known_device("dev-old", "u1", now - chrono::Duration::hours(1))
        .await
        .unwrap();
    let stale = Throttle {
        failures: 3,
        last_ms: 1_000,
        blocked_until_ms: 0,
    };
    assert!(s.swap_throttle("user:u1", None, stale).await.unwrap());
    let fresh = Throttle {
        last_ms: now.timestamp_millis(),
        ..stale
    };
    assert!(s.swap_throttle("user:u2", None, fresh).await.unwrap());

    // One row of each kind per batch.
    let stale_before = now.timestamp_millis() - 60_000;
    assert_eq!(
        s.delete_expired_logins(now, stale_before, 1).await.unwrap(),
        3
    );
    assert_eq!(
        s.delete_expired_logins(now, stale_before, 1).await.unwrap(),
        1
    );
    assert_eq!(
        s.delete_expired_logins(now, stale_before, 1).await.unwrap(),
        1
    );
    assert_eq!(
        s.delete_expired_logins(now, stale_before, 1).await.unwrap(),
        0
    );
    assert_eq!(h.count("SELECT COUNT(*) FROM sessions").await, 1);
    assert!(s.session_user("live", now).await.unwrap().is_some());
    assert_eq!(h.count("SELECT COUNT(*) FROM known_devices").await, 0);
    assert!(s.throttle("user:u2").await.unwrap().is_some());
    assert!(s.throttle("user:u1").await.unwrap().is_none());
}

async fn a_count_changed_by_someone_else_is_not_overwritten(h: Harness) {
    let s = h.store.as_ref();
    let one = Throttle {
        failures: 1,
        last_ms: 10,
        blocked_until_ms: 0,
    };
    let two = Throttle { failures: 2, ..one };
    assert!(s.swap_throttle("k", None, one).await.unwrap());
    assert!(
        !s.swap_throttle("k", None, two).await.unwrap(),
        "a row exists"
    );
    assert!(s.swap_throttle("k", Some(one), two).await.unwrap());
    assert!(
        !s.swap_throttle("k", Some(one), two).await.unwrap(),
        "it moved on"
    );
    assert_eq!(s.throttle("k").await.unwrap(), Some(two));
    s.clear_throttle("k").await.unwrap();
    assert_eq!(s.throttle("k").await.unwrap(), None);
}
