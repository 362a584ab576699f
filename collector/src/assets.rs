//! Files served as they are: the built SDK under `/sdk/` (and under `/sdk/v{VERSION}/` with a
//! year-long cache, for pages that pin a version), the demo shop under `/demo/`, and the
//! dashboard at `/` (its files under `/dashboard/`).

use actix_files::Files;
use actix_web::{http::header, middleware::DefaultHeaders, web, HttpResponse};
use std::path::PathBuf;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the served files are.
pub struct Dirs {
    pub sdk: PathBuf,
    pub demo: PathBuf,
    pub dashboard: PathBuf,
}

pub fn configure(cfg: &mut web::ServiceConfig, dirs: &Dirs) {
    let (sdk_dir, demo_dir) = (&dirs.sdk, &dirs.demo);
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
    let index = dirs.dashboard.join("index.html");
    if index.is_file() {
        cfg.service(Files::new("/dashboard", &dirs.dashboard))
            .route(
                "/",
                web::get().to(move || {
                    let index = index.clone();
                    async move { actix_files::NamedFile::open_async(index).await }
                }),
            );
    } else {
        log::warn!(
            "no dashboard in {}; / shows where the API is",
            dirs.dashboard.display()
        );
        cfg.route("/", web::get().to(home));
    }
}

/// Without the dashboard's files: a page that says where the demo and API are.
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
