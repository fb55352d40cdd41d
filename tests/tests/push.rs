//! Web Push end to end: a whole dispatcher, a real MQTT press, and a push
//! service of the tests' own that checks every VAPID token and decrypts
//! every payload with the phone's private key. Time is the store's clock,
//! moved by hand: a 15 s repeat is tested without waiting 15 s.

use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use chrono::{DateTime, Utc};
use eldercare_tests::app::{Options, TestApp};
use eldercare_tests::push_service::{PushService, Received};
use eldercare_tests::wait;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn t0() -> DateTime<Utc> {
    "2026-12-04T13:00:00Z".parse().unwrap()
}

/// A dispatcher on the store's clock that takes `http://` push endpoints.
async fn app() -> TestApp {
    TestApp::spawn(Options {
        clock: Some(t0()),
        env: vec![("ELDERCARE__NOTIFY__PUSH__ALLOW_HTTP".into(), "true".into())],
        ..Options::default()
    })
    .await
}

/// Registers a phone for `token`'s steward; the response body.
async fn register(app: &TestApp, token: &str, sub: &Value, lang: &str) -> (StatusCode, Value) {
    let mut body = sub.clone();
    body["lang"] = json!(lang);
    app.call(
        Some(token),
        Method::POST,
        "/api/v1/push/subscriptions",
        Some(body),
    )
    .await
}

async fn press(app: &TestApp, device: &str, event: &str, kind: &str) {
    let mut d = app.device(device).await;
    d.event(event, kind, json!({})).await;
    d.flushed().await;
}

/// The one open incident's id.
async fn the_incident(app: &TestApp) -> String {
    let list = app.wait_incidents("status=dispatching", 1).await;
    list[0]["id"].as_str().unwrap().to_owned()
}

fn of_type<'a>(kind: &'a str) -> impl Fn(&Received) -> bool + 'a {
    move |r| r.payload["type"] == kind
}

#[tokio::test]
async fn a_press_rings_the_stewards_phone_again_until_accepted_then_closes_it() {
    let app = app().await;
    let push = PushService::start().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let token = app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    let phone = push.subscription();
    let (status, saved) = register(&app, &token, &phone, "en").await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    assert_eq!(saved["lang"], "en");
    assert!(saved.get("auth").is_none(), "the secret is not echoed");

    press(&app, "btn-1", "p-1", "call.pressed").await;
    let incident = the_incident(&app).await;
    let first = push.wait_for("of the offer", of_type("offer")).await;

    // What the lock screen shows, and how the request was made.
    let p = &first.payload;
    assert_eq!(p["incident_id"], incident);
    assert_eq!(p["tag"], format!("incident-{incident}"));
    assert_eq!(p["title"], "Urgent · Call button pressed — Elder e-1");
    assert_eq!(p["body"], "0 m away · answer within 45 s");
    assert_eq!(p["repeat"], 0);
    assert_eq!(p["actions"][0]["action"], "accept");
    assert_eq!(p["actions"][1]["action"], "decline");
    assert_eq!(p["url"], format!("/app/#incident={incident}"));
    let text = p.to_string();
    for private in ["hypertension", "nifedipine", "Tashi", "13800001234"] {
        assert!(
            !text.contains(private),
            "{private} on a lock screen: {text}"
        );
    }
    assert_eq!(first.urgency.as_deref(), Some("high"));
    assert_eq!(first.ttl, Some(45), "TTL: the offer's remaining time");
    assert_eq!(first.topic.as_ref().map(String::len), Some(32));
    let key = app.get("/api/v1/push/key").await;
    assert_eq!(first.vapid_key, key["public_key"].as_str().unwrap());

    // Nobody answers: it rings again every 15 s.
    app.clock.advance(chrono::Duration::seconds(15));
    let again = push
        .wait_for("repeated at 15 s", |r| r.payload["repeat"] == 1)
        .await;
    assert_eq!(again.payload["body"], "0 m away · answer within 30 s");
    assert_eq!(again.ttl, Some(30));
    app.clock.advance(chrono::Duration::seconds(15));
    push.wait_for("repeated at 30 s", |r| r.payload["repeat"] == 2)
        .await;

    // Accepted: the notification closes, and nothing rings again.
    let (status, body) = app
        .call(
            Some(&token),
            Method::POST,
            &format!("/api/v1/incidents/{incident}/accept"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let close = push.wait_for("of the close", of_type("close")).await;
    assert_eq!(close.payload["reason"], "accepted");
    assert_eq!(close.payload["tag"], format!("incident-{incident}"));
    app.clock.advance(chrono::Duration::seconds(60));
    app.settle().await;
    let offers: Vec<_> = push
        .delivered_to(&phone)
        .iter()
        .map(|r| r.payload["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(offers, ["offer", "offer", "offer", "close"]);
    assert!(push.refused().is_empty(), "{:?}", push.refused());

    // The incident lists each step and how it went.
    let detail = app
        .wait_incident(&incident, "pushes recorded", |d| {
            d["deliveries"].as_array().is_some_and(|l| {
                l.iter()
                    .filter(|x| x["channel"] == "push" && x["state"] == "delivered")
                    .count()
                    == 4
            })
        })
        .await;
    let pushes: Vec<(String, String)> = detail["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["channel"] == "push")
        .map(|d| {
            (
                d["event"].as_str().unwrap().to_owned(),
                d["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        pushes,
        [
            ("offer".to_owned(), "delivered".to_owned()),
            ("offer.repeat".into(), "delivered".into()),
            ("offer.repeat".into(), "delivered".into()),
            ("offer.close".into(), "delivered".into()),
        ]
    );
    let offer_id = detail["offers"][0]["id"].as_str().map(str::to_owned);
    assert!(
        detail["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["channel"] == "push")
            .all(|d| d["offer_id"].as_str().map(str::to_owned) == offer_id
                && d["steward_id"] == "s-1")
    );
}

#[tokio::test]
async fn a_gone_phone_is_forgotten_and_a_failed_push_is_retried() {
    let app = app().await;
    let push = PushService::start().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let token = app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    let gone = push.subscription();
    let flaky = push.subscription();
    push.script(&gone, &[410]);
    push.script(&flaky, &[500]);
    for p in [&gone, &flaky] {
        assert_eq!(register(&app, &token, p, "zh").await.0, StatusCode::CREATED);
    }

    press(&app, "btn-1", "p-1", "call.pressed").await;
    let incident = the_incident(&app).await;
    push.wait_for("answered 410", |r| r.status == 410).await;
    push.wait_for("answered 500", |r| r.status == 500).await;
    // The gone phone is forgotten; the other is tried again after 2 s.
    let phones = wait::until("the gone phone forgotten", || async {
        let (_, list) = app
            .call(
                Some(&token),
                Method::GET,
                "/api/v1/push/subscriptions",
                None,
            )
            .await;
        let list = list.as_array()?.clone();
        (list.len() == 1).then_some(list)
    })
    .await;
    assert_eq!(phones[0]["endpoint"], flaky["endpoint"]);
    assert_eq!(phones[0]["last_ok"], false);
    app.clock.advance(chrono::Duration::seconds(2));
    let retried = push
        .wait_for("the retry delivered", |r| r.status == 201)
        .await;
    assert_eq!(
        retried.payload["title"],
        "紧急 · 呼叫按钮被按下 — Elder e-1"
    );
    assert_eq!(retried.payload["actions"][0]["title"], "接受");
    let row = app
        .wait_incident(&incident, "the push delivered on its second attempt", |d| {
            d["deliveries"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|x| x["event"] == "offer" && x["state"] == "delivered")
            })
        })
        .await;
    let first = row["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["event"] == "offer")
        .unwrap()
        .clone();
    assert_eq!(first["attempts"], 2, "{first}");
    let (_, list) = app
        .call(
            Some(&token),
            Method::GET,
            "/api/v1/push/subscriptions",
            None,
        )
        .await;
    assert_eq!(list[0]["last_ok"], true);
}

#[tokio::test]
async fn a_taken_offer_closes_on_the_other_stewards_phone_and_a_slow_phone_holds_up_nobody() {
    let app = app().await;
    let push = PushService::start().await;
    app.elder_with_device("e-1", "fall-1", "fall_radar", json!({}))
        .await;
    let first = app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    let second = app.steward("s-2", "grid-1", 29.6599, 91.1378).await;
    let slow = push.subscription();
    let quick = push.subscription();
    register(&app, &first, &slow, "en").await;
    register(&app, &second, &quick, "en").await;
    // s-1's push service hangs longer than this test waits for s-2's.
    push.delay(&slow, Duration::from_secs(30));
    // The radar hears commands on the connection it reports on.
    let mut radar = app.device("fall-1").await;
    let mut commands = radar.commands().await;
    radar.event("f-1", "fall.detected", json!({})).await;
    radar.flushed().await;
    let incident = the_incident(&app).await;
    let quick_phone = PushService::phone_of(&quick);
    push.wait_for("to s-2 while s-1's hangs", |r| {
        r.subscription == quick_phone && r.payload["type"] == "offer"
    })
    .await;
    assert_eq!(
        commands.next().await["state"],
        "received",
        "the lamp is told too"
    );

    let (status, body) = app
        .call(
            Some(&second),
            Method::POST,
            &format!("/api/v1/incidents/{incident}/accept"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // s-1's offer was taken: their push is closed once it went out.
    let slow_phone = PushService::phone_of(&slow);
    let close = push
        .wait_for("the close to s-1", |r| {
            r.subscription == slow_phone && r.payload["type"] == "close"
        })
        .await;
    assert_eq!(close.payload["reason"], "taken");
    assert_eq!(close.payload["body"], "Another steward took it");
    let mine = push
        .wait_for("the close to s-2", |r| {
            r.subscription == quick_phone && r.payload["type"] == "close"
        })
        .await;
    assert_eq!(mine.payload["reason"], "accepted");
}

#[tokio::test]
async fn a_steward_a_supervisor_assigns_hears_it_on_a_locked_phone() {
    let app = app().await;
    let push = PushService::start().await;
    app.elder_with_device("e-1", "fall-1", "fall_radar", json!({}))
        .await;
    let first = app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    let second = app.steward("s-2", "grid-1", 29.6599, 91.1378).await;
    let one = push.subscription();
    let two = push.subscription();
    register(&app, &first, &one, "en").await;
    register(&app, &second, &two, "en").await;
    press(&app, "fall-1", "f-1", "fall.detected").await;
    let incident = the_incident(&app).await;
    let (p1, p2) = (PushService::phone_of(&one), PushService::phone_of(&two));
    for p in [&p1, &p2] {
        push.wait_for("the offer", |r| {
            r.subscription == *p && r.payload["type"] == "offer"
        })
        .await;
    }

    let (status, body) = app
        .call(
            Some(&app.admin),
            Method::POST,
            &format!("/api/v1/incidents/{incident}/assign"),
            Some(json!({"steward_id": "s-2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let assigned = push
        .wait_for("the assignment", |r| {
            r.subscription == p2 && r.payload["type"] == "assigned"
        })
        .await;
    assert_eq!(
        assigned.payload["title"],
        "Assigned to you: Fall detected — Elder e-1"
    );
    assert_eq!(assigned.payload["tag"], format!("incident-{incident}"));
    assert_eq!(assigned.urgency.as_deref(), Some("high"));
    let closed = push
        .wait_for("s-1's close", |r| {
            r.subscription == p1 && r.payload["type"] == "close"
        })
        .await;
    assert_eq!(closed.payload["reason"], "reassigned");
    // The assigned steward's offer is not "closed": the assignment took
    // its place under the same tag.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let to_two: Vec<_> = push
        .delivered_to(&two)
        .iter()
        .map(|r| r.payload["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(to_two, ["offer", "assigned"]);
}

#[tokio::test]
async fn a_notification_button_accepts_with_its_token_and_only_while_the_offer_lives() {
    let app = app().await;
    let push = PushService::start().await;
    app.elder_with_device("e-1", "btn-1", "call_button", json!({}))
        .await;
    let token = app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    let phone = push.subscription();
    register(&app, &token, &phone, "en").await;
    press(&app, "btn-1", "p-1", "call.pressed").await;
    let incident = the_incident(&app).await;
    let offer = push.wait_for("the offer", of_type("offer")).await;
    let action_token = offer.payload["token"].as_str().unwrap().to_owned();

    // A forged token changes nothing.
    let (offer_id, tag) = action_token.rsplit_once('.').unwrap();
    let mut forged = Base64UrlUnpadded::decode_vec(tag).unwrap();
    forged[0] ^= 1;
    let forged = format!("{offer_id}.{}", Base64UrlUnpadded::encode_string(&forged));
    for bad in [
        json!({"token": forged, "action": "accept"}),
        json!({"token": "x", "action": "accept"}),
    ] {
        let (status, body) = app
            .call(None, Method::POST, "/api/v1/offer-actions", Some(bad))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "bad_token");
    }
    let (status, body) = app
        .call(
            None,
            Method::POST,
            "/api/v1/offer-actions",
            Some(json!({"token": action_token, "action": "maybe"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(app.incident(&incident).await["status"], "dispatching");

    let (status, body) = app
        .call(
            None,
            Method::POST,
            "/api/v1/offer-actions",
            Some(json!({"token": action_token, "action": "accept"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(body["steward_id"], "s-1");
    // Pressed again, or Decline after: the offer is no longer live.
    let (status, body) = app
        .call(
            None,
            Method::POST,
            "/api/v1/offer-actions",
            Some(json!({"token": action_token, "action": "decline"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn bad_subscriptions_and_floods_are_refused_and_change_nothing() {
    let app = TestApp::spawn(Options::default()).await;
    let push = PushService::start().await;
    let token = app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    let list = |app: &TestApp, token: String| {
        let app = app.base.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{app}/api/v1/push/subscriptions"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };

    // http endpoints only where allowed (here they are not).
    let (status, body) = register(&app, &token, &push.subscription(), "en").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_subscription");
    assert!(body["error"]["message"].as_str().unwrap().contains("https"));

    let good = json!({
        "endpoint": "https://push.example/abc",
        "expirationTime": null,
        "keys": {
            "p256dh": "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY",
            "auth": "_ordMnz7uTCmrpBTeUV4Bw",
        },
    });
    let broken = [
        (
            "keys.p256dh",
            json!({"p256dh": "BAAA", "auth": "_ordMnz7uTCmrpBTeUV4Bw"}),
        ),
        (
            "keys.auth",
            json!({"p256dh": good["keys"]["p256dh"], "auth": "AAAA"}),
        ),
    ];
    for (field, keys) in broken {
        let mut sub = good.clone();
        sub["keys"] = keys;
        let (status, body) = register(&app, &token, &sub, "en").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{body}"
        );
    }
    let (status, body) = app
        .call(
            Some(&token),
            Method::POST,
            "/api/v1/push/subscriptions",
            Some(json!({"endpoint": "https://push.example/x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(list(&app, token.clone()).await, json!([]));

    // Supervisors have no phone to register; no login, no phone.
    let (status, _) = register(&app, &app.admin, &good, "en").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            None,
            Method::POST,
            "/api/v1/push/subscriptions",
            Some(good.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A flood: five phones, then a clear refusal; the same phone again is
    // an update, not a sixth.
    for n in 0..5 {
        let mut sub = good.clone();
        sub["endpoint"] = json!(format!("https://push.example/{n}"));
        assert_eq!(
            register(&app, &token, &sub, "en").await.0,
            StatusCode::CREATED
        );
    }
    let mut sixth = good.clone();
    sixth["endpoint"] = json!("https://push.example/6");
    let (status, body) = register(&app, &token, &sixth, "en").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "too_many_subscriptions");
    let mut again = good.clone();
    again["endpoint"] = json!("https://push.example/0");
    let (status, body) = register(&app, &token, &again, "zh").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["lang"], "zh");
    let phones = list(&app, token.clone()).await;
    assert_eq!(phones.as_array().unwrap().len(), 5);

    // One's own phone can be removed; someone else's cannot be seen.
    let other = app.steward("s-2", "grid-1", 29.66, 91.14).await;
    let id = phones[0]["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Some(&other),
            Method::DELETE,
            &format!("/api/v1/push/subscriptions/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Some(&token),
            Method::DELETE,
            &format!("/api/v1/push/subscriptions/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(list(&app, token.clone()).await.as_array().unwrap().len(), 4);

    // Renewing takes the old secret, nothing less.
    let (status, body) = app
        .call(
            None,
            Method::POST,
            "/api/v1/push/subscriptions/renew",
            Some(json!({
                "old": {"endpoint": "https://push.example/1", "keys": {"auth": "AAAAAAAAAAAAAAAAAAAAAA"}},
                "new": good,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let mut renewed = good.clone();
    renewed["endpoint"] = json!("https://push.example/renewed");
    let (status, body) = app
        .call(
            None,
            Method::POST,
            "/api/v1/push/subscriptions/renew",
            Some(json!({
                "old": {"endpoint": "https://push.example/1", "keys": {"auth": "_ordMnz7uTCmrpBTeUV4Bw"}},
                "new": renewed,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["endpoint"], "https://push.example/renewed");
    assert_eq!(body["steward_id"], "s-1");
}

#[tokio::test]
async fn a_test_alert_reaches_every_phone_and_the_roster_shows_who_cannot_be_reached() {
    let app = app().await;
    let push = PushService::start().await;
    let token = app.steward("s-1", "grid-1", 29.6598, 91.1377).await;
    app.steward("s-2", "grid-1", 29.66, 91.14).await;

    let (status, body) = app
        .call(Some(&token), Method::POST, "/api/v1/push/test", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "no_subscription");

    let ok = push.subscription();
    let broken = push.subscription();
    register(&app, &token, &ok, "zh").await;
    register(&app, &token, &broken, "en").await;
    push.script(&broken, &[500]);
    let (status, body) = app
        .call(Some(&token), Method::POST, "/api/v1/push/test", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sent"], 1);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .any(|r| r["ok"] == false && r["status"] == 500)
    );
    let ok_phone = PushService::phone_of(&ok);
    let test = push
        .wait_for("the test on the Chinese phone", |r| {
            r.subscription == ok_phone && r.payload["type"] == "test"
        })
        .await;
    assert_eq!(test.payload["title"], "测试提醒");

    let reach = app.get("/api/v1/reachability").await;
    let of = |id: &str| {
        reach
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["steward_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(of("s-1")["problems"], json!([]));
    assert_eq!(of("s-1")["push_subscriptions"], 2);
    assert_eq!(of("s-2")["problems"], json!(["no_push"]));
    // Every phone failing is a problem too.
    push.script(&ok, &[500]);
    push.script(&broken, &[500]);
    app.call(Some(&token), Method::POST, "/api/v1/push/test", None)
        .await;
    let reach = app.get("/api/v1/reachability").await;
    let s1 = reach
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["steward_id"] == "s-1")
        .unwrap();
    assert_eq!(s1["problems"], json!(["push_failing"]));
    assert_eq!(s1["last_push_ok"], false);
    // Stewards cannot read the roster.
    let (status, _) = app
        .call(Some(&token), Method::GET, "/api/v1/reachability", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// RFC 8291's own example (section 5), decrypted the way the test push
/// service decrypts every push: the service's side of the cryptography
/// is right, so what it accepts is what a browser would.
#[test]
fn the_rfc_8291_example_decrypts() {
    use web_push_native::{Auth, p256};
    let d = |s: &str| Base64UrlUnpadded::decode_vec(s).unwrap();
    let ciphertext = d(
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
    );
    let ua_private =
        p256::SecretKey::from_slice(&d("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).unwrap();
    let auth = Auth::clone_from_slice(&d("BTBZMqHH6r4Tts7J_aSIgg"));
    let plain = web_push_native::decrypt(ciphertext, &ua_private, &auth).unwrap();
    assert_eq!(plain, b"When I grow up, I want to be a watermelon");
}
