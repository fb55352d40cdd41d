//! Which messages reach a steward about one offer, and when: the
//! priority's ladder (push at 0 s, SMS at 10 s, a call at 20 s…) and the
//! push repeated every `notify.repush_s` so a phone in a pocket rings
//! again, all before the offer expires. Pure: the engine's planner calls
//! it and the store writes one outbox row per step with the offer.

use chrono::{DateTime, Duration, Utc};

use crate::domain::{ContactChannel, Priority, ReachStep};
use crate::settings::NotifySettings;

/// A repeat with less time left than this is not sent: it could not be
/// answered before the offer expires.
pub const MIN_LEAD: Duration = Duration::seconds(3);
/// Repeats of one offer's push at most, whatever the settings.
pub const MAX_REPEATS: u32 = 20;

/// The steps for an offer of `priority` made at `now` and expiring at
/// `expires_at`, in time order. Steps of a channel without its gateway,
/// and steps at or after the expiry, are left out.
pub fn reach_steps(
    notify: &NotifySettings,
    priority: Priority,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Vec<ReachStep> {
    let mut steps: Vec<ReachStep> = notify
        .ladder
        .of(priority)
        .iter()
        .filter(|s| notify.can_use(s.channel))
        .map(|s| ReachStep {
            channel: s.channel,
            at: now + Duration::seconds(i64::from(s.after_s)),
            repeat: 0,
        })
        .filter(|s| s.at < expires_at)
        .collect();
    // One message per channel and time is enough, even if the ladder
    // names two.
    steps.sort_by_key(|s| (s.at, s.channel as u8));
    steps.dedup_by(|a, b| a.channel == b.channel && a.at == b.at);
    let first_push = steps
        .iter()
        .filter(|s| s.channel == ContactChannel::Push)
        .map(|s| s.at)
        .min();
    if let (Some(first), true) = (first_push, notify.repush_s > 0) {
        let every = Duration::seconds(i64::from(notify.repush_s));
        for repeat in 1..=MAX_REPEATS {
            let at = first + every * repeat as i32;
            if at + MIN_LEAD > expires_at {
                break;
            }
            steps.push(ReachStep {
                channel: ContactChannel::Push,
                at,
                repeat,
            });
        }
    }
    steps.sort_by_key(|s| (s.at, s.channel as u8));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{GatewaySettings, LadderStep};

    fn t0() -> DateTime<Utc> {
        "2026-12-04T21:00:00Z".parse().unwrap()
    }

    fn gateway() -> GatewaySettings {
        GatewaySettings {
            url: "http://127.0.0.1:9/send".into(),
            method: "POST".into(),
            headers: Default::default(),
            content_type: "application/json".into(),
            body: r#"{"to":"{phone}","text":"{text}"}"#.into(),
            max_attempts: 3,
            inbound: None,
        }
    }

    fn shape(steps: &[ReachStep]) -> Vec<(&'static str, i64, u32)> {
        steps
            .iter()
            .map(|s| (s.channel.as_str(), (s.at - t0()).num_seconds(), s.repeat))
            .collect()
    }

    #[test]
    fn a_critical_offer_pushes_texts_calls_and_pushes_again_before_it_expires() {
        let notify = NotifySettings {
            sms: Some(gateway()),
            voice: Some(gateway()),
            ..Default::default()
        };
        let s = reach_steps(
            &notify,
            Priority::Critical,
            t0(),
            t0() + Duration::seconds(30),
        );
        assert_eq!(
            shape(&s),
            [
                ("push", 0, 0),
                ("sms", 10, 0),
                ("push", 15, 1),
                ("voice", 15, 0)
            ]
        );
        let s = reach_steps(
            &notify,
            Priority::Urgent,
            t0(),
            t0() + Duration::seconds(45),
        );
        assert_eq!(
            shape(&s),
            [
                ("push", 0, 0),
                ("push", 15, 1),
                ("sms", 20, 0),
                ("push", 30, 2)
            ]
        );
    }

    #[test]
    fn channels_without_a_gateway_and_steps_past_the_expiry_are_left_out() {
        let notify = NotifySettings::default();
        let s = reach_steps(
            &notify,
            Priority::Critical,
            t0(),
            t0() + Duration::seconds(30),
        );
        assert_eq!(shape(&s), [("push", 0, 0), ("push", 15, 1)]);
        // 16 s left at the repeat: 3 s is the least worth ringing for.
        let s = reach_steps(
            &notify,
            Priority::Critical,
            t0(),
            t0() + Duration::seconds(17),
        );
        assert_eq!(shape(&s), [("push", 0, 0)]);
        let s = reach_steps(
            &notify,
            Priority::Critical,
            t0(),
            t0() + Duration::seconds(18),
        );
        assert_eq!(shape(&s), [("push", 0, 0), ("push", 15, 1)]);
    }

    #[test]
    fn no_repeats_when_turned_off_and_never_more_than_the_cap() {
        let mut notify = NotifySettings {
            repush_s: 0,
            ..Default::default()
        };
        let s = reach_steps(
            &notify,
            Priority::Routine,
            t0(),
            t0() + Duration::seconds(90),
        );
        assert_eq!(shape(&s), [("push", 0, 0)]);
        notify.repush_s = 1;
        let s = reach_steps(&notify, Priority::Routine, t0(), t0() + Duration::hours(1));
        assert_eq!(s.len(), 1 + MAX_REPEATS as usize);
    }

    #[test]
    fn a_ladder_without_push_has_no_repeats() {
        let mut notify = NotifySettings {
            sms: Some(gateway()),
            ..Default::default()
        };
        notify.ladder.urgent = vec![LadderStep {
            channel: ContactChannel::Sms,
            after_s: 5,
        }];
        let s = reach_steps(
            &notify,
            Priority::Urgent,
            t0(),
            t0() + Duration::seconds(45),
        );
        assert_eq!(shape(&s), [("sms", 5, 0)]);
    }

    #[test]
    fn steps_too_late_to_answer_are_named_at_start_up() {
        let mut notify = NotifySettings {
            sms: Some(gateway()),
            voice: Some(gateway()),
            ..Default::default()
        };
        let dispatch = crate::settings::DispatchSettings::default();
        assert_eq!(notify.warnings(&dispatch, false), Vec::<String>::new());
        notify.ladder.critical.push(LadderStep {
            channel: ContactChannel::Voice,
            after_s: 25,
        });
        notify.ladder.urgent.push(LadderStep {
            channel: ContactChannel::Sms,
            after_s: 60,
        });
        let w = notify.warnings(&dispatch, true);
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(w[0].starts_with("notify.push.subject"), "{w:#?}");
        assert!(w[1].contains("leaves 5 s to answer"), "{w:#?}");
        assert!(w[2].contains("never happens"), "{w:#?}");
        // Without gateways, their steps are skipped quietly.
        let quiet = NotifySettings::default().warnings(&dispatch, false);
        assert_eq!(quiet, Vec::<String>::new());
    }
}
