//! `POST /api/v1/notify/inbound/{sms|voice}`: a steward answered an offer
//! by SMS (`1` / `2`, 接 / 拒) or by a key on the call, and the gateway
//! posts it here, signed with the inbound secret of the settings.
//!
//! Anything not signed, from a number no steward has, or not a yes or a
//! no gets a clear error and changes nothing. A reply after the offer
//! ended is answered plainly ("that offer ended at 21:05:35"). The answer
//! is in the response (`reply`, for a gateway that speaks or texts it
//! back) and, for SMS, also sent as a text.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::extract::ApiPath;
use super::lifecycle::{Answer, answer_offer};
use super::routes::Routes;
use super::{ApiError, AppState};
use crate::dispatch::{Changed, after_commit};
use crate::domain::{
    ContactChannel, Incident, IncidentId, IncidentState, Lang, Offer, OfferResponse, Steward,
};
use crate::notify::reply::{self, ReplyCode};
use crate::notify::text::{self, ReplyAnswer};
use crate::store::dispatch::Channel;
use crate::store::notices::{NewOutbox, outbox_id};

pub fn routes() -> Routes {
    Routes::new().post("/api/v1/notify/inbound/{channel}", inbound)
}

/// What a reply did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyResult {
    /// `accepted` or `declined`; for an offer already over `assigned`
    /// (it is theirs), `still_open` (it waits for someone) or `too_late`;
    /// `no_offer` when nothing was asked of them on this channel.
    pub result: &'static str,
    #[schema(value_type = Option<String>)]
    pub incident_id: Option<IncidentId>,
    /// The answer for the steward, in their language.
    pub reply: String,
}

/// A steward's reply, as a gateway posts it.
#[utoipa::path(post, path = "/api/v1/notify/inbound/{channel}", tag = "incidents",
    params(("channel" = String, Path, description = "`sms` or `voice`")),
    request_body(content = Object, description = "The gateway's JSON or form body; the fields named by notify.{channel}.inbound"),
    responses(
        (status = 200, body = ReplyResult),
        (status = 401, description = "`bad_signature`", body = ErrorBody),
        (status = 404, description = "No inbound for this channel, or `unknown_phone`", body = ErrorBody),
        (status = 422, description = "`unknown_reply` (neither yes nor no) or a missing field", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(channel = %channel))]
pub async fn inbound(
    State(state): State<AppState>,
    ApiPath(channel): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ReplyResult>, ApiError> {
    let channel = match channel.as_str() {
        "sms" => ContactChannel::Sms,
        "voice" => ContactChannel::Voice,
        _ => {
            return Err(ApiError::NotFound(format!(
                "no inbound channel {channel:?}; use sms or voice"
            )));
        }
    };
    let notify = &state.settings.notify;
    let Some(inbound) = notify.gateway(channel).and_then(|g| g.inbound.as_ref()) else {
        return Err(ApiError::NotFound(format!(
            "replies by {} are not configured (notify.{}.inbound)",
            channel.as_str(),
            channel.as_str()
        )));
    };
    let signature = headers
        .get(inbound.signature_header.as_str())
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !reply::signature_ok(inbound.secret.expose().as_bytes(), &body, signature) {
        tracing::warn!("inbound reply with a bad or missing signature refused");
        return Err(ApiError::Refused {
            code: "bad_signature",
            message: format!(
                "the {} header is missing or is not the HMAC-SHA256 of the body under the inbound secret",
                inbound.signature_header
            ),
        });
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let fields = reply::fields(&body, content_type).map_err(|e| ApiError::invalid_body("", e))?;
    let field = |name: &str| -> Result<String, ApiError> {
        fields
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                ApiError::invalid_body(name, "missing (notify inbound settings name this field)")
            })
    };
    let from = field(&inbound.from_field)?;
    let said = field(&inbound.text_field)?;

    // A gateway that echoes the offer it asked about ({offer_id} in its
    // template) binds the reply to that offer.
    let about = fields
        .get(&inbound.offer_field)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());

    let steward = whose_phone(&state, &from).await?;
    let lang = Lang::of_steward(&steward.languages, notify.language);
    let offset = state.settings.rules.night.utc_offset_min;
    let Some(code) = reply::parse_code(&said) else {
        let reply = text::reply(lang, &ReplyAnswer::NotUnderstood, offset);
        // One "not understood" a steward per while: an auto-responder on
        // the other end must not start a conversation of machines.
        if state.reach.may_answer_unclear(&steward.id) {
            tell(&state, channel, &steward, None, &reply, lang).await;
        }
        return Err(ApiError::Unprocessable {
            code: "unknown_reply",
            message: reply,
        });
    };
    let asked = asked_about(&state, &steward, channel, about.as_deref()).await?;
    let (result, incident_id, answer_text) = match asked {
        Asked::Live(offer) => answer(&state, &steward, &offer, code, lang, offset).await?,
        Asked::Ended(offer) => {
            let (result, said) = ended(&state, &steward, &offer, lang, offset).await?;
            (result, Some(offer.incident_id.clone()), said)
        }
        Asked::Nothing => (
            "no_offer",
            None,
            text::reply(lang, &ReplyAnswer::NoOffer, offset),
        ),
    };
    tell(
        &state,
        channel,
        &steward,
        incident_id.as_ref(),
        &answer_text,
        lang,
    )
    .await;
    tracing::info!(steward = %steward.id, result, "reply taken");
    Ok(Json(ReplyResult {
        result,
        incident_id,
        reply: answer_text,
    }))
}

/// The steward whose phone number this is; 404 `unknown_phone` if none.
/// Several stewards on one number: the one with a live offer answers.
async fn whose_phone(state: &AppState, from: &str) -> Result<Steward, ApiError> {
    let matching: Vec<Steward> = state
        .store
        .stewards()
        .await?
        .into_iter()
        .filter(|s| reply::same_phone(&s.phone, from))
        .collect();
    if matching.len() > 1 {
        for s in &matching {
            if !state.store.live_offers_of(&s.id).await?.is_empty() {
                return Ok(s.clone());
            }
        }
    }
    matching
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Missing {
            code: "unknown_phone",
            message: format!(
                "no steward has the phone number {}; check the steward's phone in the registry",
                redacted(from)
            ),
        })
}

/// A phone number in a message: its last four digits.
fn redacted(phone: &str) -> String {
    let d = reply::digits(phone);
    let tail = &d[d.len().saturating_sub(4)..];
    format!("…{tail}")
}

async fn answer(
    state: &AppState,
    steward: &Steward,
    offer: &Offer,
    code: ReplyCode,
    lang: Lang,
    offset: i32,
) -> Result<(&'static str, Option<IncidentId>, String), ApiError> {
    let what = match code {
        ReplyCode::Accept => Answer::Accept,
        ReplyCode::Decline => Answer::Decline,
    };
    match answer_offer(state, &offer.incident_id, &steward.id, what).await {
        Ok(incident) => {
            let elder = elder_name(state, &incident).await;
            let (result, said) = match code {
                ReplyCode::Accept => (
                    "accepted",
                    ReplyAnswer::Accepted {
                        elder: elder.as_deref(),
                    },
                ),
                ReplyCode::Decline => ("declined", ReplyAnswer::Declined),
            };
            Ok((
                result,
                Some(offer.incident_id.clone()),
                text::reply(lang, &said, offset),
            ))
        }
        // Ended between our read and the answer: as late as any.
        Err(ApiError::Conflict { .. } | ApiError::NotFound(_)) => {
            let now_offer = state
                .store
                .offer(&offer.id)
                .await?
                .unwrap_or_else(|| offer.clone());
            let (result, said) = ended(state, steward, &now_offer, lang, offset).await?;
            Ok((result, Some(offer.incident_id.clone()), said))
        }
        Err(other) => Err(other),
    }
}

/// Which offer a reply answers.
enum Asked {
    /// Live, and asked about on this channel.
    Live(Offer),
    /// Asked about, but over.
    Ended(Offer),
    /// Nothing was asked of them on this channel.
    Nothing,
}

/// The offer a reply is about: the one the gateway names, or the
/// steward's live offer if a text (or call) about it reached them, or
/// their last one. A key pressed on an old call never accepts an offer
/// the steward was not told of.
async fn asked_about(
    state: &AppState,
    steward: &Steward,
    channel: ContactChannel,
    named: Option<&str>,
) -> Result<Asked, ApiError> {
    let now = state.clock.now();
    let live_now = |o: &Offer| o.response.is_none() && o.expires_at > now;
    if let Some(id) = named {
        return Ok(match state.store.offer(id).await? {
            Some(o) if o.steward_id == steward.id && live_now(&o) => Asked::Live(o),
            Some(o) if o.steward_id == steward.id => Asked::Ended(o),
            _ => Asked::Nothing,
        });
    }
    let on = [channel.as_str()];
    for offer in state.store.live_offers_of(&steward.id).await? {
        if state.store.reached_by(&offer.id, &on).await? {
            return Ok(Asked::Live(offer));
        }
    }
    Ok(match state.store.last_offer_of(&steward.id).await? {
        Some(o) if state.store.reached_by(&o.id, &on).await? => Asked::Ended(o),
        _ => Asked::Nothing,
    })
}

/// The answer to a reply about an offer that is over: theirs already, the
/// incident still waiting for someone, or nothing more to do.
async fn ended(
    state: &AppState,
    steward: &Steward,
    offer: &Offer,
    lang: Lang,
    offset: i32,
) -> Result<(&'static str, String), ApiError> {
    // Expired when its time ran out, whenever the timer noticed.
    let (what, at) = match offer.response {
        None | Some(OfferResponse::Expired) => ("expired", Some(offer.expires_at)),
        Some(r) => (r.as_str(), offer.responded_at),
    };
    let incident = state
        .store
        .incident(&offer.incident_id)
        .await?
        .map(|d| d.incident);
    let elder = match &incident {
        Some(i) => elder_name(state, i).await,
        None => None,
    };
    let (result, said) = match incident {
        Some(i) if i.status.is_open() && i.steward_id.as_ref() == Some(&steward.id) => (
            "assigned",
            ReplyAnswer::Assigned {
                elder: elder.as_deref(),
            },
        ),
        Some(i) if i.status == IncidentState::Dispatching => {
            ("still_open", ReplyAnswer::StillOpen { what, at })
        }
        _ => ("too_late", ReplyAnswer::TooLate { what, at }),
    };
    Ok((result, text::reply(lang, &said, offset)))
}

/// The incident's elder's name, for the answer; none if it cannot be read.
async fn elder_name(state: &AppState, incident: &Incident) -> Option<String> {
    let elder = state
        .store
        .elder(incident.elder_id.as_ref()?)
        .await
        .ok()??;
    Some(elder.name)
}

/// Texts the answer back, when it came by SMS (a call hears `reply`).
async fn tell(
    state: &AppState,
    channel: ContactChannel,
    steward: &Steward,
    incident: Option<&IncidentId>,
    said: &str,
    lang: Lang,
) {
    if channel != ContactChannel::Sms {
        return;
    }
    let now = state.clock.now();
    let row = NewOutbox {
        id: outbox_id(now),
        incident_id: incident.map(ToString::to_string),
        channel: Channel::Sms,
        target: steward.id.to_string(),
        event: crate::notify::REPLY.to_owned(),
        payload: serde_json::json!({"phone": steward.phone, "text": said, "lang": lang}),
        created_at: now,
        due_at: now,
        offer_id: None,
        steward_id: Some(steward.id.to_string()),
    };
    match state.store.queue_outbox(vec![row]).await {
        Ok(()) => after_commit(&state.hub, &state.engine, Changed::stream()),
        Err(e) => tracing::warn!(error = %e, "could not queue the answer to a reply"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_in_messages_show_only_their_end() {
        assert_eq!(super::redacted("+86 139 0000 0101"), "…0101");
        assert_eq!(super::redacted("12"), "…12");
    }
}
