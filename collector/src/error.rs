//! The one error type of the HTTP surface. Every error answers
//! `{"error": {"code": "kebab-case-code", "message": "..."}}` with a status fixed by its kind.
//! Store errors become API errors in one place ([`From<StoreError>`]): what may pass (the store
//! is full, shutting down or unreachable) is a 503 with `Retry-After`, so the SDK retries;
//! anything else is a 500.

use crate::store::StoreError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A 400 with its code and message.
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// No credential at all where the dashboard asks who is signed in.
    #[error("not signed in")]
    NotSignedIn,
    #[error("unknown site key {0:?}")]
    UnknownKey(String),
    #[error("origin {0:?} is not allowed to send for this key")]
    OriginNotAllowed(String),
    /// The caller's token may not do this (a read token outside GET or its sites).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A shared link past its expiry.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    /// The store cannot take or answer this now but will again (disk full, shutting down,
    /// ClickHouse away with a full spool): a 503, to be retried after `retry_after` seconds.
    #[error("{message}; retry after {retry_after} s")]
    Unavailable { message: String, retry_after: u64 },
    /// The store failed in a way a retry will not mend: a 500.
    #[error("storage failed: {0}")]
    Storage(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let retry_after = match &e {
            StoreError::Full(_) | StoreError::SpoolFull => 30,
            StoreError::Closed => 5,
            StoreError::ClickHouse(ch) if ch.is_unreachable() => 5,
            _ => return ApiError::Storage(e.to_string()),
        };
        ApiError::Unavailable {
            message: e.to_string(),
            retry_after,
        }
    }
}

/// The store's writer is gone (the collector is stopping).
impl From<tokio::sync::oneshot::error::RecvError> for ApiError {
    fn from(_: tokio::sync::oneshot::error::RecvError) -> ApiError {
        StoreError::Closed.into()
    }
}

/// A blocking store call that could not run (the thread pool is shutting down).
impl From<actix_web::error::BlockingError> for ApiError {
    fn from(_: actix_web::error::BlockingError) -> ApiError {
        StoreError::Closed.into()
    }
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(code, _) => code,
            ApiError::Unauthorized | ApiError::NotSignedIn => "unauthorized",
            ApiError::UnknownKey(_) => "unknown-key",
            ApiError::OriginNotAllowed(_) => "origin-not-allowed",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not-found",
            ApiError::Gone(_) => "expired",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::RateLimited(_) => "rate-limited",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Storage(_) => "storage-error",
        }
    }

    /// A 400 about one query parameter, named in the message.
    pub fn param(name: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest("invalid-parameter", format!("parameter `{name}`: {why}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(..) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::NotSignedIn | ApiError::UnknownKey(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::OriginNotAllowed(_) | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        match self {
            ApiError::RateLimited(secs)
            | ApiError::Unavailable {
                retry_after: secs, ..
            } => {
                r.insert_header(("Retry-After", secs.to_string()));
            }
            ApiError::Unauthorized | ApiError::NotSignedIn => {
                r.insert_header(("WWW-Authenticate", "Bearer"));
            }
            _ => {}
        }
        r.json(serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passing_store_errors_are_503_with_retry_after_and_others_500() {
        let full = ApiError::from(StoreError::Full("database or disk is full".into()));
        assert_eq!(full.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let r = full.error_response();
        assert_eq!(r.headers().get("retry-after").unwrap(), "30");
        assert_eq!(
            ApiError::from(StoreError::SpoolFull).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(StoreError::Closed).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let broken = ApiError::from(StoreError::Write("constraint failed".into()));
        assert_eq!(broken.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(broken.code(), "storage-error");
    }
}
