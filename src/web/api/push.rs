//! Notifications: the VAPID key browsers subscribe with, their push subscriptions, and each
//! leader's notification settings.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::flows::notifications::{self, Change, Settings};
use crate::state::AppState;
use crate::web::auth::Leader;
use crate::web::error::{ok, ApiError, ApiResult, Envelope, ErrorBody};
use crate::web::extract::AppJson;
use crate::web::openapi::{
    BadRequest, Forbidden, NotFound, PayloadTooLarge, ServerError, Unauthorized, UnsupportedMediaType,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(public_key))
        .routes(routes!(subscribe, unsubscribe))
        .routes(routes!(get_settings, update_settings))
}

/// The VAPID public key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushKey {
    /// The uncompressed P-256 public key, base64url without padding: the
    /// `applicationServerKey` of `pushManager.subscribe`.
    public_key: String,
}

/// The VAPID public key
///
/// What a browser subscribes with. 404 when push notifications are off on this server (a
/// deployment with PostgreSQL and no `VAPID_PRIVATE_KEY`).
#[utoipa::path(
    get,
    path = "/api/push/key",
    tag = "notifications",
    responses(
        (status = 200, description = "Push notifications are on", body = Envelope<PushKey>),
        (status = 401, response = Unauthorized),
        (status = 404, description = "Push notifications are off on this server", body = ErrorBody)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn public_key(State(state): State<AppState>, _leader: Leader) -> ApiResult<Response> {
    match notifications::public_key(&state.config) {
        Some(key) => Ok(ok(StatusCode::OK, PushKey { public_key: key.to_owned() })),
        None => Err(ApiError::Status(
            StatusCode::NOT_FOUND,
            "push notifications are off on this server (no VAPID key is configured)".into(),
        )),
    }
}

/// A browser's push subscription, as `PushSubscription.toJSON()` gives it (`expirationTime` is
/// ignored).
#[derive(Deserialize, ToSchema)]
pub struct SubscriptionBody {
    /// The push service's https URL for this browser (at most 2048 bytes).
    endpoint: String,
    keys: SubscriptionKeys,
}

#[derive(Deserialize, ToSchema)]
pub struct SubscriptionKeys {
    /// The browser's P-256 public key (65-byte uncompressed point), base64url.
    p256dh: String,
    /// The browser's 16-byte authentication secret, base64url.
    auth: String,
}

/// A leader's notification settings.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSettings {
    /// The leader chose push notifications.
    push: bool,
    /// The leader chose e-mail notifications (stored; sending needs `SMTP_URL`).
    email: bool,
    /// The church's notifications carry the first 60 characters of the message (set by admins).
    include_message_text: bool,
    /// The server can send push notifications (it has a VAPID key).
    push_available: bool,
    /// The server can send e-mail (`SMTP_URL` is configured).
    email_available: bool,
    /// How many browsers of this leader are subscribed.
    devices: i64,
}

fn view(s: Settings) -> NotificationSettings {
    NotificationSettings {
        push: s.push,
        email: s.email,
        include_message_text: s.include_text,
        push_available: s.push_available,
        email_available: s.email_available,
        devices: s.devices,
    }
}

/// Subscribe this browser
///
/// Records the browser's push subscription for the signed-in leader, who thereby chooses push
/// notifications. The endpoint must be an https URL of a public host; a leader keeps at most 10
/// browsers (the oldest is replaced). Subscribing the same endpoint again updates it.
#[utoipa::path(
    post,
    path = "/api/push/subscriptions",
    tag = "notifications",
    request_body = SubscriptionBody,
    responses(
        (status = 201, description = "Subscribed", body = Envelope<NotificationSettings>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "Push notifications are off on this server", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn subscribe(
    State(state): State<AppState>,
    leader: Leader,
    AppJson(body): AppJson<SubscriptionBody>,
) -> ApiResult<Response> {
    let settings = notifications::subscribe(
        &state.notifications(),
        &leader.actor(),
        &body.endpoint,
        &body.keys.p256dh,
        &body.keys.auth,
    )
    .await?;
    Ok(ok(StatusCode::CREATED, view(settings)))
}

/// Which subscription to remove.
#[derive(Deserialize, ToSchema)]
pub struct EndpointBody {
    /// The endpoint of the subscription, as it was subscribed.
    endpoint: String,
}

/// Unsubscribe a browser
///
/// Removes one of the signed-in leader's subscriptions by its endpoint; without any left, the
/// leader's choice of push notifications ends too.
#[utoipa::path(
    delete,
    path = "/api/push/subscriptions",
    tag = "notifications",
    request_body = EndpointBody,
    responses(
        (status = 200, description = "Unsubscribed", body = Envelope<NotificationSettings>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn unsubscribe(
    State(state): State<AppState>,
    leader: Leader,
    AppJson(body): AppJson<EndpointBody>,
) -> ApiResult<Response> {
    let settings = notifications::unsubscribe(&state.notifications(), &leader.actor(), &body.endpoint).await?;
    Ok(ok(StatusCode::OK, view(settings)))
}

/// Notification settings
#[utoipa::path(
    get,
    path = "/api/notifications/settings",
    tag = "notifications",
    responses(
        (status = 200, description = "The leader's settings", body = Envelope<NotificationSettings>),
        (status = 401, response = Unauthorized),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn get_settings(State(state): State<AppState>, leader: Leader) -> ApiResult<Response> {
    let settings = notifications::settings(&state.notifications(), &leader.actor()).await?;
    Ok(ok(StatusCode::OK, view(settings)))
}

/// What to change; a missing field stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingsChange {
    /// Push notifications on or off for this leader (their subscribed browsers stay).
    push: Option<bool>,
    /// E-mail notifications on or off (stored; sending needs `SMTP_URL`).
    email: Option<bool>,
    /// The church's notifications carry the first 60 characters of the message (admins only).
    include_message_text: Option<bool>,
}

/// Change notification settings
#[utoipa::path(
    patch,
    path = "/api/notifications/settings",
    tag = "notifications",
    request_body = SettingsChange,
    responses(
        (status = 200, description = "The leader's settings, changed", body = Envelope<NotificationSettings>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "Push notifications are off on this server", body = ErrorBody),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = ServerError)
    ),
    security(("bearer" = []), ("session" = []))
)]
async fn update_settings(
    State(state): State<AppState>,
    leader: Leader,
    AppJson(body): AppJson<SettingsChange>,
) -> ApiResult<Response> {
    let change = Change { push: body.push, email: body.email, include_text: body.include_message_text };
    let settings = notifications::update(&state.notifications(), &leader.actor(), change).await?;
    Ok(ok(StatusCode::OK, view(settings)))
}
