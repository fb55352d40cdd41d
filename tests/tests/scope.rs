//! Sites larger than one community (issue 16, item 7): a supervisor
//! scoped to one community sees and acts on nothing of another, through
//! every list, every read, every action and the live stream; a bad scope
//! is refused and changes nothing. Each scenario runs on SQLite and on
//! PostgreSQL, against the real server.

use dispatcher::dispatch::Lifecycle;
use std::time::Duration;

use dispatcher::domain::{DedupKey, ElderId, IncidentId, IncidentKind};
use dispatcher::rules::Effect;
use eldercare_tests::app::{Db, Options, TestApp, elder_body};
use eldercare_tests::sse::Stream;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "password-1";

/// Two communities of one district: east (grids east-1, east-2) and west
/// (west-1); in each an elder with a call button and a steward on duty.
async fn two_communities(db: Db) -> TestApp {
    let app = TestApp::spawn(Options {
        db,
        // No offers: the incidents stay as raised, the test reads them.
        env: vec![("ELDERCARE__DISPATCH__PRIORITIES".into(), "[]".into())],
        ..Options::default()
    })
    .await;
    let (s, b) = call(
        &app,
        &app.admin,
        Method::PUT,
        "/api/v1/areas",
        Some(json!([
            {"grid": "east-1", "community": "east", "district": "d1"},
            {"grid": "east-2", "community": "east", "district": "d1"},
            {"grid": "west-1", "community": "west", "district": "d1"},
        ])),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b.as_array().unwrap().len(), 3);
    for (elder, grid) in [("e-east", "east-1"), ("e-west", "west-1")] {
        let mut body = elder_body(elder, json!({}));
        body["grid"] = json!(grid);
        app.post("/api/v1/elders", body).await;
        app.register_device(
            json!({"id": format!("btn-{elder}"), "elder_id": elder, "kind": "call_button"}),
        )
        .await;
    }
    for (steward, grid) in [("s-east", "east-2"), ("s-west", "west-1")] {
        app.post(
            "/api/v1/stewards",
            json!({"id": steward, "name": format!("Steward {steward}"), "phone": "13900000000", "grid": grid}),
        )
        .await;
    }
    app
}

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (s, b) = app.call(Some(token), method, path, body).await;
    assert!(!s.is_server_error(), "{path}: {s} {b}");
    if s.is_client_error() {
        assert!(b["error"]["code"].is_string(), "{path}: {s} {b}");
    }
    (s, b)
}

async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    call(app, token, Method::GET, path, None).await
}

/// A supervisor login with `scope` (None: the whole site), logged in.
async fn supervisor(app: &TestApp, name: &str, scope: Option<&str>) -> String {
    app.post(
        "/api/v1/users",
        json!({"username": name, "password": PASSWORD, "role": "supervisor", "scope": scope}),
    )
    .await;
    app.login(name, PASSWORD).await
}

async fn raise(app: &TestApp, elder: &str) -> IncidentId {
    raise_kind(app, elder, IncidentKind::Call).await
}

async fn raise_kind(app: &TestApp, elder: &str, kind: IncidentKind) -> IncidentId {
    let elder_id = ElderId::parse(elder).unwrap();
    let applied = app
        .state
        .store
        .apply(
            &[Effect::Raise {
                key: DedupKey::for_elder(&elder_id, kind).to_string(),
                elder_id: Some(elder_id),
                device_id: None,
                kind,
                priority: app.state.rules.priority(kind, None),
                summary: format!("{kind} for the test"),
            }],
            &dispatcher::domain::Actor::System,
            app.clock.now(),
            &app.state.rules,
        )
        .await
        .expect("raise");
    app.state.hub.nudge();
    applied[0].incident.clone().expect("an incident").id
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|x| x[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

// --- a bad scope ---

async fn a_bad_scope_is_refused_and_changes_nothing(db: Db) {
    let app = two_communities(db).await;
    let users_before = app.get("/api/v1/users").await;
    for (body, what) in [
        (
            json!({"username": "s1", "password": PASSWORD, "role": "supervisor", "scope": "community:nowhere"}),
            "names no area",
        ),
        (
            json!({"username": "s1", "password": PASSWORD, "role": "supervisor", "scope": "city:east"}),
            "not community or district",
        ),
        (
            json!({"username": "s1", "password": PASSWORD, "role": "supervisor", "scope": "community:"}),
            "no name",
        ),
        (
            json!({"username": "s1", "password": PASSWORD, "role": "steward", "steward_id": "s-east", "scope": "community:east"}),
            "a steward",
        ),
        (
            json!({"username": "s1", "password": PASSWORD, "role": "admin", "scope": "community:east"}),
            "an admin",
        ),
    ] {
        let (s, b) = call(&app, &app.admin, Method::POST, "/api/v1/users", Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {b}");
        assert!(
            b["error"]["message"].as_str().unwrap().starts_with("scope"),
            "{what}: {b}"
        );
    }
    assert_eq!(app.get("/api/v1/users").await, users_before);

    // A steward's login cannot be given one by a change either; the
    // login and its session stay as they were.
    app.post(
        "/api/v1/users",
        json!({"username": "stew", "password": PASSWORD, "role": "steward", "steward_id": "s-east"}),
    )
    .await;
    let token = app.login("stew", PASSWORD).await;
    let (s, b) = call(
        &app,
        &app.admin,
        Method::PATCH,
        "/api/v1/users/stew",
        Some(json!({"scope": "community:east"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, me) = get(&app, &token, "/api/v1/auth/me").await;
    assert_eq!(s, StatusCode::OK, "the session lives on: {me}");
    assert_eq!(me["scope"], Value::Null);

    // A supervisor's scope changes to an existing community only.
    let sup = supervisor(&app, "sup", Some("community:east")).await;
    let (s, b) = call(
        &app,
        &app.admin,
        Method::PATCH,
        "/api/v1/users/sup",
        Some(json!({"scope": "district:nowhere"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (_, me) = get(&app, &sup, "/api/v1/auth/me").await;
    assert_eq!(me["scope"], "community:east");
    // A good change ends the session (it saw less before).
    let (s, b) = call(
        &app,
        &app.admin,
        Method::PATCH,
        "/api/v1/users/sup",
        Some(json!({"scope": "district:d1"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["scope"], "district:d1");
    let (s, _) = app
        .call(Some(&sup), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Made a steward, the scope goes with the role.
    let (s, b) = call(
        &app,
        &app.admin,
        Method::PATCH,
        "/api/v1/users/sup",
        Some(json!({"role": "steward", "steward_id": "s-west"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["scope"], Value::Null);

    // Areas: only admins write them; bad ones are named.
    let sup2 = supervisor(&app, "sup2", None).await;
    let (s, _) = call(
        &app,
        &sup2,
        Method::PUT,
        "/api/v1/areas",
        Some(json!([{"grid": "x", "community": "y"}])),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for bad in [
        json!([{"grid": " ", "community": "y"}]),
        json!([{"grid": "x", "community": "a:b"}]),
        json!([{"grid": "x"}]),
        json!([{"grid": "x", "community": "y", "city": "z"}]),
    ] {
        let (s, b) = call(&app, &app.admin, Method::PUT, "/api/v1/areas", Some(bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    }
    assert_eq!(app.get("/api/v1/areas").await.as_array().unwrap().len(), 3);
    let (s, _) = call(
        &app,
        &app.admin,
        Method::DELETE,
        "/api/v1/areas/nowhere",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_bad_scope_is_refused_and_changes_nothing_sqlite() {
    a_bad_scope_is_refused_and_changes_nothing(Db::Sqlite).await;
}

#[tokio::test]
async fn a_bad_scope_is_refused_and_changes_nothing_postgres() {
    a_bad_scope_is_refused_and_changes_nothing(Db::Postgres).await;
}

// --- what a scoped supervisor sees and does ---

async fn a_community_supervisor_sees_and_acts_on_their_community_only(db: Db) {
    let app = two_communities(db).await;
    let east_incident = raise(&app, "e-east").await;
    let west_incident = raise(&app, "e-west").await;
    let east = supervisor(&app, "sup-east", Some("community:east")).await;
    let district = supervisor(&app, "sup-d1", Some("district:d1")).await;

    let (s, login) = call(
        &app,
        &app.admin,
        Method::POST,
        "/api/v1/auth/login",
        Some(json!({"username": "sup-east", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(login["scope"], "community:east");

    // Lists: theirs only.
    let (_, list) = get(&app, &east, "/api/v1/incidents").await;
    assert_eq!(ids(&list, "id"), [east_incident.to_string()]);
    let (_, list) = get(&app, &east, "/api/v1/elders").await;
    assert_eq!(ids(&list, "id"), ["e-east"]);
    let (_, list) = get(&app, &east, "/api/v1/stewards").await;
    assert_eq!(ids(&list, "id"), ["s-east"]);
    let (_, list) = get(&app, &east, "/api/v1/devices").await;
    assert_eq!(ids(&list, "id"), ["btn-e-east"]);
    let (_, list) = get(&app, &east, "/api/v1/areas").await;
    assert_eq!(ids(&list, "grid"), ["east-1", "east-2"]);
    let (_, list) = get(&app, &east, "/api/v1/reachability").await;
    assert_eq!(ids(&list, "steward_id").len(), 1);
    let (_, list) = get(&app, &east, "/api/v1/unknown-devices").await;
    assert_eq!(list, json!([]));
    // Device duty and the monthly report: theirs only too.
    let (s, roster) = get(&app, &east, "/api/v1/device-tests").await;
    assert_eq!(s, StatusCode::OK, "{roster}");
    assert_eq!(ids(&roster["devices"], "device_id"), ["btn-e-east"]);
    let (s, _) = get(&app, &east, "/api/v1/devices/btn-e-west/tests").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, month) = get(&app, &east, "/api/v1/reports/monthly").await;
    assert_eq!(s, StatusCode::OK, "{month}");
    let grids = ids(&month["grids"], "grid");
    assert!(
        !grids.is_empty() && grids.iter().all(|g| g.starts_with("east")),
        "{month}"
    );
    assert!(
        month["communities"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["community"] == "east"),
        "{month}"
    );
    let (_, admin_month) = get(&app, &app.admin, "/api/v1/reports/monthly").await;
    assert!(ids(&admin_month["grids"], "grid").contains(&"west-1".to_owned()));
    let (s, report) = get(
        &app,
        &east,
        "/api/v1/reports/response-times?group_by=priority",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    let counted: i64 = report["groups"]
        .as_array()
        .map(|g| g.iter().map(|r| r["count"].as_i64().unwrap_or(0)).sum())
        .unwrap_or(0);
    assert_eq!(counted, 1, "{report}");
    // The district's supervisor sees both communities.
    let (_, list) = get(&app, &district, "/api/v1/incidents").await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let (_, list) = get(&app, &district, "/api/v1/elders").await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Another community's things by id: not found, as if they did not exist.
    for path in [
        format!("/api/v1/incidents/{west_incident}"),
        "/api/v1/elders/e-west".into(),
        "/api/v1/elders/e-west/notebook".into(),
        "/api/v1/stewards/s-west".into(),
        "/api/v1/devices/btn-e-west".into(),
        "/api/v1/rounds/today?steward_id=s-west".into(),
    ] {
        let (s, b) = get(&app, &east, &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
    }
    // … and so are the actions on them, which change nothing.
    for (path, body) in [
        (
            format!("/api/v1/incidents/{west_incident}/cancel"),
            json!({"reason": "not mine"}),
        ),
        (
            format!("/api/v1/incidents/{west_incident}/resolve"),
            json!({"outcome": "false_alarm", "notes": ""}),
        ),
        (
            format!("/api/v1/incidents/{west_incident}/assign"),
            json!({"steward_id": "s-east"}),
        ),
        (
            format!("/api/v1/incidents/{east_incident}/assign"),
            json!({"steward_id": "s-west"}),
        ),
        ("/api/v1/devices/btn-e-west/secret".into(), json!(null)),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (s, b) = call(&app, &east, Method::POST, &path, body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
    }
    for (path, body) in [
        ("/api/v1/elders/e-west", json!({"notes": "x"})),
        ("/api/v1/stewards/s-west", json!({"phone": "1"})),
    ] {
        let (s, b) = call(&app, &east, Method::PATCH, path, Some(body)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
    }
    for path in ["/api/v1/stewards/s-west/duty"] {
        let (s, b) = call(
            &app,
            &east,
            Method::PUT,
            path,
            Some(json!({"on_duty": true})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
    }
    let (s, _) = call(&app, &east, Method::DELETE, "/api/v1/elders/e-west", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let west = app.incident(west_incident.as_str()).await;
    assert_eq!(west["status"], "dispatching", "untouched: {west}");
    assert_eq!(west["steward_id"], Value::Null);
    assert_eq!(app.get("/api/v1/elders/e-west").await["notes"], "");
    assert_eq!(app.get("/api/v1/stewards/s-west").await["on_duty"], false);

    // Nothing is put into another community's grids either.
    let mut body = elder_body("e-new", json!({}));
    body["grid"] = json!("west-1");
    let (s, b) = call(&app, &east, Method::POST, "/api/v1/elders", Some(body)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = call(
        &app,
        &east,
        Method::PATCH,
        "/api/v1/elders/e-east",
        Some(json!({"grid": "west-1"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = call(
        &app,
        &east,
        Method::POST,
        "/api/v1/devices",
        Some(json!({"id": "btn-x", "elder_id": "e-west", "kind": "call_button"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(app.get("/api/v1/elders/e-east").await["grid"], "east-1");
    let (s, _) = app
        .call(Some(&app.admin), Method::GET, "/api/v1/elders/e-new", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Their own: as any supervisor.
    let (s, b) = get(&app, &east, &format!("/api/v1/incidents/{east_incident}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = call(
        &app,
        &east,
        Method::POST,
        &format!("/api/v1/incidents/{east_incident}/cancel"),
        Some(json!({"reason": "checked by phone"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["status"], "cancelled");

    // Their areas removed, the community covers no grid: they see nothing
    // (not everything).
    for grid in ["east-1", "east-2"] {
        let (s, _) = call(
            &app,
            &app.admin,
            Method::DELETE,
            &format!("/api/v1/areas/{grid}"),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    for path in [
        "/api/v1/incidents",
        "/api/v1/elders",
        "/api/v1/stewards",
        "/api/v1/devices",
        "/api/v1/events",
        "/api/v1/follow-ups",
        "/api/v1/areas",
    ] {
        let (s, b) = get(&app, &east, path).await;
        assert_eq!(s, StatusCode::OK, "{path}: {b}");
        assert_eq!(b, json!([]), "{path}");
    }
    let (_, list) = get(&app, &district, "/api/v1/incidents").await;
    assert_eq!(
        ids(&list, "id"),
        [west_incident.to_string()],
        "the west is still d1's; the east's grids are no one's"
    );
}

#[tokio::test]
async fn a_community_supervisor_sees_and_acts_on_their_community_only_sqlite() {
    a_community_supervisor_sees_and_acts_on_their_community_only(Db::Sqlite).await;
}

#[tokio::test]
async fn a_community_supervisor_sees_and_acts_on_their_community_only_postgres() {
    a_community_supervisor_sees_and_acts_on_their_community_only(Db::Postgres).await;
}

// --- the stream ---

/// Whether a frame names anything of the west community.
fn mentions_west(f: &Value) -> bool {
    let text = f.to_string();
    text.contains("e-west") || text.contains("s-west") || text.contains("west-1")
}

async fn a_community_supervisors_stream_carries_nothing_of_another(db: Db) {
    let app = two_communities(db).await;
    let early_west = raise(&app, "e-west").await;
    let early_east = raise(&app, "e-east").await;
    let east = supervisor(&app, "sup-east", Some("community:east")).await;

    // The snapshot: their open incidents and stewards only.
    let mut board = Stream::open(&app, &app.admin, None).await;
    let mut s = Stream::open(&app, &east, None).await;
    let snap = s.next().await;
    assert_eq!(snap.event, "snapshot");
    assert_eq!(ids(&snap.data["incidents"], "id"), [early_east.to_string()]);
    assert_eq!(ids(&snap.data["stewards"], "id"), ["s-east"]);
    assert!(!mentions_west(&snap.data), "{}", snap.data);
    let all = board.next().await;
    assert_eq!(all.data["incidents"].as_array().unwrap().len(), 2);

    // Live: the west's changes reach the whole-site board and not them.
    let west = raise_kind(&app, "e-west", IncidentKind::Fall).await;
    assert_ne!(west, early_west);
    for id in ["s-west", "s-east"] {
        let (st, b) = call(
            &app,
            &app.admin,
            Method::PUT,
            &format!("/api/v1/stewards/{id}/duty"),
            Some(json!({"on_duty": true})),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    let east_incident = raise_kind(&app, "e-east", IncidentKind::Fall).await;
    // The board hears all four, in order; the last is the east incident.
    let mut heard = Vec::new();
    while !heard.iter().any(|f: &eldercare_tests::sse::Frame| {
        f.event == "incident" && f.data["id"] == east_incident.as_str()
    }) {
        heard.push(board.next().await);
    }
    assert!(heard.iter().any(|f| f.data["id"] == west.as_str()));
    assert!(heard.iter().any(|f| f.data["id"] == "s-west"));
    // The scoped stream: the east steward and incident, nothing else.
    let mut got = Vec::new();
    while !got.iter().any(|f: &eldercare_tests::sse::Frame| {
        f.event == "incident" && f.data["id"] == east_incident.as_str()
    }) {
        let f = s.next().await;
        assert!(!mentions_west(&f.data), "{} {}", f.event, f.data);
        got.push(f);
    }
    assert!(
        got.iter()
            .any(|f| f.event == "steward" && f.data["id"] == "s-east")
    );
    // A west change after it: nothing comes.
    let (st, _) = call(
        &app,
        &app.admin,
        Method::POST,
        &format!("/api/v1/incidents/{west}/cancel"),
        Some(json!({"reason": "test"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    loop {
        let f = board.until("incident").await;
        if f.data["id"] == west.as_str() && f.data["status"] == "cancelled" {
            break;
        }
    }
    assert!(
        s.next_within(Duration::from_millis(700)).await.is_none(),
        "a west change reached the east supervisor"
    );

    // A reconnect replays what it missed: still nothing of the west.
    drop(s);
    let mut s = Stream::open(&app, &east, Some(0)).await;
    let snap = s.next().await;
    assert_eq!(snap.event, "snapshot");
    assert!(!mentions_west(&snap.data), "{}", snap.data);
    let mut replayed = 0;
    while let Some(f) = s.next_within(Duration::from_millis(700)).await {
        assert!(!mentions_west(&f.data), "replayed {} {}", f.event, f.data);
        replayed += 1;
    }
    assert!(replayed >= 2, "the east's events are replayed: {replayed}");
}

#[tokio::test]
async fn a_community_supervisors_stream_carries_nothing_of_another_sqlite() {
    a_community_supervisors_stream_carries_nothing_of_another(Db::Sqlite).await;
}

#[tokio::test]
async fn a_community_supervisors_stream_carries_nothing_of_another_postgres() {
    a_community_supervisors_stream_carries_nothing_of_another(Db::Postgres).await;
}
