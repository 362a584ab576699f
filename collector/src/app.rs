//! The routes: the one `configure` that `main` and the tests both use.

use crate::error::ApiError;
use crate::state::AppState;
use crate::{assets, ingest, query};
use actix_web::{web, HttpResponse};

pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let files = assets::Files::new(&state.config);
        let json = web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|e, _| ApiError::BadRequest("invalid-json", e.to_string()).into());
        cfg.app_data(state)
            .app_data(json)
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics))
            .service(
                web::resource("/v1/batch")
                    .route(web::post().to(ingest::batch))
                    .route(web::method(actix_web::http::Method::OPTIONS).to(ingest::preflight)),
            )
            .route("/api/v1/openapi.json", web::get().to(openapi))
            .route("/api/v1/insights", web::get().to(query::insights))
            .route("/api/v1/funnel", web::get().to(query::funnel))
            .route("/api/v1/retention", web::get().to(query::retention))
            .route("/api/v1/paths", web::get().to(query::paths))
            .route("/api/v1/users", web::get().to(query::users))
            .route("/api/v1/users/{id}", web::get().to(query::user))
            .route("/api/v1/users/{id}", web::delete().to(query::erase_user))
            .route("/api/v1/events", web::get().to(query::event_names))
            .route("/api/v1/properties", web::get().to(query::property_keys))
            .route(
                "/api/v1/properties/values",
                web::get().to(query::property_values),
            )
            .route("/api/v1/reports", web::get().to(query::list_reports))
            .route("/api/v1/reports", web::post().to(query::save_report))
            .route("/api/v1/reports/{id}", web::get().to(query::get_report))
            .route(
                "/api/v1/reports/{id}",
                web::delete().to(query::delete_report),
            )
            .route(
                "/api/v1/shared/{token}",
                web::get().to(query::shared_report),
            )
            .route(
                "/api/v1/sessions/stats",
                web::get().to(query::session_stats),
            )
            .route("/api/v1/sessions/{id}", web::get().to(query::session));
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
