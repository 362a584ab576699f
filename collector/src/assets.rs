//! Files served as they are: the script-tag SDK under `/sdk/` (and under `/sdk/v{VERSION}/`
//! with a year-long cache, for pages that pin a version), the dashboard at `/` (its files under
//! `/dashboard/`), and the demo shop under `/demo/` while the `demo` site is configured.
//!
//! They are built into the binary (`build.rs`); `--sdk-dir`, `--dashboard-dir` and `--demo-dir`
//! serve a directory instead, read at each request, for development. The SDK is loaded by
//! pages of other origins, so everything under `/sdk/` answers any origin
//! (`Access-Control-Allow-Origin: *`, which `fetch()` of the wasm needs, and
//! `Cross-Origin-Resource-Policy: cross-origin`, which pages with COEP need) and CORS preflights.

use crate::config::Config;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{guard, web, HttpRequest, HttpResponse};
use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One file built into the binary.
pub struct Asset {
    /// Relative to its root, `/`-separated.
    pub path: &'static str,
    pub body: &'static [u8],
    /// The body gzipped, when that is smaller.
    pub gzip: Option<&'static [u8]>,
    /// The body brotli-compressed, when that is smaller.
    pub br: Option<&'static [u8]>,
    /// A strong ETag from the content, quoted.
    pub etag: &'static str,
}

mod embedded {
    use super::Asset;
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Where one group of files comes from.
#[derive(Clone)]
pub enum Source {
    Embedded(&'static [Asset]),
    Dir(PathBuf),
}

/// A file found: its bytes, compressed bytes if there are, and ETag.
struct Found {
    body: Cow<'static, [u8]>,
    gzip: Option<&'static [u8]>,
    br: Option<&'static [u8]>,
    etag: Cow<'static, str>,
}

impl Source {
    fn get(&self, path: &str) -> Option<Found> {
        match self {
            Source::Embedded(files) => files.iter().find(|a| a.path == path).map(|a| Found {
                body: Cow::Borrowed(a.body),
                gzip: a.gzip,
                br: a.br,
                etag: Cow::Borrowed(a.etag),
            }),
            Source::Dir(dir) => {
                let rel = Path::new(path);
                // Plain names only: no `..`, no absolute paths, no empty parts.
                if path.is_empty()
                    || path.contains("//")
                    || !rel.components().all(|c| matches!(c, Component::Normal(_)))
                {
                    return None;
                }
                let body = std::fs::read(dir.join(rel)).ok()?;
                let etag = {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    body.hash(&mut h);
                    format!("\"{:016x}\"", h.finish())
                };
                Some(Found {
                    body: Cow::Owned(body),
                    gzip: None,
                    br: None,
                    etag: Cow::Owned(etag),
                })
            }
        }
    }
}

/// The served files of this configuration.
#[derive(Clone)]
pub struct Files {
    pub sdk: Source,
    pub dashboard: Source,
    /// `None` when no `demo` site is configured (a production install).
    pub demo: Option<Source>,
}

impl Files {
    pub fn new(config: &Config) -> Files {
        let pick = |dir: &Option<PathBuf>, built: &'static [Asset]| match dir {
            Some(dir) => Source::Dir(dir.clone()),
            None => Source::Embedded(built),
        };
        Files {
            sdk: pick(&config.sdk_dir, embedded::SDK),
            dashboard: pick(&config.dashboard_dir, embedded::DASHBOARD),
            demo: config
                .site("demo")
                .map(|_| pick(&config.demo_dir, embedded::DEMO)),
        }
    }
}

/// How long a browser may keep a file without asking again.
#[derive(Clone, Copy)]
enum Cache {
    /// `/sdk/vX/`: the version is in the URL.
    Immutable,
    /// `/sdk/`: a page gets a new release within five minutes.
    Minutes,
    /// The dashboard and the demo: always revalidated (cheap with the ETag).
    Revalidate,
}

impl Cache {
    fn header(self) -> &'static str {
        match self {
            Cache::Immutable => "public, max-age=31536000, immutable",
            Cache::Minutes => "public, max-age=300",
            Cache::Revalidate => "no-cache",
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig, files: Files) {
    let get_or_head = || web::route().guard(guard::Any(guard::Get()).or(guard::Head()));
    let sdk = files.sdk.clone();
    let sdk_versioned = files.sdk.clone();
    cfg.service(
        web::resource(format!("/sdk/v{VERSION}/{{file:.*}}"))
            .route(get_or_head().to(move |req: HttpRequest| {
                let sdk = sdk_versioned.clone();
                async move { serve_sdk(&req, &sdk, Cache::Immutable) }
            }))
            .route(web::method(Method::OPTIONS).to(sdk_preflight)),
    )
    .service(
        web::resource("/sdk/{file:.*}")
            .route(get_or_head().to(move |req: HttpRequest| {
                let sdk = sdk.clone();
                async move { serve_sdk(&req, &sdk, Cache::Minutes) }
            }))
            .route(web::method(Method::OPTIONS).to(sdk_preflight)),
    );
    let dashboard = files.dashboard.clone();
    cfg.route(
        "/dashboard/{file:.*}",
        get_or_head().to(move |req: HttpRequest| {
            let dashboard = dashboard.clone();
            async move {
                let file = req.match_info().query("file").to_owned();
                locked_down(serve(&req, &dashboard, &file, Cache::Revalidate))
            }
        }),
    );
    let dashboard = files.dashboard;
    cfg.route(
        "/",
        get_or_head().to(move |req: HttpRequest| {
            let dashboard = dashboard.clone();
            async move { locked_down(serve(&req, &dashboard, "index.html", Cache::Revalidate)) }
        }),
    );
    if let Some(demo) = files.demo {
        cfg.route(
            "/demo",
            web::get().to(|| async {
                HttpResponse::MovedPermanently()
                    .insert_header((header::LOCATION, "/demo/"))
                    .finish()
            }),
        )
        .route(
            "/demo/{file:.*}",
            get_or_head().to(move |req: HttpRequest| {
                let demo = demo.clone();
                async move {
                    let file = match req.match_info().query("file") {
                        "" => "index.html".to_owned(),
                        f => f.to_owned(),
                    };
                    serve(&req, &demo, &file, Cache::Revalidate)
                }
            }),
        );
    }
}

/// The dashboard's policy (issue #19): scripts, styles and API calls from this origin only, no
/// inline script or style, never framed, no referrer sent (a shared link's token is in the
/// URL's fragment, which browsers never send, but the page's own path stays private too).
pub const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

fn locked_down(mut r: HttpResponse) -> HttpResponse {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(DASHBOARD_CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    r
}

fn serve_sdk(req: &HttpRequest, sdk: &Source, cache: Cache) -> HttpResponse {
    let file = req.match_info().query("file").to_owned();
    let mut r = serve(req, sdk, &file, cache);
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    h.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        header::HeaderValue::from_static("cross-origin"),
    );
    r
}

/// CORS preflight for `/sdk/`: any origin, reading only.
async fn sdk_preflight(req: HttpRequest) -> HttpResponse {
    let asked = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let mut r = HttpResponse::NoContent();
    r.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .insert_header(("Cross-Origin-Resource-Policy", "cross-origin"));
    if let Some(asked) = asked {
        r.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked));
    }
    r.finish()
}

/// One file with its type, cache header and ETag; gzipped when the client takes it; 304 when
/// the client has it; a JSON 404 when there is no such file.
fn serve(req: &HttpRequest, source: &Source, path: &str, cache: Cache) -> HttpResponse {
    let Some(found) = source.get(path) else {
        let missing = crate::error::ApiError::NotFound(format!("no such file: {}", req.path()));
        return actix_web::ResponseError::error_response(&missing);
    };
    let mut r = HttpResponse::build(StatusCode::OK);
    r.insert_header((header::CONTENT_TYPE, content_type(path)))
        .insert_header((header::CACHE_CONTROL, cache.header()))
        .insert_header((header::ETAG, found.etag.as_ref()))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    let cached = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == found.etag));
    if cached {
        return r.status(StatusCode::NOT_MODIFIED).finish();
    }
    let accepts = |coding: &str| {
        req.headers()
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| accepts_coding(v, coding))
    };
    match (found.br, found.gzip) {
        (Some(packed), _) if accepts("br") => {
            r.insert_header((header::CONTENT_ENCODING, "br"));
            r.body(packed)
        }
        (_, Some(zipped)) if accepts("gzip") => {
            r.insert_header((header::CONTENT_ENCODING, "gzip"));
            r.body(zipped)
        }
        _ => match found.body {
            Cow::Borrowed(body) => r.body(body),
            Cow::Owned(body) => r.body(body),
        },
    }
}

/// Whether an `Accept-Encoding` value takes `coding`: named with a weight above 0, or not
/// named and `*` is.
fn accepts_coding(header: &str, coding: &str) -> bool {
    let mut any = false;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        if name.eq_ignore_ascii_case(coding) {
            return weight > 0.0;
        }
        if name == "*" {
            any = weight > 0.0;
        }
    }
    any
}

fn content_type(path: &str) -> &'static str {
    // The script-tag SDK holds its wasm's bytes as they are (xtask's `embed_wasm`): read as
    // x-user-defined, each byte is one character (0x80 to 0xFF as U+F780 to U+F7FF).
    if path.rsplit('/').next() == Some("footfall.js") {
        return "text/javascript; charset=x-user-defined";
    }
    match path.rsplit('.').next().unwrap_or_default() {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
