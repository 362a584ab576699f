//! The files the collector serves from its binary: the SDK to pages of any origin (CORS and
//! CORP headers, preflight), brotli or gzip as the browser takes it, revalidated by ETag; the
//! dashboard at `/`; the demo shop only while the `demo` site is configured; overrides from a
//! directory for development.

use actix_web::http::StatusCode;
use actix_web::{test, web, App};
use footfall_collector::app;
use footfall_collector::config::{Args, Config};
use footfall_collector::state::AppState;
use std::io::Read;

fn collector(args: Args) -> (tempfile::TempDir, web::Data<AppState>) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Args {
        data_dir: Some(dir.path().into()),
        admin_token: Some("t".into()),
        ..args
    })
    .unwrap();
    let store = footfall_collector::store::open(&config).unwrap();
    (dir, web::Data::new(AppState::new(config, store).unwrap()))
}

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(app::configure($state.clone()))).await
    };
}

fn header<'a>(r: &'a actix_web::dev::ServiceResponse, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[actix_web::test]
async fn the_sdk_is_served_to_any_origin_from_the_binary() {
    let (_dir, state) = collector(Args::default());
    let app = app!(state);
    for path in [
        "/sdk/footfall.js",
        "/sdk/footfall_bg.wasm",
        "/sdk/loader.js",
        &format!(
            "/sdk/v{}/footfall_bg.wasm",
            footfall_collector::assets::VERSION
        ),
    ] {
        let req = test::TestRequest::get()
            .uri(path)
            .insert_header(("Origin", "https://shop.example"))
            .to_request();
        let r = test::call_service(&app, req).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, "access-control-allow-origin"), "*", "{path}");
        assert_eq!(
            header(&r, "cross-origin-resource-policy"),
            "cross-origin",
            "{path}"
        );
        let cache = header(&r, "cache-control").to_owned();
        if path.starts_with("/sdk/v") {
            assert!(cache.contains("immutable"), "{path}: {cache}");
        } else {
            assert_eq!(cache, "public, max-age=300", "{path}");
        }
        if path.ends_with("footfall.js") {
            // The wasm inside it is its bytes as they are, each read as one character.
            assert_eq!(
                header(&r, "content-type"),
                "text/javascript; charset=x-user-defined"
            );
        }
        if path.ends_with(".wasm") {
            assert_eq!(header(&r, "content-type"), "application/wasm");
            let body = test::read_body(r).await;
            assert_eq!(&body[..4], b"\0asm", "the wasm itself");
        }
    }
    // A page on another origin that asks first (e.g. a fetch with a custom header).
    let req = test::TestRequest::default()
        .method(actix_web::http::Method::OPTIONS)
        .uri("/sdk/footfall_bg.wasm")
        .insert_header(("Origin", "https://shop.example"))
        .insert_header(("Access-Control-Request-Method", "GET"))
        .insert_header(("Access-Control-Request-Headers", "x-requested-with"))
        .to_request();
    let r = test::call_service(&app, req).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert!(header(&r, "access-control-allow-methods").contains("GET"));
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        "x-requested-with"
    );
    // A missing file is a JSON 404 that the page may read too.
    let r = test::call_service(
        &app,
        test::TestRequest::get().uri("/sdk/nope.js").to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    let r = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/sdk/../Cargo.toml")
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn files_are_compressed_as_browsers_take_them_and_revalidated_by_etag() {
    let (_dir, state) = collector(Args::default());
    let app = app!(state);
    let plain = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/sdk/footfall.js")
            .to_request(),
    )
    .await;
    assert_eq!(header(&plain, "content-encoding"), "");
    let etag = header(&plain, "etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
    let plain = test::read_body(plain).await;
    let fetch = |accept: &'static str| {
        let req = test::TestRequest::get()
            .uri("/sdk/footfall.js")
            .insert_header(("Accept-Encoding", accept))
            .to_request();
        let app = &app;
        async move {
            let r = test::call_service(app, req).await;
            assert_eq!(header(&r, "vary"), "Accept-Encoding");
            let coding = header(&r, "content-encoding").to_owned();
            (coding, test::read_body(r).await.to_vec())
        }
    };

    // Browsers over https take brotli, the smallest; a weight of 0 refuses a coding.
    let (coding, packed) = fetch("gzip, deflate, br, zstd").await;
    assert_eq!(coding, "br");
    let mut unpacked = Vec::new();
    brotli::Decompressor::new(&packed[..], 4096)
        .read_to_end(&mut unpacked)
        .unwrap();
    assert_eq!(unpacked, plain);
    assert_eq!(fetch("*").await.0, "br");

    // A browser that does not take brotli gets zopfli's gzip, smaller than zlib's best.
    for accept in ["gzip, deflate", "br;q=0, gzip;q=0.5", "gzip, *;q=0"] {
        let (coding, zipped) = fetch(accept).await;
        assert_eq!(coding, "gzip", "{accept}");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain, "{accept}");
        let mut best = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut best, &plain).unwrap();
        let best = best.finish().unwrap();
        assert!(
            zipped.len() < best.len() && packed.len() < zipped.len(),
            "brotli {} B, gzip {} B, zlib's best {} B",
            packed.len(),
            zipped.len(),
            best.len()
        );
    }
    for accept in ["identity", "gzip;q=0, br;q=0", "deflate"] {
        let (coding, body) = fetch(accept).await;
        assert_eq!(coding, "", "{accept}");
        assert_eq!(body, plain, "{accept}");
    }

    let req = test::TestRequest::get()
        .uri("/sdk/footfall.js")
        .insert_header(("If-None-Match", etag.as_str()))
        .to_request();
    let r = test::call_service(&app, req).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
}

#[actix_web::test]
async fn the_dashboard_is_at_the_root_and_the_demo_only_with_the_demo_site() {
    let (_dir, state) = collector(Args::default());
    let app = app!(state);
    let r = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "content-type").starts_with("text/html"));
    let page = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
    assert!(page.contains("/dashboard/app.js"), "{page}");
    for path in [
        "/dashboard/app.js",
        "/dashboard/vendor/uPlot.iife.min.js",
        "/demo/",
        "/demo/product.html",
    ] {
        let r = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    // A production install names its own sites: no demo shop.
    let (_dir2, state) = collector(Args {
        sites: vec!["shop=https://shop.example".into()],
        ..Args::default()
    });
    let app = app!(state);
    let r = test::call_service(&app, test::TestRequest::get().uri("/demo/").to_request()).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[actix_web::test]
async fn a_directory_can_stand_in_for_the_built_files() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("footfall.js"), "// a development build\n").unwrap();
    let (_dir, state) = collector(Args {
        sdk_dir: Some(files.path().into()),
        ..Args::default()
    });
    let app = app!(state);
    let r = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/sdk/footfall.js")
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert_eq!(&test::read_body(r).await[..], b"// a development build\n");
    for escape in ["/sdk/..%2Fetc%2Fpasswd", "/sdk/%2Fetc%2Fpasswd", "/sdk/"] {
        let r = test::call_service(&app, test::TestRequest::get().uri(escape).to_request()).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{escape}");
    }
}
