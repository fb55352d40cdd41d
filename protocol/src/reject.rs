//! Why a device's message was refused. Each reason is a label of
//! `dispatcher_rejected_messages_total{reason=…}`, so the set is closed and
//! the names are stable.

use std::fmt;

/// The closed set of reasons a message is acknowledged but not acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The topic is not one of ours or its device id is malformed.
    BadTopic,
    /// Over 4 KiB.
    TooLarge,
    /// Not UTF-8 JSON, or not a JSON object.
    InvalidJson,
    /// `event_id`, `type` or `ts` is absent.
    MissingField,
    /// A field has the wrong JSON type (e.g. `type` is a number).
    WrongType,
    /// `event_id` is empty, too long or not printable ASCII.
    BadEventId,
    /// `ts` is not RFC 3339.
    BadTimestamp,
    /// `ts` is more than 24 h ahead of the dispatcher's clock.
    FutureTimestamp,
    /// `device_id` in the body differs from the topic's.
    DeviceMismatch,
    /// Over the device's rate limit: counted, not acted on, only a sample
    /// stored.
    RateLimited,
    /// A sensor reading no body or device can produce (`spo2: -5`, a heart
    /// rate of 900): a broken sensor, not an emergency.
    OutOfRange,
}

impl RejectReason {
    pub const ALL: [RejectReason; 11] = [
        Self::BadTopic,
        Self::TooLarge,
        Self::InvalidJson,
        Self::MissingField,
        Self::WrongType,
        Self::BadEventId,
        Self::BadTimestamp,
        Self::FutureTimestamp,
        Self::DeviceMismatch,
        Self::RateLimited,
        Self::OutOfRange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadTopic => "bad_topic",
            Self::TooLarge => "too_large",
            Self::InvalidJson => "invalid_json",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::BadEventId => "bad_event_id",
            Self::BadTimestamp => "bad_timestamp",
            Self::FutureTimestamp => "future_timestamp",
            Self::DeviceMismatch => "device_id_mismatch",
            Self::RateLimited => "rate_limited",
            Self::OutOfRange => "out_of_range",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: the reason for the counter and a detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for Rejection {}
