//! The routes: the one `configure` that `main` and the tests both use.

use crate::error::ApiError;
use crate::state::AppState;
use crate::{assets, ingest, query, session, tokens};
use actix_web::{web, HttpResponse};

/// Who may call a route (issue #19; product.md "Access").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token: health, metrics, the OpenAPI document, shared links.
    Public,
    /// Any valid token; a `read` token's answers are limited to its sites.
    Read,
    /// The admin token or an `admin`-scope API token; a `read` token is `403`.
    Admin,
}

/// One route of [`ROUTES`].
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// `get`, `post`, `patch` or `delete`.
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

/// Writes [`ROUTES`] and the `routes` function that registers them from one list, so that the
/// access tests (`tests/access.rs`) walk every route there is.
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path, $access:ident;)*) => {
        /// Every route but the SDK's `/v1/batch` (keyed by site, not by token) and the
        /// dashboard's files.
        pub const ROUTES: &[Route] = &[$(Route {
            method: stringify!($method),
            path: $path,
            access: Access::$access,
        }),*];

        fn routes(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($handler).wrap(no_store()));)*
        }
    };
}

routes! {
    get "/healthz" => healthz, Public;
    get "/metrics" => metrics, Public;
    get "/api/v1/openapi.json" => openapi, Public;
    get "/api/v1/insights" => query::insights, Read;
    get "/api/v1/funnel" => query::funnel, Read;
    get "/api/v1/retention" => query::retention, Read;
    get "/api/v1/paths" => query::paths, Read;
    get "/api/v1/users" => query::users, Read;
    get "/api/v1/users/{id}" => query::user, Read;
    delete "/api/v1/users/{id}" => query::erase_user, Admin;
    get "/api/v1/events" => query::event_names, Read;
    get "/api/v1/properties" => query::property_keys, Read;
    get "/api/v1/properties/values" => query::property_values, Read;
    get "/api/v1/reports" => query::list_reports, Read;
    post "/api/v1/reports" => query::save_report, Admin;
    get "/api/v1/reports/{id}" => query::get_report, Read;
    patch "/api/v1/reports/{id}" => query::change_report, Admin;
    delete "/api/v1/reports/{id}" => query::delete_report, Admin;
    get "/api/v1/shared/{token}" => query::shared_report, Public;
    get "/api/v1/sessions" => query::sessions, Read;
    get "/api/v1/sessions/stats" => query::session_stats, Read;
    get "/api/v1/sessions/{id}" => query::session, Read;
    get "/api/v1/tokens" => tokens::list, Admin;
    post "/api/v1/tokens" => tokens::create, Admin;
    delete "/api/v1/tokens/{id}" => tokens::revoke, Admin;
    post "/api/v1/session" => session::sign_in, Public;
    get "/api/v1/session" => session::current, Read;
    delete "/api/v1/session" => session::sign_out, Public;
}

/// API answers are about people and change by the minute: no browser or proxy keeps them (a
/// cached `410` would outlive a shared link's lifted expiry, a cached answer a sign-out).
fn no_store() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((actix_web::http::header::CACHE_CONTROL, "no-store"))
}

pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let files = assets::Files::new(&state.config);
        let json = web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|e, _| ApiError::BadRequest("invalid-json", e.to_string()).into());
        cfg.app_data(state)
            .app_data(json)
            .service(
                web::resource("/v1/batch")
                    .route(web::post().to(ingest::batch))
                    .route(web::method(actix_web::http::Method::OPTIONS).to(ingest::preflight)),
            )
            .configure(routes);
        assets::configure(cfg, files);
        cfg.default_service(web::to(not_found));
    }
}

async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.path()
    )))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let m = &state.metrics;
    m.queue_depth.set(state.store.queue_depth() as i64);
    if let Some(spool) = state.store.spool() {
        use std::sync::atomic::Ordering::Relaxed;
        m.spool_bytes.set(spool.bytes.load(Relaxed) as i64);
        m.spool_batches.set(spool.batches.load(Relaxed) as i64);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(m.render())
}

/// The OpenAPI document of every endpoint, written by hand next to this file.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}
