//! Static files, embedded in the binary.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const FILES: &[(&str, &str, &str)] = &[
    ("app.css", "text/css; charset=utf-8", include_str!("../../../static/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../../static/app.js")),
    ("sandbox.js", "text/javascript; charset=utf-8", include_str!("../../../static/sandbox.js")),
    ("library.js", "text/javascript; charset=utf-8", include_str!("../../../static/library.js")),
    ("times.js", "text/javascript; charset=utf-8", include_str!("../../../static/times.js")),
    ("setup.js", "text/javascript; charset=utf-8", include_str!("../../../static/setup.js")),
    ("member-actions.js", "text/javascript; charset=utf-8", include_str!("../../../static/member-actions.js")),
    ("icon.svg", "image/svg+xml", include_str!("../../../static/icon.svg")),
];

pub fn router() -> Router<AppState> {
    Router::new().route("/static/{name}", get(serve))
}

async fn serve(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, ty, body)) => {
            ([(header::CONTENT_TYPE, *ty), (header::CACHE_CONTROL, "public, max-age=300")], *body).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
