//! Domain types, parsed once at the edge (API bodies, device messages, the
//! store) so the rest of the code never re-checks them.

pub mod area;
pub mod care;
pub mod dispatch;
pub mod follow_up;
pub mod geo;
pub mod ids;
pub mod incident;
pub mod lifecycle;
pub mod named;
pub mod reach;
pub mod registry;
pub mod user;

pub use area::{Area, Scope};
pub use care::{CarePlan, CheckIn, ClockTime, SiteClock, Visit, VisitNote, VisitStatus};
pub use dispatch::{
    Actor, Candidate, DispatchTurn, FirstOffers, LiveOffer, OfferPlan, Planner, TakenTurn,
    WithdrawReason,
};
pub use follow_up::{
    FollowUp, FollowUpDetail, FollowUpKind, FollowUpOutcome, FollowUpStatus, FollowUpWithin,
    FollowsFrom, NewFollowUp, Reassignment,
};
pub use geo::{LatLon, OffTheGlobe};
pub use ids::{DeviceIdSchema, ElderId, FollowUpId, IncidentId, StewardId};
pub use incident::{
    CandidateNote, DedupKey, Delivery, Incident, IncidentDetail, IncidentKind, IncidentState,
    Offer, OfferResponse, Outcome, Priority, ResolveOutcome, TimelineEntry,
};
pub use protocol::{DeviceId, EventId};
pub use reach::{
    AssignedView, CloseNote, CloseReason, ContactChannel, Lang, NewSubscription, OfferView,
    PushSubscription, ReachStep, SubscriptionJson,
};
pub use registry::{Contact, Device, DeviceKind, Elder, Limits, Risks, Steward, StewardStatus};
pub use user::{Role, User};
