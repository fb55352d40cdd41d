//! Dispatch: notices, the stream and the outbox.

use dispatcher::dispatch::Lifecycle;
use dispatcher::ingest::IngestBatch;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use dispatcher::domain::{Candidate, OfferPlan};
use dispatcher::domain::{CandidateNote, DeviceKind, Outcome, Priority, StewardStatus};
use dispatcher::store::dispatch::{Actor, Audience, Channel, DeliveryOutcome};
use dispatcher::store::{EventAction, IncidentFilter, StoreError};
use protocol::EventType;

use eldercare_tests::store_harness::Harness;

use super::fixtures::*;
use crate::fixtures::*;

pub(crate) async fn every_change_writes_its_notices(h: Harness) {
    let s = &*h.store;
    let r = hooked_rules();
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    on_duty(s, "s-1").await;
    let s1 = steward_id("s-1");
    let t0 = day();

    // Opened (urgent call, through ingest).
    let (_, head) = stream_since(s, 0).await; // the steward going on duty
    let got = s.ingest(&[press("btn-1", "p-1", t0)], &r).await.unwrap();
    let inc = got[0].incident.clone().unwrap();
    let (events, head) = stream_since(s, head).await;
    assert_eq!(events, vec![ev("supervisors", "incident")]);
    // Joined.
    s.ingest(&[press("btn-1", "p-2", t0)], &r).await.unwrap();
    let (events, head) = stream_since(s, head).await;
    assert_eq!(events, vec![ev("supervisors", "incident")]);

    // Offered.
    let t1 = t0 + Duration::seconds(1);
    offer(s, &inc.id, &["s-1"], 1, t1).await;
    let rows = s.stream_after(head, 100).await.unwrap();
    let (events, head) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("steward:s-1", "offer"),
            ev("supervisors", "steward"),
            ev("supervisors", "incident"),
        ]
    );
    let o = &rows[0].data;
    assert_eq!(o["incident"]["id"], inc.id.as_str());
    assert_eq!(o["elder"]["name"], "Elder e-1");
    assert_eq!(o["elder"]["medications"][0], "amlodipine 5 mg, morning");
    assert_eq!(o["distance_m"], 100.0);
    assert_eq!(o["expires_at"], json_time(t1 + Duration::seconds(30)));
    assert_eq!(rows[1].data["status"], "offered");

    // Accepted, on site, resolved.
    let _ = s
        .accept(&inc.id, &s1, t1 + Duration::seconds(4), &r)
        .await
        .unwrap();
    let (events, head) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("supervisors", "incident"),
            ev("steward:s-1", "incident"),
            ev("supervisors", "steward"),
        ]
    );
    let _ = s
        .arrive(&inc.id, &s1, t1 + Duration::minutes(6), &r)
        .await
        .unwrap();
    let (events, head) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![ev("supervisors", "incident"), ev("steward:s-1", "incident")]
    );
    let who = Actor::Steward(s1.clone());
    let _ = s
        .resolve(
            &inc.id,
            &who,
            Outcome::FalseAlarm,
            "pressed by mistake",
            t1 + Duration::minutes(9),
            &r,
        )
        .await
        .unwrap();
    let rows = s.stream_after(head, 100).await.unwrap();
    let (events, _) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("supervisors", "steward"),
            ev("supervisors", "incident"),
            ev("steward:s-1", "incident"),
        ]
    );
    assert_eq!(rows[0].data["status"], "available");
    assert_eq!(rows[1].data["status"], "resolved");

    // The outbox, in the order it was written: the device hears each
    // step, the board every change, the family nothing (not critical).
    let items = outbox(s).await;
    let got: Vec<_> = items
        .iter()
        .map(|i| {
            let state = i.payload["state"].as_str().unwrap_or("").to_owned();
            (i.channel, i.target.clone(), i.event.clone(), state)
        })
        .collect();
    let d = |state: &str| {
        (
            Channel::Device,
            "btn-1".to_owned(),
            "incident.update".to_owned(),
            state.to_owned(),
        )
    };
    let w = |event: &str| {
        (
            Channel::Webhook,
            "board".to_owned(),
            event.to_owned(),
            String::new(),
        )
    };
    assert_eq!(
        got,
        vec![
            d("received"),
            w("incident.opened"),
            d("acknowledged"),
            w("incident.acknowledged"),
            d("on_site"),
            w("incident.on_site"),
            d("resolved"),
            w("incident.resolved"),
        ]
    );
    assert!(
        items
            .iter()
            .all(|i| i.incident_id.as_ref() == Some(&inc.id) && i.attempts == 0)
    );
    let device = &items[0].payload;
    assert_eq!(
        (device["type"].as_str(), device["incident_id"].as_str()),
        (Some("incident.update"), Some(inc.id.as_str()))
    );
    let hook = &items[1].payload;
    assert_eq!(hook["event"], "incident.opened");
    assert_eq!(hook["incident"]["id"], inc.id.as_str());
    assert_eq!(hook["elder"]["address"], "12 Barkhor Street");
    assert_eq!(hook["elder"]["contacts"][0]["phone"], "+86 138 0000 0000");
    assert!(
        hook["elder"].get("notes").is_none(),
        "only the essentials leave"
    );
    assert_eq!(hook["at"], json_time(t0));

    // Escalations: the family hears only of critical ones.
    let urgent = open(s, "elder:e-1:u", Priority::Urgent, None, t0, &r).await;
    let critical = open(s, "elder:e-1:c", Priority::Critical, Some("btn-1"), t0, &r).await;
    outbox(s).await; // the openings, out of the way
    let _ = s
        .escalate(&urgent.id, "nobody available", t1, &r)
        .await
        .unwrap();
    let _ = s
        .escalate(&critical.id, "nobody available", t1, &r)
        .await
        .unwrap();
    let items = outbox(s).await;
    let got: Vec<_> = items
        .iter()
        .map(|i| {
            (
                i.incident_id.clone().unwrap(),
                i.target.as_str(),
                i.event.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (urgent.id.clone(), "board", "incident.escalated"),
            (critical.id.clone(), "board", "incident.escalated"),
            (critical.id.clone(), "family", "incident.escalated"),
        ]
    );
    assert_eq!(items[2].payload["elder"]["contacts"][0]["name"], "Dolma");

    // A supervisor's cancel.
    let _ = s
        .cancel(&critical.id, &sup(), "daughter is there", t1, &r)
        .await
        .unwrap();
    let got: Vec<_> = outbox(s)
        .await
        .into_iter()
        .map(|i| {
            (
                i.target,
                i.event,
                i.payload["state"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "btn-1".into(),
                "incident.update".into(),
                Some("cancelled".into())
            ),
            ("board".into(), "incident.cancelled".into(), None),
        ]
    );
}

/// A time as the JSON payloads carry it.
fn json_time(t: DateTime<Utc>) -> serde_json::Value {
    serde_json::to_value(t).unwrap()
}

pub(crate) async fn the_elders_cancel_and_a_clear_write_their_notices(h: Harness) {
    let s = &*h.store;
    let r = hooked_rules();
    home(s, "e-1", "btn-1", DeviceKind::CallButton).await;
    on_duty(s, "s-1").await;
    let t0 = day();
    let got = s.ingest(&[press("btn-1", "p-1", t0)], &r).await.unwrap();
    let inc = got[0].incident.clone().unwrap();
    offer(s, &inc.id, &["s-1"], 1, t0).await;
    outbox(s).await;
    let head = s.stream_head().await.unwrap();

    // The elder cancels while the offer is live.
    let at = t0 + Duration::seconds(8);
    let batch = s
        .ingest_offering(
            &[event("btn-1", "c-1", EventType::CallCancelled, at)],
            &r,
            None,
        )
        .await
        .unwrap();
    let got = &batch.applied;
    assert_eq!(got[0].action, EventAction::Cancelled);
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Available);
    // The batch's commit says whom it freed, for the matcher.
    let freed: Vec<_> = batch
        .changed
        .stewards
        .iter()
        .map(|st| (st.id.to_string(), st.status))
        .collect();
    assert_eq!(freed, vec![("s-1".to_owned(), StewardStatus::Available)]);
    assert!(batch.changed.stream);
    let (events, head) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("steward:s-1", "offer.withdrawn"),
            ev("supervisors", "steward"),
            ev("supervisors", "incident"),
        ]
    );
    assert_eq!(
        s.stream_after(head - 3, 1).await.unwrap()[0].data["reason"],
        "cancelled"
    );
    let got: Vec<_> = outbox(s)
        .await
        .into_iter()
        .map(|i| {
            (
                i.target,
                i.event,
                i.payload["state"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "btn-1".into(),
                "incident.update".into(),
                Some("cancelled".into())
            ),
            ("board".into(), "incident.cancelled".into(), None),
        ]
    );
    let lines = timeline(s, &inc.id).await;
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "offer to s-1 withdrawn: incident cancelled",
            "cancelled: cancelled by the elder at the device",
        ]
    );
    assert!(claim(s, &inc.id, at).await.is_none());

    // A device offline, then heard again: the board hears both.
    let d = device("btn-1", Some("e-1"), DeviceKind::CallButton);
    let raised = s
        .apply(
            &r.device_offline(&d, "silent"),
            &dispatcher::domain::Actor::System,
            at,
            &r,
        )
        .await
        .unwrap();
    let tech = raised[0].incident.clone().unwrap();
    let _ = s
        .apply(
            &r.device_heard(&d.id),
            &dispatcher::domain::Actor::System,
            at,
            &r,
        )
        .await
        .unwrap();
    let got: Vec<_> = outbox(s)
        .await
        .into_iter()
        .map(|i| {
            (
                i.channel,
                i.event,
                i.payload["state"].as_str().map(str::to_owned),
            )
        })
        .collect();
    // A technical incident never lights the elder's button: webhooks only.
    assert_eq!(
        got,
        vec![
            (Channel::Webhook, "incident.opened".into(), None),
            (Channel::Webhook, "incident.resolved".into(), None),
        ]
    );
    let (events, _) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![ev("supervisors", "incident"), ev("supervisors", "incident")]
    );
    let detail = s.incident(&tech.id).await.unwrap().unwrap();
    assert_eq!(detail.incident.outcome, Some(Outcome::Cleared));
    assert_eq!(detail.deliveries.len(), 2);
}

pub(crate) async fn the_outbox_is_claimed_leased_retried_and_finished(h: Harness) {
    let s = h.store.clone();
    let r = hooked_rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    let t0 = day();
    for n in 0..3 {
        let key = format!("elder:e-1:n{n}");
        open(
            &*s,
            &key,
            Priority::Urgent,
            Some("btn-1"),
            t0 + Duration::seconds(n),
            &r,
        )
        .await;
    }
    // Six rows: a device command and a board webhook per incident.
    let lease = Duration::seconds(30);
    let now = t0 + Duration::minutes(1);
    assert!(
        s.claim_outbox(t0 - Duration::seconds(1), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let first = s.claim_outbox(now, lease, 4).await.unwrap();
    assert_eq!(first.len(), 4);
    let ids: Vec<_> = first.iter().map(|i| i.id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "oldest first");
    assert_eq!(first[0].channel, Channel::Device);
    assert_eq!(first[1].channel, Channel::Webhook);
    let rest = s.claim_outbox(now, lease, 10).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert!(
        s.claim_outbox(now, lease, 10).await.unwrap().is_empty(),
        "all leased"
    );

    // One delivered, one to retry in a minute, one failed for good.
    s.finish_outbox(&first[0], &DeliveryOutcome::Delivered, now)
        .await
        .unwrap();
    let retry_at = now + Duration::minutes(2);
    let retry = DeliveryOutcome::Retry {
        at: retry_at,
        error: "HTTP 503".into(),
    };
    s.finish_outbox(&first[1], &retry, now).await.unwrap();
    let failed = DeliveryOutcome::Failed {
        error: "HTTP 410 Gone".into(),
    };
    s.finish_outbox(&first[2], &failed, now).await.unwrap();
    let unknown = dispatcher::store::dispatch::OutboxItem {
        id: "out-nope".into(),
        ..first[0].clone()
    };
    assert!(matches!(
        s.finish_outbox(&unknown, &DeliveryOutcome::Delivered, now)
            .await,
        Err(StoreError::NotFound(_))
    ));

    // The lease runs out: the unfinished come back, the finished do not,
    // the retry waits for its time.
    let later = now + lease + Duration::seconds(1);
    let reclaimed = s.claim_outbox(later, lease, 10).await.unwrap();
    let back: Vec<_> = reclaimed.iter().map(|i| i.id.clone()).collect();
    let mut expected = vec![first[3].id.clone(), rest[0].id.clone(), rest[1].id.clone()];
    expected.sort();
    assert_eq!(back, expected);
    // The worker that lost the lease (a stall past it) comes back and
    // reports: nothing is written over the new claim, which stands.
    assert!(!first[3].claim_holds(later), "its own clock says so too");
    let stale = s
        .finish_outbox(&first[3], &DeliveryOutcome::Delivered, later)
        .await
        .unwrap();
    assert!(!stale, "a lost claim records nothing");
    let current = reclaimed.iter().find(|i| i.id == first[3].id).unwrap();
    assert!(current.claim_holds(later));
    // Giving a claim back: the stale one cannot; the current one can, and
    // the row is claimable at once.
    assert!(!s.release_outbox(&first[3]).await.unwrap());
    assert!(s.release_outbox(current).await.unwrap());
    let again: Vec<_> = s.claim_outbox(later, lease, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, current.id);
    let current = &again[0];
    assert!(
        s.finish_outbox(current, &retry, later).await.unwrap(),
        "the new claim's report is recorded"
    );
    let again = s.claim_outbox(retry_at, lease, 10).await.unwrap();
    let retried = again.iter().find(|i| i.id == first[1].id).expect("retried");
    assert_eq!(retried.attempts, 1);

    // A late report (lease gone, someone else delivered) undoes nothing.
    s.finish_outbox(&first[0], &retry, later).await.unwrap();
    let incident = first[0].incident_id.clone().unwrap();
    let deliveries = s.deliveries(&incident).await.unwrap();
    let delivered = deliveries.iter().find(|d| d.id == first[0].id).unwrap();
    assert_eq!(
        (
            delivered.state.as_str(),
            delivered.attempts,
            delivered.delivered_at
        ),
        ("delivered", 1, Some(now))
    );
    let all_rows: Vec<_> = [&first[1], &first[2]]
        .iter()
        .map(|i| i.incident_id.clone().unwrap())
        .collect();
    let mut states = Vec::new();
    for id in all_rows {
        for d in s.deliveries(&id).await.unwrap() {
            if d.id == first[1].id || d.id == first[2].id {
                states.push((d.state, d.attempts, d.last_error));
            }
        }
    }
    states.sort();
    assert_eq!(
        states,
        vec![
            ("failed".into(), 1, Some("HTTP 410 Gone".into())),
            ("pending".into(), 1, Some("HTTP 503".into())),
        ]
    );

    // Instances claiming at once never share a row.
    let far = t0 + Duration::hours(1);
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.claim_outbox(far, lease, 2).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(task.await.unwrap().into_iter().map(|i| i.id));
    }
    let distinct: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "a row was claimed twice");
    assert_eq!(seen.len(), 4, "the four pending rows");
}

pub(crate) async fn the_stream_reads_in_order_and_prunes(h: Harness) {
    let s = h.store.clone();
    let r = Arc::new(rules());
    s.insert_elder(&elder("e-1")).await.unwrap();
    assert_eq!(s.stream_head().await.unwrap(), 0);
    let t0 = day();
    // Writers at once still give strictly increasing, gapless-to-readers seqs.
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let (s, r) = (s.clone(), r.clone());
            tokio::spawn(async move {
                let key = format!("elder:e-1:n{n}");
                let at = t0 + Duration::seconds(n);
                let _ = s
                    .apply(
                        &[raise_as(&key, "e-1", Priority::Urgent, None)],
                        &dispatcher::domain::Actor::System,
                        at,
                        &r,
                    )
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let all = s.stream_after(0, 1000).await.unwrap();
    assert_eq!(all.len(), 20);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");
    let head = s.stream_head().await.unwrap();
    assert_eq!(head, all[19].seq);
    let tail = s.stream_after(all[14].seq, 3).await.unwrap();
    let seqs: Vec<_> = tail.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![all[15].seq, all[16].seq, all[17].seq]);
    assert!(s.stream_after(head, 10).await.unwrap().is_empty());
    assert_eq!(all[0].audience, Audience::Supervisors);
    assert_eq!(all[0].event.as_str(), "incident");
    // Pruning forgets the old rows, never the sequence.
    let pruned = s.prune_stream(t0 + Duration::seconds(10)).await.unwrap();
    assert_eq!(pruned, 10);
    assert_eq!(s.stream_after(0, 1000).await.unwrap().len(), 10);
    let _ = s
        .apply(
            &[raise_as("elder:e-1:late", "e-1", Priority::Urgent, None)],
            &dispatcher::domain::Actor::System,
            t0,
            &r,
        )
        .await
        .unwrap();
    assert!(s.stream_head().await.unwrap() > head);
}

pub(crate) async fn the_detail_shows_offers_candidates_and_deliveries(h: Harness) {
    let s = &*h.store;
    let r = hooked_rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    on_duty(s, "s-1").await;
    let t0 = day();
    let inc = open(s, "elder:e-1:call", Priority::Urgent, Some("btn-1"), t0, &r).await;
    let note = |id: &str, verdict: &str, reason: &str| CandidateNote {
        steward_id: steward_id(id),
        name: format!("Steward {id}"),
        distance_m: Some(420.0),
        verdict: verdict.into(),
        reason: reason.into(),
    };
    let notes = vec![
        note("s-1", "offered", "nearest available, 420 m"),
        note("s-7", "passed", "location 2 h old"),
    ];
    let expires = t0 + Duration::seconds(45);
    let cands = vec![Candidate {
        steward_id: steward_id("s-1"),
        distance_m: 420.0,
    }];
    let plan = OfferPlan {
        notes: notes.clone(),
        ..plan(cands, 1, expires)
    };
    take(s, &inc.id, t0, plan).await.expect("due");
    let detail = s.incident(&inc.id).await.unwrap().unwrap();
    assert_eq!(detail.candidates, notes);
    assert_eq!(detail.offers.len(), 1);
    let o = &detail.offers[0];
    assert_eq!(
        (
            o.steward_id.as_str(),
            o.offered_at,
            o.expires_at,
            o.response,
            o.distance_m
        ),
        ("s-1", t0, expires, None, Some(420.0))
    );
    let deliveries: Vec<_> = detail
        .deliveries
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.target.as_str(),
                d.event.as_str(),
                d.state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        deliveries,
        vec![
            ("device", "btn-1", "incident.update", "pending"),
            ("webhook", "board", "incident.opened", "pending"),
        ]
    );
    assert_eq!(
        detail.timeline.last().unwrap().what,
        "offered to Steward s-1 (s-1), 420 m"
    );
    // Reports read incidents by creation time.
    let between = s
        .incidents_created_between(t0, t0 + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(between.len(), 1);
    assert!(
        s.incidents_created_between(t0 + Duration::seconds(1), t0 + Duration::hours(1))
            .await
            .unwrap()
            .is_empty()
    );
}

pub(crate) async fn a_steward_sees_an_elder_only_while_offered(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    s.insert_elder(&elder("e-2")).await.unwrap();
    on_duty(s, "s-1").await;
    let (s1, e1, e2) = (steward_id("s-1"), elder_id("e-1"), elder_id("e-2"));
    let t0 = day();
    let inc = open(s, "elder:e-1:call", Priority::Urgent, None, t0, &r).await;
    assert!(!s.steward_sees_elder(&s1, &e1, t0).await.unwrap());
    offer(s, &inc.id, &["s-1"], 1, t0).await;
    assert!(s.steward_sees_elder(&s1, &e1, t0).await.unwrap());
    assert!(!s.steward_sees_elder(&s1, &e2, t0).await.unwrap());
    // Not past the offer's expiry, even before the timer marks it.
    let later = t0 + Duration::hours(1);
    assert!(!s.steward_sees_elder(&s1, &e1, later).await.unwrap());
    let mine = IncidentFilter {
        steward_id: Some(s1.clone()),
        ..Default::default()
    };
    let listed: Vec<_> = s
        .incidents(&mine)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, vec![inc.id.clone()]);
    // Declining ends it; the incident stays in their list.
    let t3 = t0 + Duration::seconds(3);
    let _ = s.decline(&inc.id, &s1, t3, &r).await.unwrap();
    assert!(!s.steward_sees_elder(&s1, &e1, t3).await.unwrap());
    assert_eq!(s.incidents(&mine).await.unwrap().len(), 1);
}
