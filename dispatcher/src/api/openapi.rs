//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! attributes and the types' `ToSchema`. A test checks it names every
//! route the router serves.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    auth, config, devices, elders, events, inbound, incidents, lifecycle, offer_tokens, ops, push,
    reachability, reports, sim, stewards, stream, users,
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
        sim::status,
        sim::start,
        sim::stop,
        config::web,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "ops", description = "Health, readiness, metrics, this document"),
        (name = "auth", description = "Logins and tokens"),
        (name = "elders", description = "Elders: health data, stewards see only their incidents' elders"),
        (name = "devices", description = "Devices in elders' homes"),
        (name = "stewards", description = "Stewards, their duty and location"),
        (name = "users", description = "Logins (admins)"),
        (name = "events", description = "Stored device events (supervisors)"),
        (name = "incidents", description = "Incidents"),
        (name = "stream", description = "Live events (Server-Sent Events): `snapshot`, `offer`, `offer.withdrawn`, `incident`, `steward`"),
        (name = "push", description = "Stewards' phones registered for Web Push (RFC 8030/8291/8292), the server's VAPID key, test alerts"),
        (name = "reports", description = "Response times against the targets (supervisors)"),
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
