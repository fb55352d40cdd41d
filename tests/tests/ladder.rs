//! The SMS and voice ladder against a gateway of the tests' own: the
//! request each step makes from the settings' template, when it is made
//! (the store's clock, moved by hand), a reply that accepts, and replies
//! that are refused or come too late.

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use eldercare_tests::app::{Options, TestApp};
use eldercare_tests::recorder::{Got, Recorder};
use eldercare_tests::wait;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

const INBOUND_SECRET: &str = "sms-inbound-secret";
const PUBLIC_URL: &str = "https://eldercare.example.org";

fn t0() -> DateTime<Utc> {
    "2026-12-04T13:00:00Z".parse().unwrap()
}

/// A dispatcher whose ladder texts through `/sms` and calls through
/// `/call` of the gateway, configured the way a site would.
async fn app(gateway: &str) -> TestApp {
    let env = [
        ("ELDERCARE__HTTP__PUBLIC_URL", PUBLIC_URL.to_owned()),
        (
            "ELDERCARE__NOTIFY__SMS__URL",
            format!("{gateway}/sms?to={{phone}}"),
        ),
        (
            "ELDERCARE__NOTIFY__SMS__BODY",
            r#"{"to": "{phone}", "text": "{text}", "left": {seconds_left}}"#.to_owned(),
        ),
        (
            "ELDERCARE__NOTIFY__SMS__HEADERS__AUTHORIZATION",
            "Bearer sms-key".to_owned(),
        ),
        (
            "ELDERCARE__NOTIFY__SMS__INBOUND__SECRET",
            INBOUND_SECRET.to_owned(),
        ),
        ("ELDERCARE__NOTIFY__VOICE__URL", format!("{gateway}/call")),
        (
            "ELDERCARE__NOTIFY__VOICE__CONTENT_TYPE",
            "application/x-www-form-urlencoded".to_owned(),
        ),
        (
            "ELDERCARE__NOTIFY__VOICE__BODY",
            "to={phone}&say={text}&callback={reply_url}".to_owned(),
        ),
        (
            "ELDERCARE__NOTIFY__VOICE__INBOUND__SECRET",
            INBOUND_SECRET.to_owned(),
        ),
        (
            "ELDERCARE__NOTIFY__VOICE__INBOUND__TEXT_FIELD",
            "digits".to_owned(),
        ),
    ];
    TestApp::spawn(Options {
        clock: Some(t0()),
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ..Options::default()
    })
    .await
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(INBOUND_SECRET.as_bytes()).unwrap();
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// A reply as the gateway posts it, signed (or with `signature`).
async fn reply(
    app: &TestApp,
    channel: &str,
    body: Value,
    signature: Option<&str>,
) -> (StatusCode, Value) {
    let bytes = serde_json::to_vec(&body).unwrap();
    let sig = signature.map_or_else(|| sign(&bytes), str::to_owned);
    let resp = app
        .http
        .post(format!("{}/api/v1/notify/inbound/{channel}", app.base))
        .header("content-type", "application/json")
        .header("X-Eldercare-Signature", sig)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn press(app: &TestApp, device: &str, kind: &str) -> String {
    let mut d = app.device(device).await;
    d.event("e-1", kind, json!({})).await;
    d.flushed().await;
    let list = app.wait_incidents("status=dispatching", 1).await;
    list[0]["id"].as_str().unwrap().to_owned()
}

/// Moves the store's clock and waits until the gateway has `n` requests
/// to `path`.
async fn gateway_gets(gw: &Recorder, path: &str, n: usize) -> Vec<Got> {
    wait::until(&format!("{n} request(s) to {path}"), || async {
        let got = gw.to(path);
        (got.len() >= n).then_some(got)
    })
    .await
}

#[tokio::test]
async fn a_critical_offer_texts_at_10_s_and_a_reply_accepts_before_the_call() {
    let (base, gw) = Recorder::start(vec![]).await;
    let app = app(&base).await;
    app.elder_with_device("e-1", "fall-1", "fall_radar", json!({}))
        .await;
    app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    // The gateway is busy at first: the text is sent again, not lost.
    gw.script([503]);

    let incident = press(&app, "fall-1", "fall.detected").await;
    app.clock.advance(chrono::Duration::seconds(9));
    app.settle().await;
    assert!(gw.to("/sms").is_empty(), "no text before its step");

    app.clock.advance(chrono::Duration::seconds(1));
    gateway_gets(&gw, "/sms", 1).await;
    app.clock.advance(chrono::Duration::seconds(2));
    let sms = gateway_gets(&gw, "/sms", 2).await;
    let sent = &sms[1];
    assert_eq!(sent.uri.query(), Some("to=13900000101"));
    assert_eq!(sent.headers["authorization"], "Bearer sms-key");
    assert_eq!(sent.headers["content-type"], "application/json");
    let body = sent.json();
    assert_eq!(body["to"], "13900000101");
    assert_eq!(body["left"], 18);
    let text = body["text"].as_str().unwrap();
    // The steward speaks Tibetan and Chinese: the text is in Chinese.
    assert!(
        text.starts_with("【养老急救】危急 · 检测到跌倒 — Elder e-1"),
        "{text}"
    );
    assert!(text.contains("回复 1 接受，2 拒绝"), "{text}");
    assert!(
        text.contains(&format!(" {PUBLIC_URL}/app/#link=")),
        "{text}"
    );
    assert!(!text.contains("hypertension"), "{text}");

    let (status, body) = reply(
        &app,
        "sms",
        json!({"from": "+86 139-0000-0101", "text": "接"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "accepted");
    assert_eq!(body["incident_id"], incident);
    let detail = app.incident(&incident).await;
    assert_eq!(detail["status"], "acknowledged");
    assert_eq!(detail["steward_id"], "s-1");
    // The answer goes back by text.
    let sms = gateway_gets(&gw, "/sms", 3).await;
    let answer = sms[2].json()["text"].as_str().unwrap().to_owned();
    assert!(answer.starts_with("已接受：请前往Elder e-1"), "{answer}");

    // Said again (the gateway re-posts, or the steward double-checks):
    // the incident is theirs.
    let (status, body) = reply(
        &app,
        "sms",
        json!({"from": "13900000101", "text": "1"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "assigned");
    assert_eq!(body["reply"], "此事件已由您负责：请前往Elder e-1家。");

    // The call at 15 s is not needed any more.
    app.clock.advance(chrono::Duration::seconds(10));
    let detail = app
        .wait_incident(&incident, "the call step cancelled", |d| {
            d["deliveries"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|x| x["channel"] == "voice" && x["state"] == "cancelled")
            })
        })
        .await;
    assert!(gw.to("/call").is_empty());
    let sms_row = detail["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["event"] == "offer.sms")
        .unwrap()
        .clone();
    assert_eq!(
        (&sms_row["state"], &sms_row["attempts"]),
        (&json!("delivered"), &json!(2))
    );
}

#[tokio::test]
async fn a_call_says_the_offer_and_a_key_pressed_declines() {
    let (base, gw) = Recorder::start(vec![]).await;
    let app = app(&base).await;
    app.elder_with_device("e-1", "fall-1", "fall_radar", json!({}))
        .await;
    app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    let incident = press(&app, "fall-1", "fall.detected").await;
    app.clock.advance(chrono::Duration::seconds(20));
    let calls = gateway_gets(&gw, "/call", 1).await;
    let form = calls[0].form();
    assert_eq!(form["to"], "13900000101");
    assert!(form["say"].contains("接受请按 1"), "{}", form["say"]);
    assert_eq!(
        form["callback"],
        format!("{PUBLIC_URL}/api/v1/notify/inbound/voice")
    );

    let (status, body) = reply(
        &app,
        "voice",
        json!({"from": "13900000101", "digits": "2#"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "declined");
    assert_eq!(body["reply"], "已拒绝，将另行派单。");
    let detail = app.incident(&incident).await;
    assert_eq!(detail["offers"][0]["response"], "declined");
}

#[tokio::test]
async fn late_unsigned_unknown_and_unclear_replies_change_nothing() {
    let (base, gw) = Recorder::start(vec![]).await;
    let app = app(&base).await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    let incident = press(&app, "btn-1", "call.pressed").await;
    // Before any text was sent, a "yes" answers nothing: a reply is an
    // answer to a text or call about that offer.
    let (status, body) = reply(
        &app,
        "sms",
        json!({"from": "13900000101", "text": "1"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "no_offer");
    assert_eq!(app.incident(&incident).await["status"], "dispatching");
    // Urgent: a text at 20 s; the offer expires at 45 s.
    let answered = gateway_gets(&gw, "/sms", 1).await;
    assert_eq!(
        answered[0].json()["text"],
        "目前没有通过短信或电话等待您应答的派单。"
    );
    app.clock.advance(chrono::Duration::seconds(20));
    let sms = gateway_gets(&gw, "/sms", 2).await;
    let text = sms[1].json()["text"].as_str().unwrap().to_owned();
    let link = text.rsplit_once("#link=").unwrap().1.to_owned();

    let signed = json!({"from": "13900000101", "text": "1"});
    let (status, body) = reply(&app, "sms", signed.clone(), Some("sha256=00")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "bad_signature");
    let (status, body) = reply(
        &app,
        "sms",
        json!({"from": "13900009999", "text": "1"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "unknown_phone");
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("13900009999")
    );
    let (status, body) = reply(
        &app,
        "sms",
        json!({"from": "13900000101", "text": "maybe"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "unknown_reply");
    let (status, body) = reply(&app, "sms", json!({"from": "13900000101"}), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = reply(&app, "fax", signed.clone(), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.incident(&incident).await["offers"][0]["response"],
        Value::Null
    );

    // The offer expires; a yes now is answered plainly, and takes nothing.
    app.clock.advance(chrono::Duration::seconds(26));
    app.wait_incident(&incident, "the offer expired", |d| {
        d["offers"][0]["response"] == "expired"
    })
    .await;
    let (status, body) = reply(&app, "sms", signed, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Nobody else came: the steward is not told to stand down.
    assert_eq!(body["result"], "still_open");
    assert_eq!(
        body["reply"],
        "该派单已于 21:00:45 结束（超时未应答），但事件仍在等待处理：如能前往，请打开应用或致电服务中心。",
        "local time (UTC+8)"
    );
    assert_eq!(app.incident(&incident).await["status"], "dispatching");
    // So is its link.
    let (status, body) = app
        .call(
            None,
            Method::POST,
            "/api/v1/offer-links/redeem",
            Some(json!({"token": link})),
        )
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "link_expired");
}

#[tokio::test]
async fn an_sms_link_opens_its_offer_once_and_logs_its_steward_in() {
    let (base, gw) = Recorder::start(vec![]).await;
    let app = app(&base).await;
    app.elder_with_device("e-1", "fall-1", "fall_radar", json!({}))
        .await;
    let own = app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    let other = app.steward("s-2", "grid-1", 29.70, 91.20).await;
    let incident = press(&app, "fall-1", "fall.detected").await;
    app.clock.advance(chrono::Duration::seconds(10));
    let sms = gateway_gets(&gw, "/sms", 1).await;
    let to_s1 = sms
        .iter()
        .find(|g| g.json()["to"] == "13900000101")
        .unwrap()
        .json();
    let link = to_s1["text"]
        .as_str()
        .unwrap()
        .rsplit_once("#link=")
        .unwrap()
        .1
        .to_owned();

    // Someone else's login on the phone: refused, link unspent.
    let (status, _) = app
        .call(
            Some(&other),
            Method::POST,
            "/api/v1/offer-links/redeem",
            Some(json!({"token": link})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // No login on the phone: a session, once.
    let (status, body) = app
        .call(
            None,
            Method::POST,
            "/api/v1/offer-links/redeem",
            Some(json!({"token": link})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["incident_id"], incident);
    assert_eq!(body["steward_id"], "s-1");
    let session = body["token"].as_str().unwrap().to_owned();
    let (status, me) = app
        .call(Some(&session), Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["steward_id"], "s-1");
    // Its own steward, logged in: just the incident, whatever the link.
    let (status, body) = app
        .call(
            Some(&own),
            Method::POST,
            "/api/v1/offer-links/redeem",
            Some(json!({"token": link})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"incident_id": incident}));
    let (status, body) = app
        .call(
            None,
            Method::POST,
            "/api/v1/offer-links/redeem",
            Some(json!({"token": link})),
        )
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    // A link for the push's buttons is no link.
    let (status, body) = app
        .call(
            None,
            Method::POST,
            "/api/v1/offer-links/redeem",
            Some(json!({"token": "off-1.AAAA"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "bad_token");
}
