//! HTTP: the JSON API, Telnyx webhooks, media links and health endpoints, assembled in one router
//! with its layers (tracing, timeouts, body limits, security headers) applied in one place.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Router};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub mod api;
pub mod api_docs;
pub mod auth;
pub mod body_guard;
pub mod csrf;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod local_media;
pub mod member_link;
pub mod openapi;
pub mod server;

/// The whole application's routes.
pub fn router(state: AppState) -> Router {
    let pace = state.config.server.body;
    let (documented, document) = documented().split_for_parts();
    let published = Arc::new(openapi::Published::new(&document));
    Router::new()
        .merge(documented)
        .merge(dashboard::router())
        .merge(local_media::router())
        .fallback(not_found)
        .layer(Extension(published))
        .layer(axum::middleware::from_fn(record_latency))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(axum::middleware::from_fn(move |req, next| body_guard::guard(pace, req, next)))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(3600)))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            // Path only: query strings may carry signed-URL tokens.
            tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
        }))
        .with_state(state)
}

/// The HTTP API: every route registered here is in the OpenAPI document ([`openapi`]).
pub fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(api::router())
        .merge(member_link::router())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
}

/// The OpenAPI document of the HTTP API.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    documented().into_openapi()
}

/// `{"status": "ok"}` or `{"status": "unavailable"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    status: HealthStatus,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

/// Liveness
///
/// Whether this instance can reach its database.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses(
        (status = 200, description = "Serving, database reachable", body = Health),
        (status = 503, description = "The database is unreachable", body = Health)
    )
)]
async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(Health { status: HealthStatus::Ok })),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(Health { status: HealthStatus::Unavailable }))
        }
    }
}

/// `koinonia_http_request_duration_seconds` by method, route (the matched pattern, never the
/// concrete path: ids and tokens stay out of metrics) and status.
async fn record_latency(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::histogram!("koinonia_http_request_duration_seconds", "method" => method, "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    res
}

/// Prometheus metrics
///
/// Request latencies by route and status, webhooks received and refused, jobs by state, the age
/// of the oldest queued job, logins, rate limiting, sends.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain", body = String))
)]
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    crate::jobs::record_gauges(&state.db).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

async fn not_found() -> error::ApiError {
    error::ApiError::NotFound
}
