//! Follow-ups (回访): after an incident is resolved, or a visit ended
//! with "follow-up wanted", someone calls or visits the elder within a
//! set time and records how they are, so nobody is forgotten once the
//! alarm or the visit is over.
//!
//! The rules here are pure: which follow-up a resolve makes
//! ([`after_resolve`]), which a visit's note makes ([`after_visit`]) and
//! which a completion asks for next
//! ([`FollowUpOutcome::next`]). The store keeps them
//! ([`crate::store::follow_ups`]); the API lets stewards complete or hand
//! them back and supervisors reassign them.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::incident::{Incident, Outcome, text_enum};
use super::{ElderId, FollowUpId, IncidentId, StewardId};

/// A call or a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpKind {
    Call,
    Visit,
}

/// `open` until someone records how the elder is; then `done`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpStatus {
    Open,
    Done,
}

/// How the elder was found at the follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpOutcome {
    /// Well; nothing more to do.
    Well,
    /// Someone must go and see them: a visit follows.
    NeedsVisit,
    /// Handed to a doctor, a social worker, the family.
    Referred,
    /// In hospital.
    Hospitalised,
    /// Nobody answered: a visit follows, so an elder who cannot answer is
    /// seen.
    Unreachable,
    /// The elder did not want it.
    Declined,
    Other,
}

text_enum!(FollowUpKind { Call => "call", Visit => "visit" });
text_enum!(FollowUpStatus { Open => "open", Done => "done" });
text_enum!(FollowUpOutcome {
    Well => "well",
    NeedsVisit => "needs_visit",
    Referred => "referred",
    Hospitalised => "hospitalised",
    Unreachable => "unreachable",
    Declined => "declined",
    Other => "other",
});

impl FollowUpOutcome {
    /// The follow-up this outcome asks for next: a visit when the elder
    /// needs one or could not be reached (an elder who does not answer
    /// may be on the floor), none otherwise.
    pub fn next(self) -> Option<FollowUpKind> {
        match self {
            Self::NeedsVisit | Self::Unreachable => Some(FollowUpKind::Visit),
            Self::Well | Self::Referred | Self::Hospitalised | Self::Declined | Self::Other => None,
        }
    }
}

/// What a follow-up follows: exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowsFrom {
    /// A resolved incident.
    Incident(IncidentId),
    /// A visit whose note asked for one (the visit's id).
    Visit(String),
}

impl FollowsFrom {
    pub fn incident(&self) -> Option<&IncidentId> {
        match self {
            Self::Incident(i) => Some(i),
            Self::Visit(_) => None,
        }
    }

    pub fn visit(&self) -> Option<&str> {
        match self {
            Self::Incident(_) => None,
            Self::Visit(v) => Some(v),
        }
    }
}

impl std::fmt::Display for FollowsFrom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Incident(i) => write!(f, "incident {i}"),
            Self::Visit(v) => write!(f, "visit {v}"),
        }
    }
}

/// One follow-up as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FollowUp {
    pub id: FollowUpId,
    /// The resolved incident it follows; none when it follows a visit.
    #[schema(value_type = Option<String>)]
    pub incident_id: Option<IncidentId>,
    /// The visit whose note asked for it; none when it follows an
    /// incident. Exactly one of the two is set.
    pub visit_id: Option<String>,
    /// The follow-up whose outcome asked for this one (`needs_visit`,
    /// `unreachable`); none for the first after the incident.
    pub follows_id: Option<FollowUpId>,
    pub elder_id: ElderId,
    /// Who is to call or visit; none while it needs someone (handed back,
    /// or nobody was assigned to the incident).
    pub steward_id: Option<StewardId>,
    pub kind: FollowUpKind,
    pub created_at: DateTime<Utc>,
    /// Call or visit by then.
    pub due_at: DateTime<Utc>,
    pub status: FollowUpStatus,
    /// Set when done.
    pub outcome: Option<FollowUpOutcome>,
    /// What the steward wants remembered (may be empty).
    pub note: String,
    pub done_at: Option<DateTime<Utc>>,
    /// Who completed it: `steward:{id}` or `user:{name}`.
    pub done_by: Option<String>,
    /// Open and past its due time, by the server's clock when read.
    pub overdue: bool,
}

impl FollowUp {
    /// What it follows; none only for a view made with neither (the
    /// store reads no such row: a CHECK refuses it).
    pub fn follows_from(&self) -> Option<FollowsFrom> {
        match (&self.incident_id, &self.visit_id) {
            (Some(i), None) => Some(FollowsFrom::Incident(i.clone())),
            (None, Some(v)) => Some(FollowsFrom::Visit(v.clone())),
            _ => None,
        }
    }

    /// Sets [`FollowUp::overdue`] by the clock.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.overdue = self.status == FollowUpStatus::Open && self.due_at < now;
        self
    }
}

/// One change of who is to go, for the record.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Reassignment {
    pub at: DateTime<Utc>,
    /// Who changed it: `steward:{id}` (a hand-back) or `user:{name}`.
    pub by: String,
    pub from_steward: Option<StewardId>,
    /// None: handed back, it needs someone.
    pub to_steward: Option<StewardId>,
    pub reason: String,
}

/// A follow-up with who it passed through.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FollowUpDetail {
    pub follow_up: FollowUp,
    /// Oldest first.
    pub reassignments: Vec<Reassignment>,
}

/// A follow-up to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFollowUp {
    pub id: FollowUpId,
    pub after: FollowsFrom,
    pub follows_id: Option<FollowUpId>,
    pub elder_id: ElderId,
    pub steward_id: Option<StewardId>,
    pub kind: FollowUpKind,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
}

/// How long after its creation a follow-up of each kind is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUpWithin {
    pub call: Duration,
    pub visit: Duration,
}

impl FollowUpWithin {
    pub fn of(self, kind: FollowUpKind) -> Duration {
        match kind {
            FollowUpKind::Call => self.call,
            FollowUpKind::Visit => self.visit,
        }
    }
}

/// The follow-up a resolve makes: for an elder's incident only (not a
/// technical one, not one without an elder), a visit after `hospital`,
/// else a call, assigned to the steward who resolved it or, when a
/// supervisor did, the one assigned to it (none: it needs someone).
pub fn after_resolve(
    incident: &Incident,
    outcome: Outcome,
    resolver: Option<&StewardId>,
    within: FollowUpWithin,
    now: DateTime<Utc>,
) -> Option<NewFollowUp> {
    // A late visit's incident is closed by the visit itself: its note is
    // the follow-up.
    if incident.kind.is_technical()
        || incident.kind == crate::domain::IncidentKind::VisitOverdue
        || outcome == Outcome::Cleared
    {
        return None;
    }
    let elder_id = incident.elder_id.clone()?;
    let kind = if outcome == Outcome::Hospital {
        FollowUpKind::Visit
    } else {
        FollowUpKind::Call
    };
    Some(NewFollowUp {
        id: FollowUpId::generate(),
        after: FollowsFrom::Incident(incident.id.clone()),
        follows_id: None,
        elder_id,
        steward_id: resolver.or(incident.steward_id.as_ref()).cloned(),
        kind,
        created_at: now,
        due_at: now + within.of(kind),
    })
}

/// The follow-up a visit's note makes when it asks for one: a call by
/// the steward who visited (`visitor`, who may have walked a visit planned
/// for nobody) or, when a supervisor ended it, the one it was planned for
/// (none: it needs someone).
pub fn after_visit(
    visit: &crate::domain::Visit,
    visitor: Option<&StewardId>,
    within: FollowUpWithin,
    now: DateTime<Utc>,
) -> NewFollowUp {
    NewFollowUp {
        id: FollowUpId::generate(),
        after: FollowsFrom::Visit(visit.id.clone()),
        follows_id: None,
        elder_id: visit.elder_id.clone(),
        steward_id: visitor.or(visit.steward_id.as_ref()).cloned(),
        kind: FollowUpKind::Call,
        created_at: now,
        due_at: now + within.of(FollowUpKind::Call),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IncidentKind, IncidentState, Priority};

    fn incident(kind: IncidentKind, elder: Option<&str>, steward: Option<&str>) -> Incident {
        let now = Utc::now();
        Incident {
            id: IncidentId::parse("inc-1").unwrap(),
            elder_id: elder.map(|e| ElderId::parse(e).unwrap()),
            device_id: None,
            kind,
            priority: Priority::Urgent,
            status: IncidentState::Resolved,
            created_at: now,
            updated_at: now,
            acknowledged_at: None,
            on_site_at: None,
            resolved_at: Some(now),
            steward_id: steward.map(|s| StewardId::parse(s).unwrap()),
            escalation_level: 0,
            outcome: None,
            notes: None,
            event_count: 1,
            last_event_at: now,
            summary: String::new(),
        }
    }

    const WITHIN: FollowUpWithin = FollowUpWithin {
        call: Duration::hours(24),
        visit: Duration::hours(72),
    };

    #[test]
    fn a_resolve_asks_for_a_call_or_after_hospital_a_visit() {
        let now = Utc::now();
        let i = incident(IncidentKind::Fall, Some("e-1"), Some("s-1"));
        let f = after_resolve(&i, Outcome::Assisted, None, WITHIN, now).unwrap();
        assert_eq!(f.kind, FollowUpKind::Call);
        assert_eq!(f.due_at, now + Duration::hours(24));
        assert_eq!(f.steward_id.unwrap().as_str(), "s-1");
        let resolver = StewardId::parse("s-2").unwrap();
        let f = after_resolve(&i, Outcome::Hospital, Some(&resolver), WITHIN, now).unwrap();
        assert_eq!(f.kind, FollowUpKind::Visit);
        assert_eq!(f.due_at, now + Duration::hours(72));
        assert_eq!(f.steward_id, Some(resolver));
        let nobody = incident(IncidentKind::Call, Some("e-1"), None);
        let f = after_resolve(&nobody, Outcome::Other, None, WITHIN, now).unwrap();
        assert_eq!(f.steward_id, None);
    }

    #[test]
    fn no_follow_up_for_a_device_or_without_an_elder() {
        let now = Utc::now();
        let tech = incident(IncidentKind::DeviceOffline, Some("e-1"), None);
        assert_eq!(
            after_resolve(&tech, Outcome::Assisted, None, WITHIN, now),
            None
        );
        let orphan = incident(IncidentKind::Call, None, None);
        assert_eq!(
            after_resolve(&orphan, Outcome::Assisted, None, WITHIN, now),
            None
        );
        let call = incident(IncidentKind::Call, Some("e-1"), None);
        assert_eq!(
            after_resolve(&call, Outcome::Cleared, None, WITHIN, now),
            None
        );
    }

    #[test]
    fn a_visit_asking_for_one_makes_a_call_for_whoever_visited() {
        let now = Utc::now();
        let visit = |planned_for: Option<&str>| crate::domain::Visit {
            id: "v-1".into(),
            elder_id: ElderId::parse("e-1").unwrap(),
            steward_id: planned_for.map(|s| StewardId::parse(s).unwrap()),
            due_on: now.date_naive(),
            window_start: now,
            window_end: now,
            status: crate::domain::VisitStatus::InProgress,
            started_at: Some(now),
            started_how: None,
            ended_at: None,
            done_by: None,
            note: None,
            overdue_at: None,
            incident_id: None,
        };
        let walker = StewardId::parse("s-2").unwrap();
        let f = after_visit(&visit(None), Some(&walker), WITHIN, now);
        assert_eq!(f.after, FollowsFrom::Visit("v-1".into()));
        assert_eq!(
            (f.kind, f.due_at),
            (FollowUpKind::Call, now + Duration::hours(24))
        );
        assert_eq!(
            f.steward_id.as_ref(),
            Some(&walker),
            "the visit was planned for nobody"
        );
        let f = after_visit(&visit(Some("s-1")), None, WITHIN, now);
        assert_eq!(
            f.steward_id.unwrap().as_str(),
            "s-1",
            "a supervisor ended it"
        );
        assert_eq!(
            after_visit(&visit(None), None, WITHIN, now).steward_id,
            None
        );
    }

    #[test]
    fn nobody_is_forgotten() {
        assert_eq!(
            FollowUpOutcome::Unreachable.next(),
            Some(FollowUpKind::Visit)
        );
        assert_eq!(
            FollowUpOutcome::NeedsVisit.next(),
            Some(FollowUpKind::Visit)
        );
        assert_eq!(FollowUpOutcome::Well.next(), None);
        for o in FollowUpOutcome::ALL {
            let json = serde_json::to_value(o).unwrap();
            assert_eq!(json, o.as_str(), "one spelling");
        }
    }
}
