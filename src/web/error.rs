//! One error type for the HTTP API, mapped to a status and `{"success": false, "error": …}` in
//! exactly one place. Server errors are logged once here, with their cause; clients only read
//! "internal error".

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Another church's data or nothing at all: the same answer, so existence is not revealed.
    #[error("not found")]
    NotFound,
    /// A specific "gone" or "not found" sentence, e.g. a failed file's reason.
    #[error("{1}")]
    Status(StatusCode, String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests; try again in {0} seconds")]
    RateLimited(u64),
    /// A bounded resource (password hashing) is saturated: 503 with `retry-after`.
    #[error("the server is busy; try again in {0} seconds")]
    Busy(u64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Status(s, _) => *s,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() && !matches!(self, Self::Busy(_)) {
            tracing::error!(error = ?self, "request failed");
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        let mut res = (status, Json(ErrorBody { success: false, error: message })).into_response();
        if let Self::RateLimited(secs) | Self::Busy(secs) = self {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected a JSON body (Content-Type: application/json)".into())
            }
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge("request body too large".into())
            }
            other => Self::BadRequest(format!("invalid JSON body: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::BadRequest(format!("invalid query: {}", r.body_text()))
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge("request body too large".into())
        } else {
            Self::BadRequest(format!("unreadable body: {}", r.body_text()))
        }
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(r: MultipartRejection) -> Self {
        match r {
            MultipartRejection::InvalidBoundary(_) => {
                Self::UnsupportedMediaType("expected a multipart/form-data body".into())
            }
            other => Self::BadRequest(format!("invalid multipart body: {}", other.body_text())),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        // A malformed id cannot name anything this church owns.
        Self::NotFound
    }
}

impl From<crate::crypto::password::PasswordError> for ApiError {
    fn from(e: crate::crypto::password::PasswordError) -> Self {
        use crate::crypto::password::PasswordError;
        match e {
            PasswordError::TooShort | PasswordError::TooLong => Self::BadRequest(format!("password: {e}")),
            PasswordError::Busy => {
                metrics::counter!("koinonia_password_hashing_busy_total").increment(1);
                Self::Busy(2)
            }
            PasswordError::Hash => Self::Internal(anyhow::Error::new(e)),
        }
    }
}

impl From<crate::jobs::EnqueueError> for ApiError {
    fn from(e: crate::jobs::EnqueueError) -> Self {
        Self::Internal(anyhow::Error::new(e))
    }
}

/// `{"success": true, "data": …}` with a status.
pub fn ok<T: serde::Serialize>(status: StatusCode, data: T) -> Response {
    (status, Json(Envelope { success: true, data })).into_response()
}

/// `{"success": true, "data": …}`: every successful JSON answer of the API.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T> {
    #[schema(schema_with = crate::web::openapi::always_true)]
    pub success: bool,
    pub data: T,
}

/// `{"success": false, "error": "…"}`: every refused or failed request; `error` is a sentence
/// for people ("internal error" for a failure of the server).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(schema_with = crate::web::openapi::always_false)]
    pub success: bool,
    pub error: String,
}

// ---- the flows' errors, each mapped once ------------------------------------------------

impl From<crate::flows::inbox::InboxError> for ApiError {
    fn from(e: crate::flows::inbox::InboxError) -> Self {
        use crate::flows::inbox::InboxError;
        match e {
            InboxError::NotFound => Self::NotFound,
            InboxError::BadCursor(msg) => Self::BadRequest(msg.to_owned()),
            InboxError::Db(e) => Self::Database(e),
        }
    }
}

impl From<crate::flows::members::MemberError> for ApiError {
    fn from(e: crate::flows::members::MemberError) -> Self {
        use crate::flows::members::MemberError;
        match e {
            MemberError::NotFound => Self::NotFound,
            e @ MemberError::AdminOnly(_) => Self::Status(StatusCode::FORBIDDEN, e.to_string()),
            MemberError::Invalid(msg) => Self::BadRequest(msg),
            MemberError::Db(e) => Self::Database(e),
            e @ (MemberError::Store(_) | MemberError::Crypto(_)) => Self::Internal(e.into()),
        }
    }
}

impl From<crate::flows::accounts::AccountError> for ApiError {
    fn from(e: crate::flows::accounts::AccountError) -> Self {
        use crate::flows::accounts::AccountError;
        match e {
            AccountError::Invalid(msg) => Self::BadRequest(msg),
            AccountError::WrongPassword => Self::Unauthorized("invalid email or password"),
            AccountError::WrongCurrentPassword => Self::Unauthorized("the current password is not right"),
            AccountError::RateLimited(secs) => Self::RateLimited(secs),
            e @ AccountError::AdminOnly => Self::Status(StatusCode::FORBIDDEN, e.to_string()),
            AccountError::NotFound => Self::NotFound,
            AccountError::Conflict(msg) => Self::Conflict(msg),
            AccountError::Password(e) => e.into(),
            AccountError::Db(e) => Self::Database(e),
            e @ AccountError::Session(_) => Self::Internal(e.into()),
        }
    }
}

impl From<crate::flows::library::LibraryError> for ApiError {
    fn from(e: crate::flows::library::LibraryError) -> Self {
        use crate::flows::library::LibraryError;
        match e {
            LibraryError::NotFound => Self::NotFound,
            LibraryError::Invalid(msg) => Self::BadRequest(msg),
            e @ LibraryError::NotYet => Self::Conflict(e.to_string()),
            LibraryError::NotStored(msg) => Self::Conflict(msg),
            LibraryError::Gone(msg) => Self::Status(StatusCode::GONE, msg),
            LibraryError::Missing(msg) => Self::Status(StatusCode::NOT_FOUND, msg),
            LibraryError::Db(e) => Self::Database(e),
            e @ (LibraryError::Store(_) | LibraryError::Incomplete(_)) => Self::Internal(e.into()),
        }
    }
}

impl From<crate::flows::outbound::ReplyError> for ApiError {
    fn from(e: crate::flows::outbound::ReplyError) -> Self {
        use crate::flows::outbound::ReplyError;
        match e {
            ReplyError::NotFound => Self::NotFound,
            ReplyError::OptedOut | ReplyError::Unreachable(_) => Self::Conflict(e.to_string()),
            ReplyError::Invalid(msg) => Self::BadRequest(msg),
            ReplyError::Group(msg) => Self::Status(StatusCode::UNPROCESSABLE_ENTITY, msg),
            e @ ReplyError::TooLarge(_) => Self::PayloadTooLarge(e.to_string()),
            ReplyError::Refused(msg) => Self::UnsupportedMediaType(msg),
            e @ ReplyError::Blocked(_) => Self::Status(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            e @ ReplyError::ScannerUnavailable => Self::Status(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            e @ ReplyError::Upload(_) => Self::BadRequest(e.to_string()),
            ReplyError::Db(e) => Self::Database(e),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<crate::flows::sandbox::SandboxError> for ApiError {
    fn from(e: crate::flows::sandbox::SandboxError) -> Self {
        use crate::flows::sandbox::SandboxError;
        match e {
            SandboxError::Unavailable | SandboxError::NotFound => Self::NotFound,
            SandboxError::Invalid(msg) => Self::BadRequest(msg),
            e @ SandboxError::TooLarge(_) => Self::PayloadTooLarge(e.to_string()),
            SandboxError::Link(e) => e.into(),
            SandboxError::Db(e) => Self::Database(e),
            e @ (SandboxError::Store(_) | SandboxError::Inbound(_)) => Self::Internal(e.into()),
        }
    }
}

impl From<crate::flows::webhooks::WebhookError> for ApiError {
    fn from(e: crate::flows::webhooks::WebhookError) -> Self {
        use crate::flows::webhooks::WebhookError;
        match e {
            WebhookError::RateLimited(secs) => Self::RateLimited(secs),
            WebhookError::BadSignature => Self::Unauthorized("invalid webhook signature"),
            WebhookError::Unreadable(msg) => Self::BadRequest(msg.to_owned()),
            WebhookError::Db(e) => Self::Database(e),
            e @ WebhookError::Inbound(_) => {
                // Not acknowledged: Telnyx will deliver it again.
                Self::Internal(e.into())
            }
        }
    }
}

impl From<crate::flows::notifications::NotifyError> for ApiError {
    fn from(e: crate::flows::notifications::NotifyError) -> Self {
        use crate::flows::notifications::NotifyError;
        match e {
            NotifyError::Invalid(msg) => Self::BadRequest(msg),
            e @ NotifyError::PushOff => Self::Conflict(e.to_string()),
            e @ NotifyError::AdminOnly => Self::Status(StatusCode::FORBIDDEN, e.to_string()),
            NotifyError::NotFound => Self::NotFound,
            NotifyError::Db(e) => Self::Database(e),
        }
    }
}
