//! The application: shared state and the one `configure` that `main` and the tests both use.

use crate::config::Config;
use crate::error::ApiError;
use crate::store::Store;
use crate::{assets, ingest, query};
use actix_web::{web, HttpResponse};
use std::sync::Arc;

/// Size limits of ingest, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_batch_bytes: usize,
    pub max_event_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_bytes: footfall_wire::DEFAULT_MAX_BATCH_BYTES,
            max_event_bytes: footfall_wire::DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub limits: Limits,
}

pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let (sdk_dir, demo_dir) = (state.config.sdk_dir.clone(), state.config.demo_dir.clone());
        cfg.app_data(state)
            .route("/healthz", web::get().to(healthz))
            .service(
                web::resource("/v1/batch")
                    .route(web::post().to(ingest::batch))
                    .route(web::method(actix_web::http::Method::OPTIONS).to(ingest::preflight)),
            )
            .route("/api/v1/insights", web::get().to(query::insights))
            .route("/api/v1/users/{id}", web::get().to(query::user));
        assets::configure(cfg, &sdk_dir, &demo_dir);
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

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}
