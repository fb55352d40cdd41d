//! What pushes, SMS and calls say, in Simplified Chinese and English, in
//! the words the steward app uses. Only what a lock screen may show:
//! priority, kind, the elder's name, distance and time left.

use chrono::{DateTime, Utc};

use crate::domain::{
    AssignedView, CloseNote, CloseReason, IncidentKind, Lang, OfferView, Priority,
};

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
        (Lang::Zh, CheckinMissed) => "未按时报平安，请上门查看",
        (Lang::Zh, VisitOverdue) => "探访逾期",
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
        (Lang::En, CheckinMissed) => "Missed daily check-in: welfare check",
        (Lang::En, VisitOverdue) => "Visit overdue",
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

/// A distance as a voice reads it: units in words.
fn spoken_distance(lang: Lang, metres: Option<f64>) -> Option<String> {
    let m = metres.filter(|m| m.is_finite() && *m >= 0.0)?;
    Some(match (lang, m >= 1000.0) {
        (Lang::Zh, false) => format!("{m:.0} 米"),
        (Lang::Zh, true) => format!("{:.1} 公里", m / 1000.0),
        (Lang::En, false) => format!("{m:.0} metres"),
        (Lang::En, true) => format!("{:.1} kilometres", m / 1000.0),
    })
}

/// An offer's state in the steward's words.
fn ended_how(lang: Lang, response: &str) -> &'static str {
    match (lang, response) {
        (Lang::Zh, "accepted") => "已接受",
        (Lang::Zh, "declined") => "已拒绝",
        (Lang::Zh, "withdrawn") => "已撤回",
        (Lang::Zh, _) => "超时未应答",
        (Lang::En, "accepted") => "accepted",
        (Lang::En, "declined") => "declined",
        (Lang::En, "withdrawn") => "withdrawn",
        (Lang::En, _) => "not answered in time",
    }
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
    if note.reason == CloseReason::Accepted {
        return match lang {
            Lang::Zh => Lines {
                title: format!("已接受：{who}"),
                body: "请前往老人家中，打开应用查看地址和注意事项。".into(),
            },
            Lang::En => Lines {
                title: format!("Accepted: {who}"),
                body: "Go now: the app has the address and care notes.".into(),
            },
        };
    }
    let why = match (lang, note.reason) {
        (Lang::Zh, CloseReason::Accepted) => unreachable!("answered above"),
        (Lang::Zh, CloseReason::Declined) => "您已拒绝",
        (Lang::Zh, CloseReason::Expired) => "超时未应答",
        (Lang::Zh, CloseReason::Taken) => "其他服务员已接受",
        (Lang::Zh, CloseReason::Cancelled) => "事件已取消",
        (Lang::Zh, CloseReason::Resolved) => "事件已处理完毕",
        (Lang::Zh, CloseReason::Reassigned) => "主管已另行指派",
        (Lang::Zh, CloseReason::OffDuty) => "您已下班",
        (Lang::En, CloseReason::Accepted) => unreachable!("answered above"),
        (Lang::En, CloseReason::Declined) => "You declined it",
        (Lang::En, CloseReason::Expired) => "Not answered in time",
        (Lang::En, CloseReason::Taken) => "Another steward took it",
        (Lang::En, CloseReason::Cancelled) => "The incident was cancelled",
        (Lang::En, CloseReason::Resolved) => "The incident was resolved",
        (Lang::En, CloseReason::Reassigned) => "A supervisor assigned someone",
        (Lang::En, CloseReason::OffDuty) => "You went off duty",
    };
    let title = match lang {
        Lang::Zh => format!("派单已结束：{who}"),
        Lang::En => format!("Offer ended: {who}"),
    };
    Lines {
        title,
        body: why.to_owned(),
    }
}

/// A supervisor assigned the steward an incident.
pub fn assigned(lang: Lang, view: &AssignedView) -> Lines {
    let who = elder(lang, view.elder_name.as_deref());
    match lang {
        Lang::Zh => Lines {
            title: format!("主管已指派给您：{} — {who}", kind(lang, view.kind)),
            body: format!(
                "{}：请立即前往，打开应用查看地址和注意事项。",
                priority(lang, view.priority)
            ),
        },
        Lang::En => Lines {
            title: format!("Assigned to you: {} — {who}", kind(lang, view.kind)),
            body: format!(
                "{}: please go now; the app has the address and care notes.",
                priority(lang, view.priority)
            ),
        },
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

/// An offer as a text message: who and how far, how to answer (by reply
/// when the gateway's replies are taken, else in the app), and the link
/// that opens it in the app (when the server knows its address).
pub fn offer_sms(
    lang: Lang,
    view: &OfferView,
    now: DateTime<Utc>,
    link: Option<&str>,
    can_reply: bool,
) -> String {
    let Lines { title, body } = offer(lang, view, now);
    let answer = match (lang, can_reply) {
        (Lang::Zh, true) => "回复 1 接受，2 拒绝。",
        (Lang::Zh, false) => "请打开应用接受或拒绝。",
        (Lang::En, true) => "Reply 1 to accept, 2 to decline.",
        (Lang::En, false) => "Open the app to accept or decline.",
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

/// An offer as a voice call says it: words a speech engine reads, no
/// symbols.
pub fn offer_voice(lang: Lang, view: &OfferView, now: DateTime<Utc>, can_reply: bool) -> String {
    let who = elder(lang, view.elder_name.as_deref());
    let left = seconds_left(view, now);
    let (p, k) = (priority(lang, view.priority), kind(lang, view.kind));
    let far = spoken_distance(lang, view.distance_m);
    match lang {
        Lang::Zh => {
            let far = far.map(|d| format!("距您 {d}，")).unwrap_or_default();
            let answer = if can_reply {
                "接受请按 1，拒绝请按 2。"
            } else {
                "请打开应用接受或拒绝。"
            };
            format!("养老急救派单。{p}，{k}，老人{who}，{far}请在 {left} 秒内应答。{answer}")
        }
        Lang::En => {
            let far = far.map(|d| format!(", {d} from you")).unwrap_or_default();
            let answer = if can_reply {
                "Press 1 to accept, or 2 to decline."
            } else {
                "Open the app to accept or decline."
            };
            format!(
                "Eldercare dispatch. {p}: {k}, for {who}{far}. Answer within {left} seconds. {answer}"
            )
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
    /// The incident is theirs already (accepted in the app, assigned).
    Assigned {
        elder: Option<&'a str>,
    },
    /// The offer ended (how: `accepted`, `declined`, `withdrawn`,
    /// `expired`) and the incident is closed or someone else's.
    TooLate {
        what: &'a str,
        at: Option<DateTime<Utc>>,
    },
    /// The offer ended, but the incident still waits for someone.
    StillOpen {
        what: &'a str,
        at: Option<DateTime<Utc>>,
    },
    /// The reply was neither yes nor no.
    NotUnderstood,
    /// Nothing was offered to them by text or call.
    NoOffer,
}

pub fn reply(lang: Lang, answer: &ReplyAnswer<'_>, utc_offset_min: i32) -> String {
    let local = |t: &Option<DateTime<Utc>>| {
        t.map(|t| {
            (t + chrono::Duration::minutes(i64::from(utc_offset_min)))
                .format("%H:%M:%S")
                .to_string()
        })
    };
    let home = |e: &Option<&str>| match (lang, e) {
        (Lang::Zh, Some(n)) => format!("{n}家"),
        (Lang::Zh, None) => "老人家中".to_owned(),
        (Lang::En, Some(n)) => format!("{n}'s home"),
        (Lang::En, None) => "the elder's home".to_owned(),
    };
    match (lang, answer) {
        (Lang::Zh, ReplyAnswer::Accepted { elder: e }) => {
            format!("已接受：请前往{}。打开应用查看地址和注意事项。", home(e))
        }
        (Lang::En, ReplyAnswer::Accepted { elder: e }) => format!(
            "Accepted: please go to {}. The app has the address and care notes.",
            home(e)
        ),
        (Lang::Zh, ReplyAnswer::Assigned { elder: e }) => {
            format!("此事件已由您负责：请前往{}。", home(e))
        }
        (Lang::En, ReplyAnswer::Assigned { elder: e }) => {
            format!("This incident is yours: please go to {}.", home(e))
        }
        (Lang::Zh, ReplyAnswer::Declined) => "已拒绝，将另行派单。".into(),
        (Lang::En, ReplyAnswer::Declined) => "Declined; it goes to someone else.".into(),
        (Lang::Zh, ReplyAnswer::TooLate { what, at }) => {
            let how = ended_how(lang, what);
            match local(at) {
                Some(t) => format!("该派单已于 {t} 结束（{how}），无需前往。"),
                None => format!("该派单已结束（{how}），无需前往。"),
            }
        }
        (Lang::En, ReplyAnswer::TooLate { what, at }) => {
            let how = ended_how(lang, what);
            match local(at) {
                Some(t) => format!("That offer ended at {t} ({how}); you need not go."),
                None => format!("That offer has ended ({how}); you need not go."),
            }
        }
        (Lang::Zh, ReplyAnswer::StillOpen { what, at }) => {
            let how = ended_how(lang, what);
            let when = local(at).map(|t| format!("于 {t} ")).unwrap_or_default();
            format!(
                "该派单已{when}结束（{how}），但事件仍在等待处理：如能前往，请打开应用或致电服务中心。"
            )
        }
        (Lang::En, ReplyAnswer::StillOpen { what, at }) => {
            let how = ended_how(lang, what);
            let when = local(at).map(|t| format!(" at {t}")).unwrap_or_default();
            format!(
                "That offer ended{when} ({how}), but the incident is still waiting: if you can go, open the app or call the centre."
            )
        }
        (Lang::Zh, ReplyAnswer::NotUnderstood) => "未能识别回复：回复 1 接受，2 拒绝。".into(),
        (Lang::En, ReplyAnswer::NotUnderstood) => {
            "Reply not understood: reply 1 to accept, 2 to decline.".into()
        }
        (Lang::Zh, ReplyAnswer::NoOffer) => "目前没有通过短信或电话等待您应答的派单。".into(),
        (Lang::En, ReplyAnswer::NoOffer) => {
            "No offer sent to you by text or call is waiting for your answer.".into()
        }
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
            true,
        );
        assert!(t.starts_with("【养老急救】危急 · 检测到跌倒 — 格桑"), "{t}");
        assert!(t.contains("回复 1 接受，2 拒绝"), "{t}");
        assert!(t.ends_with(" https://e.example/app/#link=x"), "{t}");
        let v = offer_voice(Lang::En, &view(), at("2026-12-04T21:00:20Z"), true);
        assert_eq!(
            v,
            "Eldercare dispatch. Critical: Fall detected, for 格桑, 420 metres from you. \
             Answer within 10 seconds. Press 1 to accept, or 2 to decline."
        );
        let v = offer_voice(Lang::Zh, &view(), at("2026-12-04T21:00:20Z"), false);
        assert_eq!(
            v,
            "养老急救派单。危急，检测到跌倒，老人格桑，距您 420 米，请在 10 秒内应答。请打开应用接受或拒绝。"
        );
        // Without a reply path, an SMS asks for no reply.
        let t = offer_sms(Lang::En, &view(), at("2026-12-04T21:00:20Z"), None, false);
        assert!(t.ends_with("Open the app to accept or decline."), "{t}");
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
            "That offer ended at 21:00:30 (not answered in time); you need not go."
        );
        let t = reply(
            Lang::Zh,
            &ReplyAnswer::StillOpen {
                what: "expired",
                at: Some(at("2026-12-04T13:00:30Z")),
            },
            480,
        );
        assert_eq!(
            t,
            "该派单已于 21:00:30 结束（超时未应答），但事件仍在等待处理：如能前往，请打开应用或致电服务中心。"
        );
        let t = reply(
            Lang::Zh,
            &ReplyAnswer::Accepted {
                elder: Some("格桑"),
            },
            480,
        );
        assert_eq!(t, "已接受：请前往格桑家。打开应用查看地址和注意事项。");
    }
}
