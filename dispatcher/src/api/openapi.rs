//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! attributes and the types' `ToSchema`. A test checks it names every
//! route the router serves; `tests/tests/openapi.rs` runs schemathesis
//! against it and fails on any answer or limit it does not declare.
//!
//! Declared once, here, rather than on every route: the answers the
//! shared extractors give ([`CommonAnswers`]): a route with
//! `security(("bearer" = []))` may answer 401; one with a
//! `request_body` 400 (not JSON), 413 (over [`super::BODY_LIMIT`]), 415
//! (not `application/json`) and 422 (JSON of the wrong shape); one with
//! path or query parameters 400. A route declares only its own answers
//! (403 for a role, 404, 409, 503 …); one it declares itself is kept.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use super::{
    areas, auth, care, config, devices, duty, elders, events, follow_ups, inbound, incidents,
    lifecycle, offer_tokens, ops, push, reachability, reports, sim, stewards, stream, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Eldercare dispatcher",
        description = "Device events in, stewards out. Errors are \
            `{\"error\": {\"code\", \"message\"}}`; every `/api/v1` route but login \
            takes `Authorization: Bearer <token>` from `POST /api/v1/auth/login`. \
            Any route may answer 503 `overloaded` with `Retry-After` when the server \
            holds as many connections as it allows and none is idle.",
    ),
    paths(
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi,
        auth::login,
        auth::me,
        auth::logout,
        elders::list,
        elders::create,
        elders::read,
        elders::update,
        elders::remove,
        devices::list,
        devices::create,
        devices::read,
        devices::update,
        devices::remove,
        devices::rotate_secret,
        devices::revoke_secret,
        stewards::list,
        stewards::create,
        stewards::read,
        stewards::update,
        stewards::set_location,
        stewards::set_duty,
        users::list,
        users::create,
        users::remove,
        users::change,
        events::list,
        events::unknown_devices,
        incidents::list,
        incidents::read,
        incidents::cancel,
        lifecycle::accept,
        lifecycle::decline,
        lifecycle::arrive,
        lifecycle::resolve,
        lifecycle::assign,
        follow_ups::list,
        follow_ups::read,
        follow_ups::complete,
        follow_ups::hand_back,
        follow_ups::reassign,
        offer_tokens::act,
        offer_tokens::redeem,
        inbound::inbound,
        push::key,
        push::list,
        push::subscribe,
        push::renew,
        push::remove,
        push::test,
        reachability::list,
        stream::stream,
        reports::response_times,
        reports::monthly_report,
        duty::roster,
        duty::history,
        duty::false_alarms,
        duty::apply,
        sim::status,
        sim::start,
        sim::stop,
        config::web,
        care::round_today,
        care::summary,
        care::read_visit,
        care::start,
        care::finish,
        care::notebook,
        areas::list,
        areas::put,
        areas::remove,
    ),
    modifiers(&BearerAuth, &CommonAnswers, &BlankQuery, &HeadersAreText, &ThisYear, &MergePatches),
    tags(
        (name = "ops", description = "Health, readiness, metrics, this document"),
        (name = "auth", description = "Logins and tokens"),
        (name = "elders", description = "Elders: health data, stewards see only their incidents' elders"),
        (name = "devices", description = "Devices in elders' homes"),
        (name = "stewards", description = "Stewards, their duty and location"),
        (name = "users", description = "Logins (admins); a supervisor's may have a scope: a community or a district"),
        (name = "areas", description = "Where each grid belongs (community, district); a scoped supervisor sees only their grids"),
        (name = "events", description = "Stored device events (supervisors)"),
        (name = "incidents", description = "Incidents"),
        (name = "follow-ups", description = "The follow-up (回访) after every resolved incident of an elder: a call or a visit, completed with an outcome, handed back, reassigned"),
        (name = "stream", description = "Live events (Server-Sent Events): `snapshot`, `offer`, `offer.withdrawn`, `incident`, `steward`"),
        (name = "push", description = "Stewards' phones registered for Web Push (RFC 8030/8291/8292), the server's VAPID key, test alerts"),
        (name = "care", description = "The stewards' daily work: rounds of visits, visit notes, elders' notebooks"),
        (name = "reports", description = "Response times against the targets, and the monthly report for funders and managers (supervisors)"),
        (name = "duty", description = "Device duty: scheduled test calls due or missed, false-alarm rates and suggested rule changes (supervisors)"),
        (name = "sim", description = "The device simulator inside the server, for demos and tests (admins; needs [sim] enabled = true)"),
    )
)]
pub struct ApiDoc;

/// The `bearer` scheme the paths' `security(("bearer" = []))` name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("opaque session token")
                    .build(),
            ),
        );
    }
}

/// The answers every route gets from the extractors it uses (see the
/// module's documentation), as shared `components/responses`.
pub struct CommonAnswers;

/// `(status, component name, description)` of each shared answer.
const UNAUTHORIZED: (&str, &str, &str) = (
    "401",
    "Unauthorized",
    "No valid `Authorization: Bearer` token (missing, unknown, expired or logged out)",
);
const BAD_REQUEST: (&str, &str, &str) = (
    "400",
    "BadRequest",
    "The body is not JSON (`invalid_json`), or a path or query parameter cannot be used (`invalid_path`, `invalid_query`)",
);
const PAYLOAD_TOO_LARGE: (&str, &str, &str) = (
    "413",
    "PayloadTooLarge",
    "The body is over 64 KiB (`payload_too_large`)",
);
const UNSUPPORTED_MEDIA_TYPE: (&str, &str, &str) = (
    "415",
    "UnsupportedMediaType",
    "The body is not sent as `Content-Type: application/json` (`unsupported_media_type`)",
);
const UNPROCESSABLE: (&str, &str, &str) = (
    "422",
    "Unprocessable",
    "The JSON does not fit: a field missing, of the wrong type, unknown or out of range (`invalid_body`, naming the field)",
);

impl CommonAnswers {
    fn error_response(description: &str) -> Response {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    }

    /// The shared answers this operation can give.
    fn answers_of(op: &Operation) -> Vec<(&'static str, &'static str, &'static str)> {
        let mut answers = Vec::new();
        let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
        if secured {
            answers.push(UNAUTHORIZED);
        }
        let has_params = op.parameters.as_ref().is_some_and(|ps| {
            ps.iter()
                .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
        });
        if op.request_body.is_some() || has_params {
            answers.push(BAD_REQUEST);
        }
        if op.request_body.is_some() {
            answers.extend([PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, UNPROCESSABLE]);
        }
        answers
    }
}

impl Modify for CommonAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut used = std::collections::BTreeSet::new();
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                for (status, name, description) in Self::answers_of(op) {
                    // A route's own description of the answer is kept.
                    op.responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            used.insert((name, description));
                            RefOr::Ref(Ref::from_response_name(name))
                        });
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in used {
            components
                .responses
                .insert(name.to_owned(), RefOr::T(Self::error_response(description)));
        }
    }
}

/// A query parameter read through [`super::query`] takes a blank value
/// (`?since=`) as absent: each admits one beside its own schema. (The
/// stream's `last_event_id` says so in its own pattern.)
pub struct BlankQuery;

impl Modify for BlankQuery {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path == "/api/v1/stream" {
                continue;
            }
            let Some(op) = item.get.as_mut() else {
                continue;
            };
            for p in op.parameters.iter_mut().flatten() {
                if !matches!(p.parameter_in, ParameterIn::Query) {
                    continue;
                }
                if let Some(schema) = p.schema.take() {
                    let blank = ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some("^ *$"));
                    p.schema = Some(AnyOfBuilder::new().item(schema).item(blank).into());
                }
            }
        }
    }
}

/// A JSON merge patch (RFC 7396) names the fields to change: the fields
/// of the whole body, none required, and `null` removing an optional
/// one (its default applies). The routes declare the whole body's type
/// as the patch's content; this makes it a patch.
pub struct MergePatches;

impl Modify for MergePatches {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AnyOfBuilder, Schema, Type};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for item in openapi.paths.paths.values_mut() {
            let Some(op) = item.patch.as_mut() else {
                continue;
            };
            let Some(body) = op.request_body.as_mut() else {
                continue;
            };
            for content in body.content.values_mut() {
                let Some(RefOr::Ref(r)) = &content.schema else {
                    continue;
                };
                let name = r.ref_location.rsplit('/').next().unwrap_or_default();
                let Some(RefOr::T(Schema::Object(whole))) = components.schemas.get(name) else {
                    continue;
                };
                let mut patch = whole.clone();
                // An id cannot change (422 `immutable_field`); unknown
                // fields are refused as in the whole body.
                patch.properties.remove("id");
                patch.additional_properties = Some(Box::new(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                ));
                let required = std::mem::take(&mut patch.required);
                for (field, schema) in patch.properties.iter_mut() {
                    // A nested object is merged too: `null` in it removes
                    // a field, whose default applies.
                    if let RefOr::Ref(r) = &*schema {
                        let nested = r.ref_location.rsplit('/').next().unwrap_or_default();
                        if let Some(RefOr::T(Schema::Object(inner))) =
                            components.schemas.get(nested)
                        {
                            let mut inner = inner.clone();
                            let inner_required = std::mem::take(&mut inner.required);
                            for (f, s) in inner.properties.iter_mut() {
                                if !inner_required.contains(f) {
                                    *s = AnyOfBuilder::new()
                                        .item(s.clone())
                                        .item(
                                            utoipa::openapi::schema::ObjectBuilder::new()
                                                .schema_type(Type::Null),
                                        )
                                        .into();
                                }
                            }
                            *schema = RefOr::T(Schema::Object(inner));
                        }
                    }
                    // `anyOf`, not `oneOf`: a field whose own schema
                    // already admits `null` (an `Option`) would match
                    // both branches, which `oneOf` forbids.
                    if !required.contains(field) {
                        *schema = AnyOfBuilder::new()
                            .item(schema.clone())
                            .item(
                                utoipa::openapi::schema::ObjectBuilder::new()
                                    .schema_type(Type::Null),
                            )
                            .into();
                    }
                }
                patch.description = Some(format!("Any fields of {name}, as a JSON merge patch"));
                content.schema = Some(RefOr::T(Schema::Object(patch)));
            }
        }
        let _ = components;
    }
}

/// A header is text or absent, never JSON `null`: an optional header
/// parameter (`Option<String>`) is declared a plain string.
pub struct HeadersAreText;

impl Modify for HeadersAreText {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{Schema, SchemaType, Type};
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post];
            for op in ops.into_iter().flatten() {
                for p in op.parameters.iter_mut().flatten() {
                    if !matches!(p.parameter_in, ParameterIn::Header) {
                        continue;
                    }
                    if let Some(RefOr::T(Schema::Object(o))) = p.schema.as_mut() {
                        o.schema_type = SchemaType::Type(Type::String);
                    }
                }
            }
        }
    }
}

/// `birth_year` runs to this year, which a type cannot say.
pub struct ThisYear;

impl Modify for ThisYear {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use chrono::Datelike;
        use utoipa::openapi::schema::Schema;
        let year = chrono::Utc::now().year();
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(elder))) = components.schemas.get_mut("NewElder")
            && let Some(RefOr::T(Schema::Object(field))) = elder.properties.get_mut("birth_year")
        {
            field.maximum = Some(year.into());
        }
    }
}
