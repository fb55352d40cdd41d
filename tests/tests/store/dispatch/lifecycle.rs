//! Dispatch: the lifecycle, from the first offer to resolved.

use dispatcher::dispatch::Lifecycle;
use std::sync::Arc;

use chrono::Duration;

use dispatcher::domain::{
    IncidentId, IncidentState, OfferResponse, Outcome, Priority, StewardStatus, WithdrawReason,
};
use dispatcher::store::StoreError;
use dispatcher::store::dispatch::{Actor, Audience, DISPATCH_LEASE};

use eldercare_tests::store_harness::Harness;

use super::fixtures::*;
use crate::fixtures::*;

pub(crate) async fn declines_and_expiries_escalate_then_a_steward_goes_and_resolves(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    for id in ["s-1", "s-2", "s-3"] {
        on_duty(s, id).await;
    }
    let (s1, s2, s3) = (steward_id("s-1"), steward_id("s-2"), steward_id("s-3"));
    let t0 = day();
    let inc = open(s, "elder:e-1:call", Priority::Urgent, None, t0, &r).await;
    let made = offer(s, &inc.id, &["s-1"], 1, t0).await;
    assert_eq!(made.len(), 1);
    assert_eq!(
        (made[0].expires_at, made[0].response, made[0].distance_m),
        (t0 + Duration::seconds(30), None, Some(100.0))
    );
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Offered);
    assert!(claim(s, &inc.id, t0).await.is_none(), "an offer is live");

    // s-1 declines: free again, and the next offer is due at once.
    let t1 = t0 + Duration::seconds(10);
    let after = s.decline(&inc.id, &s1, t1, &r).await.unwrap();
    assert_eq!(
        (after.status, after.escalation_level),
        (IncidentState::Dispatching, 0)
    );
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Available);
    // The commit says what it changed, for what follows it: s-1 as the
    // decline left them, the incident due for its next offer now.
    assert!(after.changed.stream);
    assert_eq!(after.changed.due_now, vec![inc.id.clone()]);
    assert_eq!(
        statuses(&after.changed.stewards),
        vec![(s1.clone(), StewardStatus::Available)]
    );
    assert_eq!(code(s.accept(&inc.id, &s1, t1, &r).await), "offer_expired");
    assert_eq!(code(s.decline(&inc.id, &s1, t1, &r).await), "offer_expired");
    assert_eq!(code(s.accept(&inc.id, &s3, t1, &r).await), "no_offer");
    assert!(matches!(
        s.accept(&inc.id, &steward_id("s-9"), t1, &r).await,
        Err(StoreError::NotFound(m)) if m == "steward s-9"
    ));
    let unknown = IncidentId::parse("inc-nope").unwrap();
    assert!(matches!(
        s.accept(&unknown, &s1, t1, &r).await,
        Err(StoreError::NotFound(m)) if m == "incident inc-nope"
    ));
    // s-2 is offered (s-1, already asked, is skipped) and never answers.
    let expires = t1 + Duration::seconds(30);
    let taken = take(
        s,
        &inc.id,
        t1,
        plan(candidates(&["s-1", "s-2"]), 1, expires),
    )
    .await
    .expect("due at once");
    assert_eq!(
        (taken.turn.already_offered.clone(), taken.turn.live_offers),
        (vec![s1.clone()], 0)
    );
    let made = taken.offers;
    assert_eq!(made[0].steward_id, s2);
    assert!(
        s.expire_offers(expires - Duration::seconds(1), &r)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.expire_offers(expires, &r).await.unwrap(),
        vec![inc.id.clone()]
    );
    assert!(
        s.expire_offers(expires, &r).await.unwrap().is_empty(),
        "once only"
    );
    assert_eq!(status_of(s, "s-2").await, StewardStatus::Available);
    let detail = s.incident(&inc.id).await.unwrap().unwrap();
    assert_eq!(
        detail.incident.escalation_level, 1,
        "two failed offers escalate"
    );
    let responses: Vec<_> = detail.offers.iter().map(|o| o.response).collect();
    assert_eq!(
        responses,
        vec![Some(OfferResponse::Declined), Some(OfferResponse::Expired)]
    );
    let lines = timeline(s, &inc.id).await;
    assert_eq!(
        lines,
        vec![
            "opened: call pressed (bedside)",
            "offered to Steward s-1 (s-1), 100 m",
            "declined by s-1",
            "offered to Steward s-2 (s-2), 200 m",
            "offer to s-2 expired",
            "escalated to level 1: 2 offers declined or expired",
        ]
    );

    // s-3 is offered; too late is too late, even before the timer runs.
    let t2 = expires;
    let made = offer(s, &inc.id, &["s-3"], 1, t2).await;
    let late = made[0].expires_at;
    assert_eq!(
        code(s.accept(&inc.id, &s3, late, &r).await),
        "offer_expired"
    );
    let t3 = t2 + Duration::seconds(5);
    let acked = s.accept(&inc.id, &s3, t3, &r).await.unwrap();
    assert_eq!(
        statuses(&acked.changed.stewards),
        vec![(s3.clone(), StewardStatus::Busy)]
    );
    assert!(
        acked.changed.due_now.is_empty(),
        "nothing to offer once accepted"
    );
    assert_eq!(
        (
            acked.status,
            acked.steward_id.clone(),
            acked.acknowledged_at
        ),
        (IncidentState::Acknowledged, Some(s3.clone()), Some(t3))
    );
    assert_eq!(status_of(s, "s-3").await, StewardStatus::Busy);
    assert_eq!(
        s.accept(&inc.id, &s3, t3, &r).await.unwrap(),
        acked,
        "a retried tap"
    );
    assert_eq!(code(s.decline(&inc.id, &s3, t3, &r).await), "already_taken");
    // Acknowledged: no more escalation, no more dispatch.
    assert!(
        s.escalate_due(t0 + Duration::days(1), &r)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.due_dispatches(t0 + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // On site, then resolved by the steward, who went off duty meanwhile.
    assert_eq!(code(s.arrive(&inc.id, &s2, t3, &r).await), "not_assigned");
    let t4 = t3 + Duration::minutes(7);
    let there = s.arrive(&inc.id, &s3, t4, &r).await.unwrap();
    assert_eq!(
        (there.status, there.on_site_at),
        (IncidentState::OnSite, Some(t4))
    );
    assert_eq!(s.arrive(&inc.id, &s3, t4, &r).await.unwrap(), there);
    assert_eq!(
        code(
            s.resolve(
                &inc.id,
                &Actor::Steward(s1.clone()),
                Outcome::Assisted,
                "",
                t4,
                &r
            )
            .await
        ),
        "not_assigned"
    );
    let still = s
        .set_steward_duty(&s3, false, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(still.status, StewardStatus::Busy);
    let t5 = t4 + Duration::minutes(20);
    let who = Actor::Steward(s3.clone());
    let done = s
        .resolve(
            &inc.id,
            &who,
            Outcome::Assisted,
            "helped up from the floor",
            t5,
            &r,
        )
        .await
        .unwrap();
    assert_eq!(
        (done.status, done.outcome, done.resolved_at),
        (IncidentState::Resolved, Some(Outcome::Assisted), Some(t5))
    );
    assert_eq!(status_of(s, "s-3").await, StewardStatus::OffDuty);
    assert_eq!(code(s.arrive(&inc.id, &s3, t5, &r).await), "not_open");
    assert_eq!(code(s.accept(&inc.id, &s3, t5, &r).await), "not_open");
    assert_eq!(
        code(s.cancel(&inc.id, &sup(), "late", t5, &r).await),
        "not_open"
    );
    assert_eq!(
        code(s.resolve(&inc.id, &sup(), Outcome::Other, "", t5, &r).await),
        "not_open"
    );
    assert_eq!(code(s.escalate(&inc.id, "x", t5, &r).await), "not_open");
    let detail = s.incident(&inc.id).await.unwrap().unwrap();
    let tail: Vec<_> = detail.timeline[6..]
        .iter()
        .map(|l| (l.what.as_str(), l.actor.as_str()))
        .collect();
    // The resolve also makes the follow-up call, due a day later.
    let follow_up = format!(
        "follow-up call due by {}",
        dispatcher::domain::lifecycle::when(t5 + Duration::hours(24))
    );
    assert_eq!(
        tail,
        vec![
            ("offered to Steward s-3 (s-3), 100 m", "system"),
            ("accepted by s-3", "steward:s-3"),
            ("on site", "steward:s-3"),
            (
                "resolved: assisted — helped up from the floor",
                "steward:s-3"
            ),
            (follow_up.as_str(), "system"),
        ]
    );
    assert_no_double_booking(&h, "after resolve").await;
}

pub(crate) async fn a_critical_incident_offered_twice_goes_to_the_first_to_accept(h: Harness) {
    let s = h.store.clone();
    let r = Arc::new(rules());
    s.insert_elder(&elder("e-1")).await.unwrap();
    on_duty(&*s, "s-1").await;
    on_duty(&*s, "s-2").await;
    let t0 = day();
    let inc = open(&*s, "elder:e-1:fall", Priority::Critical, None, t0, &r).await;
    let made = offer(&*s, &inc.id, &["s-1", "s-2"], 2, t0).await;
    assert_eq!(made.len(), 2);
    let head = s.stream_head().await.unwrap();
    let at = t0 + Duration::seconds(3);
    let tasks: Vec<_> = ["s-1", "s-2"]
        .into_iter()
        .map(|st| {
            let (s, r, id) = (s.clone(), r.clone(), inc.id.clone());
            tokio::spawn(async move { (st, s.accept(&id, &steward_id(st), at, &r).await) })
        })
        .collect();
    let mut won = Vec::new();
    let mut lost = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (st, Ok(i)) => won.push((st, i)),
            (st, Err(e)) => lost.push((st, code::<()>(Err(e)))),
        }
    }
    assert_eq!(won.len(), 1, "one winner");
    assert_eq!(lost.len(), 1);
    let (winner, incident) = &won[0];
    let (loser, why) = &lost[0];
    assert_eq!(why, "already_taken");
    assert_eq!(incident.steward_id, Some(steward_id(winner)));
    assert_eq!(status_of(&*s, winner).await, StewardStatus::Busy);
    assert_eq!(status_of(&*s, loser).await, StewardStatus::Available);
    let offers = s.incident(&inc.id).await.unwrap().unwrap().offers;
    let of = |st: &str| {
        offers
            .iter()
            .find(|o| o.steward_id.as_str() == st)
            .unwrap()
            .response
    };
    assert_eq!(of(winner), Some(OfferResponse::Accepted));
    assert_eq!(of(loser), Some(OfferResponse::Withdrawn));
    let told: Vec<_> = s
        .stream_after(head, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.audience == Audience::Steward(steward_id(loser)))
        .collect();
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].event.as_str(), "offer.withdrawn");
    assert_eq!(told[0].data["reason"], "taken");
    assert_eq!(told[0].data["incident_id"], inc.id.as_str());
    assert_no_double_booking(&h, "after the race").await;
}

pub(crate) async fn a_long_wait_escalates_and_keeps_escalating(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    let t0 = day();
    // Urgent: 180 s without acceptance escalates.
    let inc = open(s, "elder:e-1:call", Priority::Urgent, None, t0, &r).await;
    let retry = t0 + Duration::seconds(30);
    let none = take(s, &inc.id, t0, plan(Vec::new(), 1, retry))
        .await
        .expect("due")
        .offers;
    assert!(none.is_empty());
    // It waits for its retry, read as a planner sees it; a steward freed
    // before the retry brings it forward: due at once, and only once.
    let freed_at = t0 + Duration::seconds(5);
    let waiting = s.waiting_turns(freed_at, 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].incident.id, inc.id);
    assert_eq!(waiting[0].elder.as_ref().unwrap().id.as_str(), "e-1");
    assert!(waiting[0].already_offered.is_empty());
    assert!(s.bring_turn_forward(&inc.id, freed_at).await.unwrap());
    assert!(
        !s.bring_turn_forward(&inc.id, freed_at).await.unwrap(),
        "already due"
    );
    assert!(
        s.waiting_turns(freed_at, 10).await.unwrap().is_empty(),
        "due, not waiting"
    );
    let sec = Duration::seconds;
    assert!(s.escalate_due(t0 + sec(179), &r).await.unwrap().is_empty());
    assert_eq!(
        s.escalate_due(t0 + sec(180), &r).await.unwrap(),
        vec![inc.id.clone()]
    );
    let level =
        |i: Option<dispatcher::domain::IncidentDetail>| i.unwrap().incident.escalation_level;
    assert_eq!(level(s.incident(&inc.id).await.unwrap()), 1);
    // The radius grows with the level: the next dispatch is due now.
    assert!(claim(s, &inc.id, t0 + sec(180)).await.is_some());
    assert!(s.escalate_due(t0 + sec(300), &r).await.unwrap().is_empty());
    assert_eq!(s.escalate_due(t0 + sec(360), &r).await.unwrap().len(), 1);
    // The engine escalates at once when nobody is available.
    let up = s
        .escalate(&inc.id, "nobody available", t0 + sec(400), &r)
        .await
        .unwrap();
    assert_eq!(up.escalation_level, 3);
    let lines = timeline(s, &inc.id).await;
    assert_eq!(
        lines[1..],
        [
            "nobody could be offered; trying again in 30 s",
            "escalated to level 1: not accepted after 180 s",
            "escalated to level 2: not accepted after 360 s",
            "escalated to level 3: nobody available",
        ]
    );
    // A timer down for an hour escalates once, not twenty times.
    assert_eq!(s.escalate_due(t0 + sec(4000), &r).await.unwrap().len(), 1);
    assert!(s.escalate_due(t0 + sec(4001), &r).await.unwrap().is_empty());
    let _ = s
        .cancel(&inc.id, &sup(), "phoned the family", t0 + sec(4100), &r)
        .await
        .unwrap();
    assert!(
        s.escalate_due(t0 + Duration::days(1), &r)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.due_dispatches(t0 + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.escalate(&IncidentId::parse("inc-x").unwrap(), "x", t0, &r)
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) async fn going_off_duty_withdraws_offers(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    on_duty(s, "s-1").await;
    let s1 = steward_id("s-1");
    let t0 = day();
    let inc = open(s, "elder:e-1:call", Priority::Urgent, None, t0, &r).await;
    offer(s, &inc.id, &["s-1"], 1, t0).await;
    assert_eq!(s.live_offers_of(&s1).await.unwrap().len(), 1);
    let off = s
        .set_steward_duty(&s1, false, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!((off.on_duty, off.status), (false, StewardStatus::Offered));
    let head = s.stream_head().await.unwrap();
    let t1 = t0 + Duration::seconds(5);
    let touched = s
        .withdraw_offers_of(&s1, WithdrawReason::OffDuty, t1)
        .await
        .unwrap();
    assert_eq!(touched, vec![inc.id.clone()]);
    assert_eq!(status_of(s, "s-1").await, StewardStatus::OffDuty);
    assert!(s.live_offers_of(&s1).await.unwrap().is_empty());
    let detail = s.incident(&inc.id).await.unwrap().unwrap();
    assert_eq!(detail.offers[0].response, Some(OfferResponse::Withdrawn));
    assert_eq!(detail.incident.escalation_level, 0);
    assert_eq!(
        h.count("SELECT COUNT(*) FROM incidents WHERE failed_offers = 0")
            .await,
        1,
        "going off duty is not a failed offer"
    );
    assert_eq!(
        detail.timeline.last().unwrap().what,
        "offer to s-1 withdrawn: steward went off duty"
    );
    let turn = claim(s, &inc.id, t1).await.expect("due at once");
    assert_eq!(turn.live_offers, 0);
    let (events, _) = stream_since(s, head).await;
    assert_eq!(
        events,
        vec![
            ev("steward:s-1", "offer.withdrawn"),
            ev("supervisors", "steward"),
            ev("supervisors", "incident"),
        ]
    );
    let data = &s.stream_after(head, 1).await.unwrap()[0].data;
    assert_eq!(data["reason"], "off_duty");
    assert!(
        s.withdraw_offers_of(&s1, WithdrawReason::OffDuty, t1)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.withdraw_offers_of(&steward_id("s-9"), WithdrawReason::OffDuty, t1)
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Off duty, never offered again.
    let after_lease = t1 + DISPATCH_LEASE;
    let none = take(
        s,
        &inc.id,
        after_lease,
        plan(candidates(&["s-1"]), 1, after_lease),
    )
    .await
    .expect("due again after the lease")
    .offers;
    assert!(none.is_empty());
}

pub(crate) async fn supervisors_assign_and_reassign_by_hand(h: Harness) {
    let s = &*h.store;
    let r = rules();
    s.insert_elder(&elder("e-1")).await.unwrap();
    for id in ["s-1", "s-2", "s-3"] {
        on_duty(s, id).await;
    }
    s.insert_steward(&steward("s-4")).await.unwrap(); // off duty
    let (s1, s2, s3) = (steward_id("s-1"), steward_id("s-2"), steward_id("s-3"));
    let t0 = day();
    let a = open(s, "elder:e-1:a", Priority::Urgent, None, t0, &r).await;
    let b = open(s, "elder:e-1:b", Priority::Urgent, None, t0, &r).await;
    offer(s, &a.id, &["s-1"], 1, t0).await;
    offer(s, &b.id, &["s-2"], 1, t0).await;

    // A goes to s-2, who held B's offer: B gets it back, A's offer to s-1
    // is withdrawn.
    let t1 = t0 + Duration::seconds(20);
    let assigned = s.assign(&a.id, &s2, &sup(), t1, &r).await.unwrap();
    assert_eq!(
        (
            assigned.status,
            assigned.steward_id.clone(),
            assigned.acknowledged_at
        ),
        (IncidentState::Acknowledged, Some(s2.clone()), Some(t1))
    );
    assert_eq!(status_of(s, "s-2").await, StewardStatus::Busy);
    assert_eq!(status_of(s, "s-1").await, StewardStatus::Available);
    let turn = claim(s, &b.id, t1).await.expect("B is due again");
    assert_eq!(turn.live_offers, 0);
    let detail = s.incident(&a.id).await.unwrap().unwrap();
    assert_eq!(detail.offers[0].response, Some(OfferResponse::Withdrawn));
    assert_eq!(
        detail
            .timeline
            .last()
            .map(|l| (l.what.as_str(), l.actor.as_str())),
        Some(("assigned to Steward s-2 (s-2)", "user:sup"))
    );
    assert_eq!(
        s.assign(&a.id, &s2, &sup(), t1, &r).await.unwrap(),
        assigned
    );

    // Busy and off-duty stewards cannot be assigned.
    assert_eq!(
        code(s.assign(&b.id, &s2, &sup(), t1, &r).await),
        "steward_busy"
    );
    assert_eq!(
        code(s.assign(&b.id, &steward_id("s-4"), &sup(), t1, &r).await),
        "steward_busy"
    );
    assert!(matches!(
        s.assign(&b.id, &steward_id("s-9"), &sup(), t1, &r).await,
        Err(StoreError::NotFound(_))
    ));

    // Reassigned: s-2 is freed and told.
    let head = s.stream_head().await.unwrap();
    let moved = s.assign(&a.id, &s3, &sup(), t1, &r).await.unwrap();
    assert_eq!(moved.steward_id, Some(s3.clone()));
    assert_eq!(status_of(s, "s-2").await, StewardStatus::Available);
    assert_eq!(status_of(s, "s-3").await, StewardStatus::Busy);
    let (events, _) = stream_since(s, head).await;
    assert!(events.contains(&ev("steward:s-2", "offer.withdrawn")));
    assert!(events.contains(&ev("steward:s-3", "incident")));
    assert_eq!(
        timeline(s, &a.id).await.last().unwrap(),
        "reassigned from s-2 to Steward s-3 (s-3)"
    );
    let _ = s1;
    let _ = s.cancel(&a.id, &sup(), "done", t1, &r).await.unwrap();
    assert_eq!(status_of(s, "s-3").await, StewardStatus::Available);
    assert_eq!(code(s.assign(&a.id, &s3, &sup(), t1, &r).await), "not_open");
    assert_no_double_booking(&h, "after assignments").await;
}

fn statuses(
    stewards: &[dispatcher::domain::Steward],
) -> Vec<(dispatcher::domain::StewardId, StewardStatus)> {
    stewards.iter().map(|s| (s.id.clone(), s.status)).collect()
}
