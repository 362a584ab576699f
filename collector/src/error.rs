//! The one error type of the HTTP surface. Every error answers
//! `{"error": {"code": "kebab-case-code", "message": "..."}}` with a status fixed by its kind.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A 400 with its code and message.
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("unknown site key {0:?}")]
    UnknownKey(String),
    #[error("origin {0:?} is not allowed to send for this key")]
    OriginNotAllowed(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("too many requests; retry after {0} s")]
    RateLimited(u64),
    #[error("storage failed: {0}")]
    Storage(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(code, _) => code,
            ApiError::Unauthorized => "unauthorized",
            ApiError::UnknownKey(_) => "unknown-key",
            ApiError::OriginNotAllowed(_) => "origin-not-allowed",
            ApiError::NotFound(_) => "not-found",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::RateLimited(_) => "rate-limited",
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
            ApiError::Unauthorized | ApiError::UnknownKey(_) => StatusCode::UNAUTHORIZED,
            ApiError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        if let ApiError::RateLimited(secs) = self {
            r.insert_header(("Retry-After", secs.to_string()));
        }
        if let ApiError::Unauthorized = self {
            r.insert_header(("WWW-Authenticate", "Bearer"));
        }
        r.json(serde_json::json!({
            "error": { "code": self.code(), "message": self.to_string() }
        }))
    }
}
