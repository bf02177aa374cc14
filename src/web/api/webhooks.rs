//! Telnyx webhooks. The signature is checked on the raw body before anything is parsed or
//! written; a refused webhook is logged with its reason and counted, never stored.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::clock;
use crate::db;
use crate::domain::ClientAddr;
use crate::domain::{MessageId, Phone};
use crate::flows::inbound::{self, AnnouncedFile, InboundMessage, Outcome};
use crate::flows::outbound::{self, DeliveryReport, ReportOutcome};
use crate::telnyx::webhook::{self, Envelope, ReceivedPayload};
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

fn rejected(route: &'static str, reason: &'static str) {
    metrics::counter!("koinonia_webhooks_rejected_total", "route" => route, "reason" => reason).increment(1);
}

/// Keeps a refused webhook's reason for `koinonia doctor` (best effort, never blocks the answer).
async fn remember_rejection(state: &AppState, route: &'static str, reason: String, addr: ClientAddr) {
    let client = addr.to_db();
    let result = async {
        let mut pooled = state.db.acquire().await?;
        db::webhook_rejections::record(&mut pooled.conn(), route, &reason, client.as_deref(), clock::now()).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record a refused webhook");
    }
}

/// Verifies and parses; `Err` is the response to give.
async fn verified(
    state: &AppState,
    route: &'static str,
    addr: ClientAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Envelope, ApiError> {
    let now = clock::now().timestamp();
    if let Err(e) = webhook::verify(state.config.telnyx_public_key.as_ref(), headers, body, now) {
        rejected(route, e.label());
        // Only refused webhooks count against an address: a correctly signed one never waits.
        if let Err(wait) = state.limits.bad_webhook(addr.0) {
            metrics::counter!("koinonia_rate_limited_total", "what" => "webhook").increment(1);
            return Err(ApiError::RateLimited(crate::limits::retry_after_secs(wait)));
        }
        tracing::warn!(route, reason = %e, client = ?addr.0, "webhook refused: bad signature");
        remember_rejection(state, route, e.to_string(), addr).await;
        return Err(ApiError::Unauthorized("invalid webhook signature"));
    }
    match webhook::parse_envelope(body) {
        Some(env) => {
            metrics::counter!("koinonia_webhooks_received_total", "route" => route, "event" => env.data.event_type.clone())
                .increment(1);
            Ok(env)
        }
        None => {
            rejected(route, "bad_body");
            tracing::warn!(route, "webhook refused: body is not a Telnyx event");
            remember_rejection(state, route, "the body is not a Telnyx event".into(), addr).await;
            Err(ApiError::bad_request("body is not a Telnyx event"))
        }
    }
}

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
    let env = match verified(&state, "mms", addr, &headers, &body).await {
        Ok(env) => env,
        Err(e) => return e.into_response(),
    };
    match env.data.event_type.as_str() {
        "message.received" => received(&state, env).await,
        // The profile's webhook URL also gets delivery events; those are the status route's.
        "message.sent" | "message.finalized" => status_event(&state, env, None).await,
        other => {
            tracing::info!(event_type = other, "webhook event ignored");
            acknowledged()
        }
    }
}

async fn received(state: &AppState, env: Envelope) -> Response {
    let payload: ReceivedPayload = match serde_json::from_value(env.data.payload) {
        Ok(p) => p,
        Err(e) => {
            rejected("mms", "bad_payload");
            tracing::warn!(error = %e, "webhook refused: message.received payload unreadable");
            return ApiError::bad_request("message.received payload is not readable").into_response();
        }
    };
    let Ok(from) = Phone::parse(&payload.from.phone_number) else {
        rejected("mms", "bad_number");
        tracing::warn!("webhook refused: sender number unreadable");
        return ApiError::bad_request("payload.from.phone_number is not a phone number").into_response();
    };
    let to: Vec<Phone> = payload.to.iter().filter_map(|p| Phone::parse(&p.phone_number).ok()).collect();
    let cc: Vec<Phone> = payload
        .cc
        .iter()
        .filter_map(|p| Phone::parse(&p.phone_number).ok())
        .filter(|p| !to.contains(p) && *p != from)
        .collect();
    let msg = InboundMessage {
        event_id: Some(env.data.id.clone()),
        event_type: env.data.event_type.clone(),
        from,
        to,
        cc,
        text: payload.text.clone().unwrap_or_default(),
        files: payload
            .media
            .iter()
            .map(|m| AnnouncedFile {
                url: m.url.clone(),
                declared_type: m.content_type.clone(),
                declared_size: m.size,
                declared_sha256: m.declared_sha256(),
                name: None,
            })
            .collect(),
        autoresponse_type: payload.autoresponse_type.clone(),
    };
    match inbound::record(state, msg).await {
        Ok(Outcome::Recorded { message, files, .. }) => {
            tracing::info!(%message, files, "inbound message recorded");
            acknowledged()
        }
        Ok(Outcome::Duplicate) => {
            metrics::counter!("koinonia_webhooks_duplicate_total").increment(1);
            tracing::info!(event = %env.data.id, "redelivered event ignored");
            acknowledged()
        }
        Ok(Outcome::UnknownNumber) => {
            // 200 so Telnyx stops retrying; nothing stored.
            rejected("mms", "unknown_number");
            tracing::warn!(event = %env.data.id, "inbound message to a number no church owns; dropped");
            acknowledged()
        }
        Err(e) => {
            // Not acknowledged: Telnyx will deliver it again.
            tracing::error!(error = %e, event = %env.data.id, "cannot record inbound message");
            ApiError::Internal(e.into()).into_response()
        }
    }
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
    match verified(&state, "status", addr, &headers, &body).await {
        Ok(env) => status_event(&state, env, q.m.and_then(|m| m.parse().ok())).await,
        Err(e) => e.into_response(),
    }
}

/// `message.sent` / `message.finalized`: moves the message's delivery status forward.
async fn status_event(state: &AppState, env: Envelope, hint: Option<MessageId>) -> Response {
    if !matches!(env.data.event_type.as_str(), "message.sent" | "message.finalized") {
        tracing::info!(event_type = %env.data.event_type, "delivery route: event ignored");
        return acknowledged();
    }
    let payload: StatusPayload = match serde_json::from_value(env.data.payload) {
        Ok(p) => p,
        Err(e) => {
            rejected("status", "bad_payload");
            tracing::warn!(error = %e, "delivery report unreadable");
            return ApiError::bad_request("delivery report payload is not readable").into_response();
        }
    };
    let report = DeliveryReport {
        message: hint,
        provider_id: payload.id,
        status: payload.to.first().and_then(|t| t.status.clone()).unwrap_or_default(),
        errors: payload.errors,
    };
    // Recorded first: a redelivered report is acknowledged and changes nothing.
    let fresh = async {
        let mut pooled = state.db.acquire().await?;
        db::webhook_events::insert_if_new(&mut pooled.conn(), &env.data.id, &env.data.event_type, None, clock::now())
            .await
    }
    .await;
    match fresh {
        Ok(false) => {
            metrics::counter!("koinonia_webhooks_duplicate_total").increment(1);
            return acknowledged();
        }
        Ok(true) => {}
        Err(e) => return ApiError::Database(e).into_response(),
    }
    match outbound::apply_report(state, &report).await {
        Ok(ReportOutcome::Applied) => acknowledged(),
        Ok(ReportOutcome::UnknownMessage) => {
            tracing::info!(event = %env.data.id, "delivery report for a message koinonia does not know; ignored");
            acknowledged()
        }
        Err(e) => {
            // Not acknowledged: forget the event id so Telnyx's retry is processed.
            if let Ok(mut pooled) = state.db.acquire().await {
                let _ = db::webhook_events::forget(&mut pooled.conn(), &env.data.id).await;
            }
            ApiError::Database(e).into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct StatusPayload {
    id: String,
    #[serde(default)]
    to: Vec<crate::telnyx::webhook::Party>,
    #[serde(default)]
    errors: Vec<crate::telnyx::api::ApiErrorDetail>,
}
