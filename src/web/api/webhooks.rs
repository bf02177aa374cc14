//! Telnyx webhooks: the routes and their documentation; [`crate::flows::webhooks`] checks,
//! reads and records them.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::ClientAddr;
use crate::flows::webhooks::{self, Route, WebhookError};
use crate::state::AppState;
use crate::web::error::{ApiError, ErrorBody};
use crate::web::extract::AppQuery;
use crate::web::openapi::{PayloadTooLarge, RateLimited};

/// Telnyx events are a few KB; anything far larger is not one.
const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mms_route))
        .routes(routes!(mms_alias))
        .routes(routes!(status_route))
        .routes(routes!(status_alias))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
}

/// `{"success": true}`: the event was taken (or knowingly ignored); Telnyx stops retrying.
#[derive(Serialize, ToSchema)]
pub struct Acknowledged {
    #[schema(schema_with = crate::web::openapi::always_true)]
    success: bool,
}

fn acknowledged() -> Response {
    (StatusCode::OK, axum::Json(Acknowledged { success: true })).into_response()
}

/// The routes of the two Telnyx webhooks, each also at its alias: a thin handler per path, each
/// with its documentation, calling [`mms`] or [`status`].
macro_rules! telnyx_webhook {
    (inbound $name:ident, $path:tt, $summary:tt, $description:tt) => {
        #[utoipa::path(
            post,
            path = $path,
            tag = "webhooks",
            summary = $summary,
            description = $description,
            params(
                ("telnyx-signature-ed25519" = String, Header, description = "Ed25519 signature (base64) of `{telnyx-timestamp}|{raw body}`"),
                ("telnyx-timestamp" = String, Header, description = "Unix seconds; at most 5 minutes off")
            ),
            request_body(content = crate::telnyx::webhook::Envelope, description = "A Telnyx v2 event, exactly as Telnyx signed it"),
            responses(
                (status = 200, description = "Taken, a redelivery, or knowingly ignored (e.g. a number no church owns)", body = Acknowledged),
                (status = 400, description = "Signed, but not a readable Telnyx event", body = ErrorBody),
                (status = 401, description = "Missing, invalid or stale signature (or no `TELNYX_PUBLIC_KEY`)", body = ErrorBody),
                (status = 413, response = PayloadTooLarge),
                (status = 429, response = RateLimited),
                (status = 500, description = "Not recorded; Telnyx delivers it again", body = ErrorBody)
            )
        )]
        async fn $name(
            state: State<AppState>,
            addr: ClientAddr,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            mms(state, addr, headers, body).await
        }
    };
    (delivery $name:ident, $path:tt, $summary:tt, $description:tt) => {
        #[utoipa::path(
            post,
            path = $path,
            tag = "webhooks",
            summary = $summary,
            description = $description,
            params(
                ("telnyx-signature-ed25519" = String, Header, description = "Ed25519 signature (base64) of `{telnyx-timestamp}|{raw body}`"),
                ("telnyx-timestamp" = String, Header, description = "Unix seconds; at most 5 minutes off"),
                StatusQuery
            ),
            request_body(content = crate::telnyx::webhook::Envelope, description = "A Telnyx v2 event, exactly as Telnyx signed it"),
            responses(
                (status = 200, description = "Applied, a redelivery, or a report for a message koinonia does not know", body = Acknowledged),
                (status = 400, description = "Signed, but not a readable delivery report", body = ErrorBody),
                (status = 401, description = "Missing, invalid or stale signature (or no `TELNYX_PUBLIC_KEY`)", body = ErrorBody),
                (status = 413, response = PayloadTooLarge),
                (status = 429, response = RateLimited),
                (status = 500, description = "Not applied; Telnyx delivers it again", body = ErrorBody)
            )
        )]
        async fn $name(
            state: State<AppState>,
            addr: ClientAddr,
            q: Result<AppQuery<StatusQuery>, ApiError>,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            status(state, addr, q, headers, body).await
        }
    };
}

telnyx_webhook!(
    inbound mms_route,
    "/api/webhooks/telnyx/mms",
    "Inbound message (Telnyx)",
    "Telnyx's `message.received`: the member, conversation, message and its pending files are recorded in one \
     transaction and acknowledged before any file is downloaded. The messaging profile's delivery events are \
     accepted here too."
);
telnyx_webhook!(
    inbound mms_alias,
    "/api/messages/webhooks/telnyx/mms",
    "Inbound message (Telnyx, alias)",
    "The same as `POST /api/webhooks/telnyx/mms`, at the path of the original design."
);
telnyx_webhook!(
    delivery status_route,
    "/api/webhooks/telnyx/status",
    "Delivery report (Telnyx)",
    "Telnyx's `message.sent` / `message.finalized`: moves the message's delivery status forward only; a \
     redelivered report changes nothing. `m` is koinonia's own message id, from the `webhook_url` it gave Telnyx."
);
telnyx_webhook!(
    delivery status_alias,
    "/api/messages/webhooks/telnyx/status",
    "Delivery report (Telnyx, alias)",
    "The same as `POST /api/webhooks/telnyx/status`, at the path of the original design."
);

async fn mms(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) => return ApiError::from(e).into_response(),
    };
    answer(webhooks::receive(&state.webhooks(), Route::Mms, addr, &headers, &body, None).await)
}

#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StatusQuery {
    /// koinonia's own id of the message (set in the `webhook_url` given to Telnyx).
    #[param(nullable = false)]
    m: Option<String>,
}

async fn status(
    State(state): State<AppState>,
    addr: ClientAddr,
    q: Result<AppQuery<StatusQuery>, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (AppQuery(q), body) = match (q, body) {
        (Ok(q), Ok(body)) => (q, body),
        (Err(e), _) => return e.into_response(),
        (_, Err(e)) => return ApiError::from(e).into_response(),
    };
    let hint = q.m.and_then(|m| m.parse().ok());
    answer(webhooks::receive(&state.webhooks(), Route::Status, addr, &headers, &body, hint).await)
}

/// `{"success": true}` for whatever was taken; an error answer otherwise (a 5xx makes Telnyx
/// deliver the event again).
fn answer(result: Result<webhooks::Taken, WebhookError>) -> Response {
    match result {
        Ok(_) => acknowledged(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
