//! What pushes, SMS and calls say, in Simplified Chinese and English, in
//! the words the steward app uses. Only what a lock screen may show:
//! priority, kind, the elder's name, distance and time left.

use chrono::{DateTime, Utc};

use crate::domain::{CloseNote, CloseReason, IncidentKind, Lang, OfferView, Priority};

/// A notification's two lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    pub title: String,
    pub body: String,
}

pub fn priority(lang: Lang, p: Priority) -> &'static str {
    match (lang, p) {
        (Lang::Zh, Priority::Critical) => "危急",
        (Lang::Zh, Priority::Urgent) => "紧急",
        (Lang::Zh, Priority::Routine) => "一般",
        (Lang::Zh, Priority::Technical) => "设备",
        (Lang::En, Priority::Critical) => "Critical",
        (Lang::En, Priority::Urgent) => "Urgent",
        (Lang::En, Priority::Routine) => "Routine",
        (Lang::En, Priority::Technical) => "Technical",
    }
}

pub fn kind(lang: Lang, k: IncidentKind) -> &'static str {
    use IncidentKind::*;
    match (lang, k) {
        (Lang::Zh, Call) => "呼叫按钮被按下",
        (Lang::Zh, Fall) => "检测到跌倒",
        (Lang::Zh, Vitals) => "生命体征报警",
        (Lang::Zh, Smoke) => "烟雾报警",
        (Lang::Zh, Inactivity) => "长时间无活动",
        (Lang::Zh, DoorAtNight) => "夜间开门",
        (Lang::Zh, BedNoReturn) => "夜间离床未归",
        (Lang::Zh, BatteryLow) => "电量低",
        (Lang::Zh, Tamper) => "设备被拆动",
        (Lang::Zh, DeviceOffline) => "设备离线",
        (Lang::En, Call) => "Call button pressed",
        (Lang::En, Fall) => "Fall detected",
        (Lang::En, Vitals) => "Vital signs alarm",
        (Lang::En, Smoke) => "Smoke alarm",
        (Lang::En, Inactivity) => "No movement",
        (Lang::En, DoorAtNight) => "Door opened at night",
        (Lang::En, BedNoReturn) => "Out of bed, not back",
        (Lang::En, BatteryLow) => "Battery low",
        (Lang::En, Tamper) => "Device tampered",
        (Lang::En, DeviceOffline) => "Device offline",
    }
}

/// The notification's buttons.
pub fn accept(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "接受",
        Lang::En => "Accept",
    }
}

pub fn decline(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "拒绝",
        Lang::En => "Decline",
    }
}

fn elder(lang: Lang, name: Option<&str>) -> String {
    match (name, lang) {
        (Some(n), _) => n.to_owned(),
        (None, Lang::Zh) => "老人".into(),
        (None, Lang::En) => "an elder".into(),
    }
}

fn distance(lang: Lang, metres: Option<f64>) -> Option<String> {
    let m = metres.filter(|m| m.is_finite() && *m >= 0.0)?;
    Some(match (lang, m >= 1000.0) {
        (Lang::Zh, false) => format!("{m:.0} 米"),
        (Lang::Zh, true) => format!("{:.1} 公里", m / 1000.0),
        (Lang::En, false) => format!("{m:.0} m"),
        (Lang::En, true) => format!("{:.1} km", m / 1000.0),
    })
}

/// Whole seconds from `now` to the offer's expiry (0 once past).
pub fn seconds_left(view: &OfferView, now: DateTime<Utc>) -> i64 {
    (view.expires_at - now).num_seconds().max(0)
}

/// The lock screen's offer: "危急 · 检测到跌倒 — 格桑" / "420 米 · 25 秒内应答".
pub fn offer(lang: Lang, view: &OfferView, now: DateTime<Utc>) -> Lines {
    let who = elder(lang, view.elder_name.as_deref());
    let left = seconds_left(view, now);
    let title = format!(
        "{} · {} — {who}",
        priority(lang, view.priority),
        kind(lang, view.kind)
    );
    let answer = match lang {
        Lang::Zh => format!("{left} 秒内应答"),
        Lang::En => format!("answer within {left} s"),
    };
    let body = match distance(lang, view.distance_m) {
        Some(d) => match lang {
            Lang::Zh => format!("距您 {d} · {answer}"),
            Lang::En => format!("{d} away · {answer}"),
        },
        None => answer,
    };
    Lines { title, body }
}

/// The short line that replaces a closed offer's notification.
pub fn close(lang: Lang, note: &CloseNote) -> Lines {
    let who = elder(lang, note.elder_name.as_deref());
    let why = match (lang, note.reason) {
        (Lang::Zh, CloseReason::Accepted) => "您已接受",
        (Lang::Zh, CloseReason::Declined) => "您已拒绝",
        (Lang::Zh, CloseReason::Expired) => "超时未应答，已转给其他人",
        (Lang::Zh, CloseReason::Taken) => "其他人已接受",
        (Lang::Zh, CloseReason::Cancelled) => "事件已取消",
        (Lang::Zh, CloseReason::Resolved) => "事件已处理完毕",
        (Lang::Zh, CloseReason::Reassigned) => "主管已另行指派",
        (Lang::Zh, CloseReason::OffDuty) => "您已下班",
        (Lang::En, CloseReason::Accepted) => "You accepted it",
        (Lang::En, CloseReason::Declined) => "You declined it",
        (Lang::En, CloseReason::Expired) => "Not answered in time; passed to another steward",
        (Lang::En, CloseReason::Taken) => "Another steward took it",
        (Lang::En, CloseReason::Cancelled) => "The incident was cancelled",
        (Lang::En, CloseReason::Resolved) => "The incident was resolved",
        (Lang::En, CloseReason::Reassigned) => "A supervisor assigned someone",
        (Lang::En, CloseReason::OffDuty) => "You went off duty",
    };
    let title = match lang {
        Lang::Zh => format!("任务已结束：{who}"),
        Lang::En => format!("Offer ended: {who}"),
    };
    Lines {
        title,
        body: why.to_owned(),
    }
}

/// "Send me a test alert".
pub fn test(lang: Lang) -> Lines {
    match lang {
        Lang::Zh => Lines {
            title: "测试提醒".into(),
            body: "这部手机可以收到派单提醒。".into(),
        },
        Lang::En => Lines {
            title: "Test alert".into(),
            body: "This phone receives offers.".into(),
        },
    }
}

/// An offer as a text message: who and how far, how to answer, and the
/// link that opens it in the app (when the server knows its address).
pub fn offer_sms(lang: Lang, view: &OfferView, now: DateTime<Utc>, link: Option<&str>) -> String {
    let Lines { title, body } = offer(lang, view, now);
    let answer = match lang {
        Lang::Zh => "回复 1 接受，2 拒绝。",
        Lang::En => "Reply 1 to accept, 2 to decline.",
    };
    let mut text = match lang {
        Lang::Zh => format!("【养老急救】{title}，{body}。{answer}"),
        Lang::En => format!("[Eldercare] {title}: {body}. {answer}"),
    };
    if let Some(link) = link {
        text.push(' ');
        text.push_str(link);
    }
    text
}

/// An offer as a voice call says it.
pub fn offer_voice(lang: Lang, view: &OfferView, now: DateTime<Utc>) -> String {
    let Lines { title, body } = offer(lang, view, now);
    match lang {
        Lang::Zh => format!("养老急救派单。{title}。{body}。接受请按 1，拒绝请按 2。"),
        Lang::En => {
            format!("Eldercare dispatch. {title}. {body}. Press 1 to accept, or 2 to decline.")
        }
    }
}

/// What a reply is answered with.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyAnswer<'a> {
    Accepted {
        elder: Option<&'a str>,
    },
    Declined,
    /// The offer ended before the reply: how, and when.
    TooLate {
        what: &'a str,
        at: Option<DateTime<Utc>>,
    },
    /// The reply was neither yes nor no.
    NotUnderstood,
    /// Nothing was ever offered to them.
    NoOffer,
}

pub fn reply(lang: Lang, answer: &ReplyAnswer<'_>, utc_offset_min: i32) -> String {
    let local = |t: &DateTime<Utc>| {
        (*t + chrono::Duration::minutes(i64::from(utc_offset_min)))
            .format("%H:%M:%S")
            .to_string()
    };
    match (lang, answer) {
        (Lang::Zh, ReplyAnswer::Accepted { elder: e }) => format!(
            "已接受：请前往{}。打开应用查看地址和注意事项。",
            e.unwrap_or("老人家中")
        ),
        (Lang::En, ReplyAnswer::Accepted { elder: e }) => format!(
            "Accepted: please go to {}. Open the app for the address and what to know.",
            e.unwrap_or("the elder")
        ),
        (Lang::Zh, ReplyAnswer::Declined) => "已拒绝，将派给其他人。".into(),
        (Lang::En, ReplyAnswer::Declined) => "Declined; it goes to another steward.".into(),
        (Lang::Zh, ReplyAnswer::TooLate { what, at }) => match at {
            Some(t) => format!("该任务已于 {} 结束（{what}），无需前往。", local(t)),
            None => format!("该任务已结束（{what}），无需前往。"),
        },
        (Lang::En, ReplyAnswer::TooLate { what, at }) => match at {
            Some(t) => format!(
                "That offer ended at {} ({what}); you need not go.",
                local(t)
            ),
            None => format!("That offer has ended ({what}); you need not go."),
        },
        (Lang::Zh, ReplyAnswer::NotUnderstood) => "未能识别回复：回复 1 接受，2 拒绝。".into(),
        (Lang::En, ReplyAnswer::NotUnderstood) => {
            "Reply not understood: reply 1 to accept, 2 to decline.".into()
        }
        (Lang::Zh, ReplyAnswer::NoOffer) => "目前没有等待您应答的任务。".into(),
        (Lang::En, ReplyAnswer::NoOffer) => "No offer is waiting for your answer.".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IncidentId, StewardId};

    fn view() -> OfferView {
        OfferView {
            incident_id: IncidentId::parse("inc-1").unwrap(),
            offer_id: "off-1".into(),
            steward_id: StewardId::parse("s-1").unwrap(),
            priority: Priority::Critical,
            kind: IncidentKind::Fall,
            elder_name: Some("格桑".into()),
            distance_m: Some(420.4),
            expires_at: "2026-12-04T21:00:30Z".parse().unwrap(),
            repeat: 0,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_lock_screen_shows_priority_kind_name_distance_and_time_left() {
        let zh = offer(Lang::Zh, &view(), at("2026-12-04T21:00:05Z"));
        assert_eq!(zh.title, "危急 · 检测到跌倒 — 格桑");
        assert_eq!(zh.body, "距您 420 米 · 25 秒内应答");
        let en = offer(Lang::En, &view(), at("2026-12-04T21:00:20Z"));
        assert_eq!(en.title, "Critical · Fall detected — 格桑");
        assert_eq!(en.body, "420 m away · answer within 10 s");
        let mut far = view();
        far.distance_m = Some(2345.0);
        far.elder_name = None;
        let en = offer(Lang::En, &far, at("2026-12-04T21:01:00Z"));
        assert_eq!(en.title, "Critical · Fall detected — an elder");
        assert_eq!(en.body, "2.3 km away · answer within 0 s");
    }

    #[test]
    fn an_sms_says_how_to_answer_and_carries_the_link() {
        let t = offer_sms(
            Lang::Zh,
            &view(),
            at("2026-12-04T21:00:10Z"),
            Some("https://e.example/app/#link=x"),
        );
        assert!(t.starts_with("【养老急救】危急 · 检测到跌倒 — 格桑"), "{t}");
        assert!(t.contains("回复 1 接受，2 拒绝"), "{t}");
        assert!(t.ends_with(" https://e.example/app/#link=x"), "{t}");
        let v = offer_voice(Lang::En, &view(), at("2026-12-04T21:00:20Z"));
        assert!(v.contains("Press 1 to accept"), "{v}");
    }

    #[test]
    fn a_late_reply_is_answered_plainly_in_local_time() {
        let t = reply(
            Lang::En,
            &ReplyAnswer::TooLate {
                what: "expired",
                at: Some(at("2026-12-04T13:00:30Z")),
            },
            480,
        );
        assert_eq!(
            t,
            "That offer ended at 21:00:30 (expired); you need not go."
        );
    }
}
