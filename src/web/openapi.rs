//! The OpenAPI 3 document of the HTTP API, built from the code that serves it: every handler
//! carries its own `#[utoipa::path(...)]`, and its module's router registers it with
//! `.routes(routes!(handler))` on a `utoipa_axum` `OpenApiRouter`, which adds the route and its
//! documentation together. `GET /api/openapi.json` serves the document; `GET /api/docs` renders
//! it for people ([`super::api_docs`]).
//!
//! Adding a documented route: write the handler, annotate it with `#[utoipa::path(method, path =
//! "/api/…", tag, params(...), request_body = …, responses(...), security(...))]` (copy a
//! neighbour: success bodies are `Envelope<YourData>` with `YourData: ToSchema`, errors are the
//! shared responses below), and register it with `.routes(routes!(handler))` in its module's
//! `router()`, one `routes!` per path. `tests/it/openapi.rs` names every route the document must
//! hold, and `scripts/fuzz-api` fuzzes whatever it holds.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{CSRF_HEADER, SESSION_COOKIE};
use super::error::ErrorBody;
use crate::media::mime::ALLOWED;
use crate::state::AppState;

/// The document's fixed parts: title and version (from Cargo.toml), security schemes, tags, and
/// the error responses that operations share.
#[derive(OpenApi)]
#[openapi(
    info(description = "Two-way SMS/MMS inbox for churches: the JSON API leaders' tools use, the Telnyx \
        webhooks, and the operational endpoints. Successful JSON answers are `{\"success\": true, \"data\": …}`, \
        refusals and failures `{\"success\": false, \"error\": \"…\"}`. Every query is scoped to the signed-in \
        leader's church: another church's ids answer 404, as ids that do not exist do."),
    modifiers(&Security),
    components(
        schemas(ErrorBody),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, UnsupportedMediaType,
            RateLimited, Busy, ServerError)
    ),
    tags(
        (name = "auth", description = "Sessions and passwords"),
        (name = "conversations", description = "The inbox, threads and replies"),
        (name = "media", description = "Files: originals, the library, exports, retention"),
        (name = "people", description = "Members and leaders"),
        (name = "notifications", description = "Web Push subscriptions and each leader's notification settings"),
        (name = "audit", description = "Who did what"),
        (name = "webhooks", description = "Telnyx events (signed with Ed25519)"),
        (name = "operations", description = "Health, metrics and this document")
    )
)]
pub struct ApiDoc;

/// Names of the two security schemes, for `security(...)` in operations.
pub const BEARER: &str = "bearer";
pub const SESSION: &str = "session";

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The `token` answered by `POST /api/auth/login`."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE.to_owned(),
                format!(
                    "The dashboard's session cookie, set by login. A state-changing request (POST, PATCH, \
                     DELETE) carried by the cookie must also send the page's CSRF token in `{CSRF_HEADER}`, \
                     or it is refused with 403."
                ),
            ))),
        );
    }
}

/// Invalid JSON, a missing or malformed field, or an invalid query parameter.
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct BadRequest(ErrorBody);

/// No credentials, or a session that expired, was revoked or is unknown.
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct Unauthorized(ErrorBody);

/// The leader may not do this (an admin's action), or a cookie-carried change without its CSRF
/// token.
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct Forbidden(ErrorBody);

/// Nothing of the leader's church by that id (another church's data answers the same).
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct NotFound(ErrorBody);

/// The request conflicts with the current state (e.g. the member opted out).
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct Conflict(ErrorBody);

/// The body or file is larger than allowed.
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct PayloadTooLarge(ErrorBody);

/// The body is not of the expected type (e.g. no `Content-Type: application/json`, or a file type
/// outside the allowed list, judged on its bytes).
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct UnsupportedMediaType(ErrorBody);

/// Too many requests; try again after `retry-after` seconds.
#[derive(ToResponse)]
#[response(headers(("retry-after" = u64, description = "Seconds to wait before trying again")))]
#[allow(dead_code)]
pub struct RateLimited(ErrorBody);

/// Password hashing is saturated (every slot busy and the queue full or waited on too long); try
/// again after `retry-after` seconds.
#[derive(ToResponse)]
#[response(headers(("retry-after" = u64, description = "Seconds to wait before trying again")))]
#[allow(dead_code)]
pub struct Busy(ErrorBody);

/// A failure on koinonia's side; the error says only "internal error" (the cause is logged).
#[derive(ToResponse)]
#[allow(dead_code)]
pub struct ServerError(ErrorBody);

/// The bytes of a file (a download, or a multipart upload's file field).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct FileBytes(Vec<u8>);

/// `success` of a successful answer: always `true`.
pub fn always_true() -> Object {
    ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([true])).build()
}

/// `success` of an error: always `false`.
pub fn always_false() -> Object {
    ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([false])).build()
}

/// An attachment's `mimeType`: one of the allowed types (as docs/api.md spells it), or null while unknown.
pub fn mime_type_or_null() -> Object {
    let values = ALLOWED.iter().map(|(mime, _)| serde_json::Value::from(*mime)).chain([serde_json::Value::Null]);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(values))
        .build()
}

/// The document, serialized once, handed to the two routes that show it.
pub struct Published {
    pub document: serde_json::Value,
    json: String,
}

impl Published {
    pub fn new(api: &utoipa::openapi::OpenApi) -> Self {
        let document = serde_json::to_value(api).unwrap_or_default();
        // Serialized from the document itself: fields keep their declaration order.
        let json = serde_json::to_string_pretty(api).unwrap_or_default();
        Self { document, json }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json)).routes(routes!(docs_page))
}

/// This document
///
/// The OpenAPI 3.1 document of koinonia's HTTP API, generated from the code that serves it.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
async fn openapi_json(Extension(published): Extension<Arc<Published>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], published.json.clone()).into_response()
}

/// This document as a page
///
/// Every operation with its parameters, request body and responses, schemas written out field by
/// field.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "operations",
    responses((status = 200, description = "An HTML page", content_type = "text/html", body = String))
)]
async fn docs_page(State(state): State<AppState>, Extension(published): Extension<Arc<Published>>) -> Response {
    (super::dashboard::page_headers(&state), super::api_docs::page(&published.document)).into_response()
}
