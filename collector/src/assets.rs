//! Files served as they are: the built SDK under `/sdk/` (and under `/sdk/v{VERSION}/` with a
//! year-long cache, for pages that pin a version), the demo shop under `/demo/`, and the
//! dashboard page at `/`.

use actix_files::Files;
use actix_web::{http::header, middleware::DefaultHeaders, web, HttpResponse};
use std::path::Path;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn configure(cfg: &mut web::ServiceConfig, sdk_dir: &Path, demo_dir: &Path) {
    if sdk_dir.is_dir() {
        cfg.service(
            web::scope(&format!("/sdk/v{VERSION}"))
                .wrap(
                    DefaultHeaders::new()
                        .add((header::CACHE_CONTROL, "public, max-age=31536000, immutable")),
                )
                .service(Files::new("", sdk_dir)),
        )
        .service(
            web::scope("/sdk")
                .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, "public, max-age=300")))
                .service(Files::new("", sdk_dir)),
        );
    } else {
        log::warn!(
            "no built SDK in {} (run `cargo xtask build`); /sdk/ answers 404",
            sdk_dir.display()
        );
    }
    if demo_dir.is_dir() {
        cfg.service(Files::new("/demo", demo_dir).index_file("index.html"));
    }
    cfg.route("/", web::get().to(home));
}

/// The dashboard's place. Until it is built, a page that says where the demo and API are.
async fn home() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(
            "<!doctype html><meta charset=utf-8><title>Footfall</title>\
         <h1>Footfall collector</h1>\
         <p><a href=\"/demo/\">Demo shop</a> · API: <code>/api/v1/insights</code> \
         (bearer token in <code>DATA_DIR/admin-token</code>)</p>",
        )
}
