//! The incident's life as pure transitions: an incident, a command and
//! the time in; the incident as it becomes, or a refusal, out. No I/O:
//! the store carries out what these decide, in one transaction, and says
//! the refusals to clients as conflicts.

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Incident, IncidentState, Offer, OfferResponse, StewardId};

/// Why the store refused a change; the API answers with it as
/// `{"error": {"code"}}` where a route names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictCode {
    /// A unique key is taken (a duplicate id, a second open incident).
    Taken,
    /// The offer expired (or was withdrawn) before the answer.
    OfferExpired,
    /// Another steward accepted first (or the incident was assigned), or,
    /// for a decline, the caller did.
    AlreadyTaken,
    /// Only the assigned steward may do this.
    NotAssigned,
    /// The incident is resolved or cancelled.
    NotOpen,
    /// The steward is off duty or busy with another incident.
    StewardBusy,
    /// The steward was never offered this incident.
    NoOffer,
    /// A steward with too many phones registered.
    TooManySubscriptions,
    /// A push endpoint registered by another steward's phone.
    SubscriptionTaken,
    /// The visit is already begun or done.
    VisitNotPlanned,
    /// The visit has not begun (check in at the door first), or is done.
    VisitNotInProgress,
}

impl ConflictCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Taken => "conflict",
            Self::OfferExpired => "offer_expired",
            Self::AlreadyTaken => "already_taken",
            Self::NotAssigned => "not_assigned",
            Self::NotOpen => "not_open",
            Self::StewardBusy => "steward_busy",
            Self::NoOffer => "no_offer",
            Self::TooManySubscriptions => "too_many_subscriptions",
            Self::SubscriptionTaken => "subscription_taken",
            Self::VisitNotPlanned => "visit_not_planned",
            Self::VisitNotInProgress => "visit_not_in_progress",
        }
    }
}

impl std::fmt::Display for ConflictCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the incident's state refuses: its code, and what to tell
/// a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Refusal {
    pub code: ConflictCode,
    pub detail: String,
}

impl Refusal {
    fn new(code: ConflictCode, detail: String) -> Self {
        Self { code, detail }
    }
}

/// A time as messages show it: `2026-11-28T16:00:30Z`.
pub fn when(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The refusal of anything on a resolved or cancelled incident.
pub fn not_open(incident: &Incident) -> Refusal {
    Refusal::new(
        ConflictCode::NotOpen,
        format!("incident {} is already {}", incident.id, incident.status),
    )
}

/// Whether `steward` may answer their offer of `incident` now. Accept and
/// decline share it: no offer at all, a closed incident, someone else
/// (or they) already took it, their offer ended, or it is past its
/// expiry though the timer has not yet expired it.
pub fn answerable(
    incident: &Incident,
    offer: Option<&Offer>,
    steward: &StewardId,
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let Some(offer) = offer else {
        return Err(Refusal::new(
            ConflictCode::NoOffer,
            format!("steward {steward} has no offer of incident {}", incident.id),
        ));
    };
    if !incident.status.is_open() {
        return Err(not_open(incident));
    }
    if incident.status != IncidentState::Dispatching {
        let at = incident
            .acknowledged_at
            .map(|t| format!(" at {}", when(t)))
            .unwrap_or_default();
        // API.md's code whoever took it; the message says who.
        let by = match &incident.steward_id {
            Some(s) if s == steward => "you".to_owned(),
            Some(s) => format!("steward {s}"),
            None => "someone else".to_owned(),
        };
        return Err(Refusal::new(
            ConflictCode::AlreadyTaken,
            format!("incident {} was taken by {by}{at}", incident.id),
        ));
    }
    match (offer.response, offer.responded_at) {
        (Some(response), at) => {
            let at = at.map(|t| format!(" at {}", when(t))).unwrap_or_default();
            Err(Refusal::new(
                ConflictCode::OfferExpired,
                format!("the offer to {steward} was {response}{at}"),
            ))
        }
        (None, _) if offer.expires_at <= now => Err(Refusal::new(
            ConflictCode::OfferExpired,
            format!(
                "the offer to {steward} expired at {}",
                when(offer.expires_at)
            ),
        )),
        (None, _) => Ok(()),
    }
}

/// The steward accepts their offer: the incident is `acknowledged` with
/// them. `None` when they already did (a retried tap changes nothing).
pub fn accept(
    incident: &Incident,
    offer: Option<&Offer>,
    steward: &StewardId,
    now: DateTime<Utc>,
) -> Result<Option<Incident>, Refusal> {
    if incident.status.is_open()
        && incident.steward_id.as_ref() == Some(steward)
        && offer.and_then(|o| o.response) == Some(OfferResponse::Accepted)
    {
        return Ok(None);
    }
    answerable(incident, offer, steward, now)?;
    let mut changed = incident.clone();
    changed.status = IncidentState::Acknowledged;
    changed.steward_id = Some(steward.clone());
    changed.acknowledged_at = Some(now);
    changed.updated_at = now;
    Ok(Some(changed))
}

/// The assigned steward is with the elder: `on_site`. `None` when they
/// already said so.
pub fn arrive(
    incident: &Incident,
    steward: &StewardId,
    now: DateTime<Utc>,
) -> Result<Option<Incident>, Refusal> {
    if !incident.status.is_open() {
        return Err(not_open(incident));
    }
    if incident.steward_id.as_ref() != Some(steward) {
        let who = match &incident.steward_id {
            Some(s) => format!("steward {s} is"),
            None => "nobody is yet".to_owned(),
        };
        return Err(Refusal::new(
            ConflictCode::NotAssigned,
            format!(
                "steward {steward} is not assigned to incident {}; {who}",
                incident.id
            ),
        ));
    }
    if incident.status == IncidentState::OnSite {
        return Ok(None);
    }
    let mut changed = incident.clone();
    changed.status = IncidentState::OnSite;
    changed.on_site_at = Some(now);
    changed.updated_at = now;
    Ok(Some(changed))
}

/// Whether `failed` more failed offers (declined or expired), on top of
/// `before`, reach a new multiple of `every`: then the incident escalates
/// (0: never on failures).
pub fn failures_escalate(before: i32, failed: i32, every: u32) -> bool {
    let Ok(every) = i32::try_from(every) else {
        return false;
    };
    every > 0 && failed > 0 && before.div_euclid(every) < (before + failed).div_euclid(every)
}

/// Whether the incident may be resolved, by its assigned steward
/// (`steward`) or by a supervisor (`None`).
pub fn resolvable(incident: &Incident, steward: Option<&StewardId>) -> Result<(), Refusal> {
    if !incident.status.is_open() {
        return Err(not_open(incident));
    }
    match steward {
        Some(s) if incident.steward_id.as_ref() != Some(s) => Err(Refusal::new(
            ConflictCode::NotAssigned,
            format!("steward {s} is not assigned to incident {}", incident.id),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IncidentId, IncidentKind, Priority};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn sid(s: &str) -> StewardId {
        StewardId::parse(s).unwrap()
    }

    fn incident(status: IncidentState, steward: Option<&str>) -> Incident {
        let at = t("2026-11-28T16:00:00Z");
        Incident {
            id: IncidentId::parse("inc-1").unwrap(),
            elder_id: None,
            device_id: None,
            kind: IncidentKind::Call,
            priority: Priority::Critical,
            status,
            created_at: at,
            updated_at: at,
            acknowledged_at: steward.map(|_| at),
            on_site_at: None,
            resolved_at: None,
            steward_id: steward.map(sid),
            escalation_level: 0,
            outcome: None,
            notes: None,
            event_count: 1,
            last_event_at: at,
            summary: "call".into(),
        }
    }

    fn offer(response: Option<OfferResponse>) -> Offer {
        Offer {
            id: "off-1".into(),
            incident_id: IncidentId::parse("inc-1").unwrap(),
            steward_id: sid("s-1"),
            offered_at: t("2026-11-28T16:00:00Z"),
            expires_at: t("2026-11-28T16:00:30Z"),
            response,
            responded_at: response.map(|_| t("2026-11-28T16:00:10Z")),
            distance_m: Some(420.0),
        }
    }

    fn code(r: Result<(), Refusal>) -> Option<&'static str> {
        r.err().map(|r| r.code.as_str())
    }

    #[test]
    fn answers_to_an_offer_are_checked_in_order() {
        let s1 = sid("s-1");
        let live = offer(None);
        let early = t("2026-11-28T16:00:20Z");
        let late = t("2026-11-28T16:00:30Z");
        let dispatching = incident(IncidentState::Dispatching, None);
        assert_eq!(
            code(answerable(&dispatching, Some(&live), &s1, early)),
            None
        );
        assert_eq!(
            code(answerable(&dispatching, None, &s1, early)),
            Some("no_offer")
        );
        assert_eq!(
            code(answerable(&dispatching, Some(&live), &s1, late)),
            Some("offer_expired"),
            "past its expiry, though the timer has not run"
        );
        let withdrawn = offer(Some(OfferResponse::Withdrawn));
        assert_eq!(
            code(answerable(&dispatching, Some(&withdrawn), &s1, early)),
            Some("offer_expired")
        );
        let taken = incident(IncidentState::Acknowledged, Some("s-2"));
        let e = answerable(&taken, Some(&withdrawn), &s1, early).unwrap_err();
        assert!(e.to_string().starts_with("already_taken: "), "{e}");
        assert!(e.to_string().contains("steward s-2"), "{e}");
        let closed = incident(IncidentState::Cancelled, None);
        assert_eq!(
            code(answerable(&closed, Some(&withdrawn), &s1, early)),
            Some("not_open")
        );
    }

    #[test]
    fn accepting_acknowledges_once_and_arriving_needs_the_assigned_steward() {
        let s1 = sid("s-1");
        let now = t("2026-11-28T16:00:20Z");
        let dispatching = incident(IncidentState::Dispatching, None);
        let accepted = accept(&dispatching, Some(&offer(None)), &s1, now)
            .unwrap()
            .expect("a change");
        assert_eq!(accepted.status, IncidentState::Acknowledged);
        assert_eq!(accepted.steward_id.as_ref(), Some(&s1));
        assert_eq!(accepted.acknowledged_at, Some(now));
        let retried = accept(
            &accepted,
            Some(&offer(Some(OfferResponse::Accepted))),
            &s1,
            now,
        );
        assert_eq!(retried, Ok(None), "a retried tap changes nothing");

        let e = arrive(&accepted, &sid("s-2"), now).unwrap_err();
        assert_eq!(e.code, ConflictCode::NotAssigned);
        let on_site = arrive(&accepted, &s1, now).unwrap().expect("a change");
        assert_eq!(on_site.status, IncidentState::OnSite);
        assert_eq!(on_site.on_site_at, Some(now));
        assert_eq!(arrive(&on_site, &s1, now), Ok(None));
        let closed = incident(IncidentState::Resolved, Some("s-1"));
        assert_eq!(
            arrive(&closed, &s1, now).unwrap_err().code,
            ConflictCode::NotOpen
        );

        assert_eq!(resolvable(&on_site, Some(&s1)), Ok(()));
        assert_eq!(resolvable(&on_site, None), Ok(()), "a supervisor");
        let e = resolvable(&on_site, Some(&sid("s-2"))).unwrap_err();
        assert_eq!(e.code, ConflictCode::NotAssigned);
        assert_eq!(
            resolvable(&closed, None).unwrap_err().code,
            ConflictCode::NotOpen
        );
    }

    #[test]
    fn failures_escalate_at_each_multiple() {
        assert!(!failures_escalate(0, 1, 2));
        assert!(failures_escalate(1, 1, 2));
        assert!(!failures_escalate(2, 1, 2));
        assert!(failures_escalate(3, 1, 2));
        assert!(failures_escalate(0, 2, 2), "two expiring together");
        assert!(failures_escalate(1, 2, 2));
        assert!(!failures_escalate(5, 1, 0), "0 turns it off");
    }
}
