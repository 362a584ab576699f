//! `/api/v1/session`: the dashboard signs in with a token and keeps it in an `HttpOnly` cookie,
//! out of reach of any script in the page (issue #19). API clients send
//! `Authorization: Bearer` as before; the cookie is only the dashboard's.
//!
//! The cookie is `footfall_token`, the token hex-encoded, `Path=/api/`, `HttpOnly`,
//! `SameSite=Strict`, for 30 days, and `Secure` when the request came over HTTPS (directly, or
//! as the proxy's `X-Forwarded-Proto` says). Writes carried by it are held to the collector's
//! own origin (see [`access::caller`]).

use crate::access::{self, Caller, COOKIE};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::cookie::{time::Duration, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

/// How long a sign-in lasts.
const DAYS: i64 = 30;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

fn who(caller: &Caller) -> serde_json::Value {
    json!({
        "caller": caller.label(),
        "scope": if caller.sites().is_some() { "read" } else { "admin" },
        "sites": caller.sites(),
    })
}

fn cookie(req: &HttpRequest, value: String, max_age: Duration) -> Cookie<'static> {
    Cookie::build(COOKIE, value)
        .path("/api/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(req.connection_info().scheme() == "https")
        .max_age(max_age)
        .finish()
}

/// `POST /api/v1/session {"token"}`: who the token is, and the cookie that signs the dashboard
/// in with it; a wrong token is `401` and counts as one.
pub async fn sign_in(
    req: HttpRequest,
    body: web::Json<SignIn>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let token = body.into_inner().token;
    let caller = access::identify(&req, &state, &token).await?;
    Ok(HttpResponse::Ok()
        .cookie(cookie(
            &req,
            access::to_hex(token.trim()),
            Duration::days(DAYS),
        ))
        .json(who(&caller)))
}

/// `GET /api/v1/session`: who is signed in (or whose bearer token this is). Without any
/// credential the `401` says "not signed in", so the dashboard can tell a first visit from a
/// token revoked since.
pub async fn current(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if access::credential(&req).is_none() {
        return Err(ApiError::NotSignedIn);
    }
    let caller = access::caller(&req, &state).await?;
    Ok(HttpResponse::Ok().json(who(&caller)))
}

/// `DELETE /api/v1/session`: signs the dashboard out (the cookie is cleared).
pub async fn sign_out(req: HttpRequest) -> HttpResponse {
    HttpResponse::NoContent()
        .cookie(cookie(&req, String::new(), Duration::ZERO))
        .finish()
}
