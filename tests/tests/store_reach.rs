//! The store's side of reaching stewards, on both backends: an offer's
//! ladder is written with the offer and stops with it, phones register
//! within their limit, keys are made once, a link opens once.

use chrono::{DateTime, Duration, Utc};
use dispatcher::dispatch::Lifecycle;
use dispatcher::domain::{Candidate, DispatchTurn, OfferPlan};
use dispatcher::domain::{
    ContactChannel, Elder, ElderId, IncidentId, IncidentKind, Lang, LatLon, NewSubscription,
    Priority, ReachStep, Steward, StewardId, StewardStatus,
};
use dispatcher::rules::{Effect, RuleBook};
use dispatcher::settings::RuleSettings;
use dispatcher::store::dispatch::{Channel, DeliveryOutcome, OutboxItem};
use dispatcher::store::{ConflictCode, Store, StoreError};
use eldercare_tests::on_both_backends;
use eldercare_tests::store_harness::Harness;

on_both_backends!(
    an_offers_ladder_is_written_with_it_and_stops_when_it_is_answered,
    an_accepted_offer_closes_what_was_shown_and_an_unshown_one_nothing,
    phones_register_move_and_stop_at_the_limit,
    keys_are_made_once_and_links_open_once,
);

fn t0() -> DateTime<Utc> {
    "2026-12-04T13:00:00Z".parse().unwrap()
}

fn secs(n: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(n)
}

fn sid(s: &str) -> StewardId {
    StewardId::parse(s).unwrap()
}

async fn scene(s: &dyn Store, stewards: &[&str]) -> IncidentId {
    s.insert_elder(&Elder {
        id: ElderId::parse("e-1").unwrap(),
        name: "Yangzom".into(),
        birth_year: 1940,
        address: "12 Barkhor Street".into(),
        location: LatLon::new(29.65, 91.13).unwrap(),
        grid: "g-1".into(),
        conditions: vec!["hypertension".into()],
        medications: vec![],
        risks: Default::default(),
        lives_alone: true,
        languages: vec![],
        contacts: vec![],
        notes: String::new(),
        limits: Default::default(),
        care: Default::default(),
    })
    .await
    .unwrap();
    for id in stewards {
        s.insert_steward(&Steward {
            id: sid(id),
            name: format!("Steward {id}"),
            phone: "+86 139 0000 0000".into(),
            grid: "g-1".into(),
            skills: vec![],
            languages: vec!["zh".into()],
            on_duty: false,
            status: StewardStatus::OffDuty,
            lat: None,
            lon: None,
            location_at: None,
            accuracy_m: None,
        })
        .await
        .unwrap();
        s.set_steward_duty(&sid(id), true, t0()).await.unwrap();
    }
    let rules = RuleBook::new(RuleSettings::default());
    let applied = s
        .apply(
            &[Effect::Raise {
                key: "e-1/fall".into(),
                elder_id: Some(ElderId::parse("e-1").unwrap()),
                device_id: None,
                kind: IncidentKind::Fall,
                priority: Priority::Critical,
                summary: "fall".into(),
            }],
            &dispatcher::domain::Actor::System,
            t0(),
            &rules,
        )
        .await
        .unwrap();
    applied[0].incident.clone().unwrap().id
}

/// The critical ladder with SMS and calls: push 0, sms 10, push 15, voice 20.
fn ladder() -> Vec<ReachStep> {
    let step = |channel, at, repeat| ReachStep {
        channel,
        at: secs(at),
        repeat,
    };
    vec![
        step(ContactChannel::Push, 0, 0),
        step(ContactChannel::Sms, 10, 0),
        step(ContactChannel::Push, 15, 1),
        step(ContactChannel::Voice, 20, 0),
    ]
}

async fn offer_to(s: &dyn Store, incident: &IncidentId, stewards: &[&str]) {
    let plan = OfferPlan {
        candidates: stewards
            .iter()
            .map(|id| Candidate {
                steward_id: sid(id),
                distance_m: 300.0,
            })
            .collect(),
        want: stewards.len(),
        expires_at: secs(30),
        notes: Vec::new(),
        retry_at: secs(30),
        reach: ladder(),
    };
    let taken = s
        .take_turn(incident, t0(), &move |_: &DispatchTurn| Some(plan.clone()))
        .await
        .unwrap()
        .expect("due");
    assert_eq!(taken.offers.len(), stewards.len());
}

/// Claims what is due at `at` on the steward channels, oldest first.
async fn due(s: &dyn Store, at: DateTime<Utc>) -> Vec<OutboxItem> {
    s.claim_outbox_for(
        at,
        Duration::seconds(60),
        100,
        &[Channel::Push, Channel::Sms, Channel::Voice],
    )
    .await
    .unwrap()
}

fn rules() -> RuleBook {
    RuleBook::new(RuleSettings::default())
}

async fn an_offers_ladder_is_written_with_it_and_stops_when_it_is_answered(h: Harness) {
    let s = &*h.store;
    let incident = scene(s, &["s-1"]).await;
    offer_to(s, &incident, &["s-1"]).await;
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE offer_id IS NOT NULL AND steward_id = 's-1' AND state = 'pending'")
            .await,
        4
    );
    // Each step comes due at its time, no sooner.
    let now = due(s, t0()).await;
    assert_eq!(now.len(), 1);
    assert_eq!(
        (now[0].channel, now[0].event.as_str()),
        (Channel::Push, "offer")
    );
    assert_eq!(now[0].payload["elder_name"], "Yangzom");
    assert!(now[0].payload.get("conditions").is_none());
    s.finish_outbox(&now[0], &DeliveryOutcome::Delivered, t0())
        .await
        .unwrap();
    let at_10 = due(s, secs(10)).await;
    assert_eq!(at_10.len(), 1);
    assert_eq!(
        (at_10[0].channel, at_10[0].event.as_str()),
        (Channel::Sms, "offer.sms")
    );
    s.finish_outbox(&at_10[0], &DeliveryOutcome::Delivered, secs(10))
        .await
        .unwrap();

    // Declined at 12 s: the repeat and the call never go; the phone that
    // was shown the offer is told to close it.
    let _ = s
        .decline(&incident, &sid("s-1"), secs(12), &rules())
        .await
        .unwrap();
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE state = 'cancelled' AND steward_id = 's-1'")
            .await,
        2
    );
    let later = due(s, secs(60)).await;
    let got: Vec<_> = later
        .iter()
        .map(|i| (i.channel, i.event.as_str()))
        .collect();
    assert_eq!(got, [(Channel::Push, "offer.close")]);
    assert_eq!(later[0].payload["reason"], "declined");
    assert_eq!(later[0].payload["elder_name"], "Yangzom");
    let detail = s.incident(&incident).await.unwrap().unwrap();
    let cancelled: Vec<_> = detail
        .deliveries
        .iter()
        .filter(|d| d.state == "cancelled")
        .map(|d| (d.channel.as_str(), d.last_error.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        cancelled,
        [
            ("push", "not needed: offer declined".to_owned()),
            ("voice", "not needed: offer declined".to_owned())
        ]
    );
}

async fn an_accepted_offer_closes_what_was_shown_and_an_unshown_one_nothing(h: Harness) {
    let s = &*h.store;
    let incident = scene(s, &["s-1", "s-2", "s-3"]).await;
    offer_to(s, &incident, &["s-1", "s-2", "s-3"]).await;
    let first = due(s, t0()).await;
    assert_eq!(first.len(), 3, "a push each");
    let to = |who: &str| first.iter().find(|i| i.target == who).unwrap().clone();
    // s-1's push went out; s-2's is being sent right now; s-3's failed.
    s.finish_outbox(&to("s-1"), &DeliveryOutcome::Delivered, t0())
        .await
        .unwrap();
    s.finish_outbox(
        &to("s-3"),
        &DeliveryOutcome::Failed {
            error: "no phone".into(),
        },
        t0(),
    )
    .await
    .unwrap();

    let _ = s
        .accept(&incident, &sid("s-1"), secs(5), &rules())
        .await
        .unwrap();
    let closes = due(s, secs(5)).await;
    let mut got: Vec<_> = closes
        .iter()
        .map(|i| (i.target.as_str(), i.payload["reason"].as_str().unwrap()))
        .collect();
    got.sort();
    assert_eq!(got, [("s-1", "accepted"), ("s-2", "taken")]);
    // The push in flight is left to its sender, which checks the offer
    // again before sending; the rest of every ladder is cancelled.
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE offer_id IS NOT NULL AND state = 'pending' AND event <> 'offer.close'")
            .await,
        1
    );
    assert_eq!(
        h.count("SELECT COUNT(*) FROM outbox WHERE state = 'cancelled'")
            .await,
        9
    );
}

fn phone(n: u32) -> NewSubscription {
    NewSubscription {
        endpoint: format!("https://push.example/{n}"),
        p256dh: "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY".into(),
        auth: "_ordMnz7uTCmrpBTeUV4Bw".into(),
        expiration_time: None,
    }
}

async fn phones_register_move_and_stop_at_the_limit(h: Harness) {
    let s = &*h.store;
    scene(s, &["s-1", "s-2"]).await;
    let (a, new) = s
        .save_subscription(&sid("s-1"), &phone(1), Lang::Zh, 2, t0())
        .await
        .unwrap();
    assert!(new);
    let (again, new) = s
        .save_subscription(&sid("s-1"), &phone(1), Lang::En, 2, t0())
        .await
        .unwrap();
    assert!(!new, "one endpoint, one phone");
    assert_eq!((again.id.as_str(), again.lang), (a.id.as_str(), Lang::En));
    s.save_subscription(&sid("s-1"), &phone(2), Lang::Zh, 2, t0())
        .await
        .unwrap();
    match s
        .save_subscription(&sid("s-1"), &phone(3), Lang::Zh, 2, t0())
        .await
    {
        Err(StoreError::Conflict {
            code: ConflictCode::TooManySubscriptions,
            message,
        }) => assert!(message.starts_with("too_many_subscriptions"), "{message}"),
        other => panic!("expected too many, got {other:?}"),
    }
    assert!(matches!(
        s.save_subscription(&sid("s-9"), &phone(4), Lang::Zh, 2, t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Someone who only knows the endpoint cannot take the phone over…
    let mut stolen = phone(2);
    stolen.auth = "AAAAAAAAAAAAAAAAAAAAAA".into();
    match s
        .save_subscription(&sid("s-2"), &stolen, Lang::Zh, 2, t0())
        .await
    {
        Err(StoreError::Conflict {
            code: ConflictCode::SubscriptionTaken,
            message,
        }) => assert!(message.starts_with("subscription_taken"), "{message}"),
        other => panic!("expected taken, got {other:?}"),
    }
    // …but a shared phone logged in as s-2 now rings for s-2.
    let (moved, new) = s
        .save_subscription(&sid("s-2"), &phone(2), Lang::Zh, 2, t0())
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(moved.steward_id, sid("s-2"));
    assert_eq!(s.subscriptions_of(&sid("s-1")).await.unwrap().len(), 1);
    assert_eq!(s.all_subscriptions().await.unwrap().len(), 2);

    s.record_push(&a.id, &phone(1).endpoint, Some("HTTP 500"), secs(1))
        .await
        .unwrap();
    let got = s
        .subscription_by_endpoint(&phone(1).endpoint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.last_ok, got.last_error.as_deref()),
        (Some(false), Some("HTTP 500"))
    );
    s.record_push(&a.id, &phone(1).endpoint, None, secs(2))
        .await
        .unwrap();
    let got = s
        .subscription_by_endpoint(&phone(1).endpoint)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.last_ok, got.last_push_at), (Some(true), Some(secs(2))));

    let renewed = s
        .renew_subscription(&a.id, &phone(7), secs(3))
        .await
        .unwrap();
    assert_eq!(
        (renewed.id.as_str(), renewed.endpoint.as_str()),
        (a.id.as_str(), "https://push.example/7")
    );
    assert_eq!(renewed.last_ok, None);
    // A push to the old endpoint answered late: the renewed phone stays.
    assert!(
        !s.forget_subscription(&a.id, &phone(1).endpoint)
            .await
            .unwrap()
    );
    s.record_push(&a.id, &phone(1).endpoint, Some("HTTP 410"), secs(3))
        .await
        .unwrap();
    let kept = s
        .subscription_by_endpoint(&phone(7).endpoint)
        .await
        .unwrap();
    assert_eq!(kept.unwrap().last_ok, None);
    assert!(s.delete_subscription(&a.id).await.unwrap());
    assert!(!s.delete_subscription(&a.id).await.unwrap());
    assert!(matches!(
        s.renew_subscription(&a.id, &phone(8), secs(4)).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn keys_are_made_once_and_links_open_once(h: Harness) {
    let s = &*h.store;
    let first = s.server_key("k", || "one".into(), t0()).await.unwrap();
    let second = s.server_key("k", || "two".into(), t0()).await.unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("one", "one"));

    let incident = scene(s, &["s-1"]).await;
    offer_to(s, &incident, &["s-1"]).await;
    let offer = s.last_offer_of(&sid("s-1")).await.unwrap().unwrap();
    assert_eq!(
        s.offer(&offer.id).await.unwrap().unwrap().incident_id,
        incident
    );
    assert!(s.use_link(&offer.id, secs(1)).await.unwrap());
    assert!(!s.use_link(&offer.id, secs(2)).await.unwrap());
    assert!(s.offer("off-nothing").await.unwrap().is_none());
}

/// A database of the previous version, with an outbox row waiting and one
/// a worker holds, upgraded by starting this version: both rows are kept
/// as they were and delivered as before.
async fn upgrade_keeps_the_waiting_outbox(url: &str, dir: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let migrator = sqlx::migrate::Migrator::new(path).await.unwrap();
    let rows = "INSERT INTO outbox (id, incident_id, channel, target, event, payload, created_at,
                                    due_at, attempts, state, claimed_until)
                VALUES ('out-1', 'inc-1', 'device', 'btn-1', 'incident.update', '{\"state\":\"received\"}',
                        '2026-12-04T12:59:00Z', '2026-12-04T12:59:00Z', 0, 'pending', NULL),
                       ('out-2', 'inc-1', 'webhook', 'ops', 'incident.opened', '{}',
                        '2026-12-04T12:59:00Z', '2026-12-04T12:59:00Z', 1, 'pending', '2026-12-04T13:00:30Z')";
    if url.starts_with("sqlite:") {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let pool = sqlx::SqlitePool::connect_with(options.create_if_missing(true))
            .await
            .unwrap();
        migrator.run_to(3, &pool).await.unwrap();
        sqlx::query(rows).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run_to(3, &pool).await.unwrap();
        sqlx::query(rows).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let store = dispatcher::store::connect(url).await.expect("upgraded");
    let due = store
        .claim_outbox(t0(), Duration::seconds(60), 10)
        .await
        .unwrap();
    let got: Vec<_> = due
        .iter()
        .map(|i| (i.id.as_str(), i.channel, i.offer_id.clone()))
        .collect();
    assert_eq!(
        got,
        [("out-1", Channel::Device, None)],
        "out-2 is still held"
    );
    let later = store
        .claim_outbox(secs(31), Duration::seconds(60), 10)
        .await
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!((later[0].id.as_str(), later[0].attempts), ("out-2", 1));
    assert_eq!(
        later[0].due_at,
        "2026-12-04T12:59:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[tokio::test]
async fn sqlite_upgrade_keeps_the_waiting_outbox() {
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_sqlite();
    std::fs::create_dir_all(db.dir().join("data")).unwrap();
    upgrade_keeps_the_waiting_outbox(db.url(), "../migrations/sqlite").await;
}

#[tokio::test]
async fn postgres_upgrade_keeps_the_waiting_outbox() {
    use eldercare_tests::db::TestDb;
    let db = eldercare_tests::db::fresh_postgres()
        .await
        .expect("test database");
    upgrade_keeps_the_waiting_outbox(db.url(), "../migrations/postgres").await;
}
