//! Static files, embedded in the binary.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const FILES: &[(&str, &str, &[u8])] = &[
    ("app.css", "text/css; charset=utf-8", include_bytes!("../../../static/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/app.js")),
    ("sandbox.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/sandbox.js")),
    ("library.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/library.js")),
    ("times.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/times.js")),
    ("setup.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/setup.js")),
    ("settings.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/settings.js")),
    ("member-actions.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/member-actions.js")),
    ("icon.svg", "image/svg+xml", include_bytes!("../../../static/icon.svg")),
    ("icon-192.png", "image/png", include_bytes!("../../../static/icon-192.png")),
    ("icon-512.png", "image/png", include_bytes!("../../../static/icon-512.png")),
    ("icon-maskable-512.png", "image/png", include_bytes!("../../../static/icon-maskable-512.png")),
    ("pwa.js", "text/javascript; charset=utf-8", include_bytes!("../../../static/pwa.js")),
    ("offline.html", "text/html; charset=utf-8", include_bytes!("../../../static/offline.html")),
];

/// The web app manifest: "Add to Home Screen" opens the inbox full-screen.
const MANIFEST: &[u8] = include_bytes!("../../../static/manifest.webmanifest");
/// The service worker, served from the root so that its scope is the whole dashboard.
const SERVICE_WORKER: &[u8] = include_bytes!("../../../static/sw.js");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/{name}", get(serve))
        .route("/manifest.webmanifest", get(manifest))
        .route("/sw.js", get(service_worker))
}

async fn manifest() -> Response {
    ([(header::CONTENT_TYPE, "application/manifest+json"), (header::CACHE_CONTROL, "public, max-age=300")], MANIFEST)
        .into_response()
}

/// Browsers check for a new worker on every visit when it is not cached.
async fn service_worker() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], SERVICE_WORKER)
        .into_response()
}

async fn serve(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, body)) => {
            ([(header::CONTENT_TYPE, *ty), (header::CACHE_CONTROL, "public, max-age=300")], *body).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
