//! `POST /v1/batch` through the real app (actix_web::test) and a real SQLite file: the golden
//! fixtures, dedup, per-event rejection, limits, keys, origins, and random damage.

use actix_web::{http::StatusCode, test, web, App};
use footfall_collector::app;
use footfall_collector::config::{Args, Config};
use footfall_collector::state::AppState;
use footfall_collector::store::Bots;
use serde_json::{json, Value};
use std::io::Write;

mod common {
    pub mod mmdb;
}

fn fixture(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/");
    std::fs::read_to_string(format!("{dir}{name}")).unwrap()
}

/// A fixture batch with its times moved to now, so they are inside every range.
fn fresh_batch() -> Value {
    let mut b: Value = serde_json::from_str(&fixture("batch-basic.json")).unwrap();
    let now = chrono::Utc::now();
    b["sent_at"] = json!(now.to_rfc3339());
    for e in b["events"].as_array_mut().unwrap() {
        e["timestamp"] = json!(now.to_rfc3339());
    }
    b
}

struct Harness {
    _dir: tempfile::TempDir,
    state: web::Data<AppState>,
}

fn harness() -> Harness {
    harness_with(Args {
        rate_limit: Some(0),
        ..Args::default()
    })
}

fn harness_with(args: Args) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Args {
        data_dir: Some(dir.path().into()),
        admin_token: Some("t".into()),
        sites: vec!["demo=https://shop.example,http://localhost:*".into()],
        ..args
    })
    .unwrap();
    let store = footfall_collector::store::open(&config).unwrap();
    let state = web::Data::new(AppState::new(config, store).unwrap());
    Harness { _dir: dir, state }
}

macro_rules! app {
    ($h:expr) => {
        test::init_service(App::new().configure(app::configure($h.state.clone()))).await
    };
}

async fn post<S>(
    app: &S,
    body: impl Into<web::Bytes>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let mut req = test::TestRequest::post()
        .uri("/v1/batch")
        .insert_header(("content-type", "text/plain"));
    for h in headers {
        req = req.insert_header(*h);
    }
    let resp = test::call_service(app, req.set_payload(body.into()).to_request()).await;
    let status = resp.status();
    let body = test::read_body(resp).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[actix_web::test]
async fn the_golden_batch_is_stored_once() {
    let h = harness();
    let app = app!(h);
    let body = fresh_batch().to_string();
    let (s, v) = post(&app, body.clone(), &[]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"accepted": 3, "duplicates": 0, "rejected": []}));
    let (s, v) = post(&app, body, &[("origin", "https://shop.example")]).await;
    assert_eq!(s, 200);
    assert_eq!(v, json!({"accepted": 0, "duplicates": 3, "rejected": []}));
    let user = h
        .state
        .store
        .user("ann@example.com", &Bots::Include.into())
        .unwrap()
        .unwrap();
    let events: Vec<_> = user.sessions.iter().flat_map(|s| &s.events).collect();
    assert_eq!(events.len(), 3, "nothing stored twice");
}

#[actix_web::test]
async fn enrichment_reads_the_user_agent() {
    let h = harness();
    let app = app!(h);
    let ua = "Mozilla/5.0 (iPad; CPU OS 18_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/26.0 Mobile/15E148 Safari/604.1";
    let (s, _) = post(&app, fresh_batch().to_string(), &[("user-agent", ua)]).await;
    assert_eq!(s, 200);
    let user = h
        .state
        .store
        .user("ann@example.com", &Bots::Exclude.into())
        .unwrap()
        .unwrap();
    let session = &user.sessions[0];
    assert_eq!(session.browser.as_deref(), Some("Safari"));
    assert_eq!(session.os.as_deref(), Some("iOS"));
    assert_eq!(session.device.as_deref(), Some("tablet"));
}

/// The `device` and `bot_reason` stored for a batch sent with these header bytes.
async fn stored_agent(user_agent: Option<&[u8]>) -> (String, Option<String>, String) {
    let h = harness();
    let app = app!(h);
    let mut req = test::TestRequest::post()
        .uri("/v1/batch")
        .insert_header(("content-type", "text/plain"));
    if let Some(ua) = user_agent {
        req = req.insert_header((
            "user-agent",
            actix_web::http::header::HeaderValue::from_bytes(ua).unwrap(),
        ));
    }
    let resp = test::call_service(
        &app,
        req.set_payload(fresh_batch().to_string()).to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let c = rusqlite::Connection::open(h._dir.path().join("footfall.sqlite")).unwrap();
    let row: (String, Option<String>, String) = c
        .query_row(
            "SELECT device, bot_reason, browser FROM events LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let metrics =
        test::call_and_read_body(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    let metrics = String::from_utf8(metrics.to_vec()).unwrap();
    let bots_counted = metrics.contains("footfall_events_bot_total{reason=");
    assert_eq!(bots_counted, row.1.is_some(), "{metrics}");
    row
}

#[actix_web::test]
async fn odd_user_agents_are_read_and_bots_kept_with_their_reason() {
    // Not UTF-8, or not ASCII: read as text, not as missing.
    let (device, reason, browser) = stored_agent(Some(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Safari/537.36 Bücher/1.0".as_bytes(),
    ))
    .await;
    assert_eq!(
        (device.as_str(), reason, browser.as_str()),
        ("desktop", None, "Chrome")
    );
    let mut latin1 =
        b"Mozilla/5.0 (X11; Linux x86_64; rv:147.0) Gecko/20100101 Firefox/147.0 ".to_vec();
    latin1.push(0xe9);
    let (device, reason, browser) = stored_agent(Some(&latin1)).await;
    assert_eq!(
        (device.as_str(), reason, browser.as_str()),
        ("desktop", None, "Firefox")
    );
    // 10 KB: cut, not refused.
    let long = format!(
        "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/143.0.0.0 Mobile Safari/537.36 {}",
        "x".repeat(10_000)
    );
    let (device, reason, _) = stored_agent(Some(long.as_bytes())).await;
    assert_eq!((device.as_str(), reason), ("mobile", None));
    // Bots are stored, flagged, and counted in /metrics by reason.
    let (device, reason, _) = stored_agent(Some(b"curl/8.5.0")).await;
    assert_eq!(device, "bot");
    assert_eq!(reason.as_deref(), Some("crawler-list: ^curl"));
    let (device, reason, _) = stored_agent(None).await;
    assert_eq!(device, "bot");
    assert_eq!(reason.as_deref(), Some("no-user-agent: no user agent"));
}

#[actix_web::test]
async fn sessions_and_people_are_kept_up_to_date_at_ingest() {
    let h = harness();
    let app = app!(h);
    let b = fresh_batch();
    let events = b["events"].as_array().unwrap();
    let with = |e: &Value, id: &str, name: Option<&str>| {
        let mut e = e.clone();
        e["event_id"] = json!(id);
        if let Some(n) = name {
            e["name"] = json!(n);
        }
        e
    };
    // Before identify: a page view, a click, a page leave — in two batches, out of order.
    let anon = |evs: Vec<Value>| {
        json!({"key": "demo", "sent_at": b["sent_at"], "events": evs}).to_string()
    };
    let click = with(&events[1], "019ab0b4-0000-7000-8000-000000000002", None);
    let leave = with(
        &events[1],
        "019ab0b4-0000-7000-8000-000000000003",
        Some("$pageleave"),
    );
    let view = with(&events[0], "019ab0b4-0000-7000-8000-000000000001", None);
    assert_eq!(
        post(&app, anon(vec![click, leave]), &[]).await.1["accepted"],
        2
    );
    assert_eq!(post(&app, anon(vec![view]), &[]).await.1["accepted"], 1);
    // Then identify, with traits.
    let identify = with(&events[2], "019ab0b4-0000-7000-8000-000000000004", None);
    assert_eq!(post(&app, anon(vec![identify]), &[]).await.1["accepted"], 1);

    let conn = rusqlite::Connection::open(h._dir.path().join("footfall.sqlite")).unwrap();
    let (n, views, leaves, entry): (i64, i64, i64, String) = conn
        .query_row(
            "SELECT events, pageviews, pageleaves, entry_path FROM sessions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((n, views, leaves, entry.as_str()), (4, 1, 1, "/p"));
    let people: Vec<(String, Option<String>, String)> = conn
        .prepare("SELECT id, user_id, properties FROM people")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        people.len(),
        1,
        "the anonymous visitor became the user: {people:?}"
    );
    assert_eq!(people[0].0, "ann@example.com");
    assert_eq!(people[0].1.as_deref(), Some("ann@example.com"));
    assert_eq!(people[0].2, r#"{"plan":"pro"}"#);
}

#[actix_web::test]
async fn a_bad_event_never_sinks_its_neighbours() {
    let h = harness();
    let app = app!(h);
    let mut b = fresh_batch();
    let events = b["events"].as_array_mut().unwrap();
    events[1]["event_id"] = json!("not-a-uuid");
    events.push(json!({"type": "track"}));
    events.push(json!(42));
    let (s, v) = post(&app, b.to_string(), &[]).await;
    assert_eq!(s, 200);
    assert_eq!(v["accepted"], 2);
    let rejected: Vec<u64> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected, [1, 3, 4]);
    assert!(v["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("event_id"));
}

#[actix_web::test]
async fn oversized_strings_and_props_are_refused_per_event() {
    let h = harness();
    let app = app!(h);
    let mut b = fresh_batch();
    b["events"][0]["props"] = json!({"big": "x".repeat(40_000)});
    b["events"][1]["name"] = json!("n".repeat(300));
    b["events"][2]["props"] = json!([1, 2]);

    let (s, v) = post(&app, b.to_string(), &[]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], 0);
    let errors: Vec<&str> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"].as_str().unwrap())
        .collect();
    assert!(errors[0].contains("larger than 32768 bytes"), "{errors:?}");
    assert!(errors[1].contains("`name`"), "{errors:?}");
    assert!(
        errors[2].contains("`props` must be an object"),
        "{errors:?}"
    );
}

#[actix_web::test]
async fn deep_nesting_is_refused_for_that_event_only() {
    let h = harness();
    let app = app!(h);
    let b = fresh_batch();
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let event0 = b["events"][0]
        .to_string()
        .replace("\"props\":{}", &format!("\"props\":{{\"d\":{deep}}}"));
    assert!(event0.len() > 20_000);
    let body = format!(
        "{{\"key\":\"demo\",\"sent_at\":{},\"events\":[{event0},{}]}}",
        b["sent_at"], b["events"][1]
    );
    let (s, v) = post(&app, body, &[]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], 1);
    assert_eq!(v["rejected"][0]["index"], 0);
    assert!(v["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("deeper than 16"));
}

#[actix_web::test]
async fn bodies_that_are_not_batches_get_a_json_400() {
    let h = harness();
    let app = app!(h);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"nonsense".to_vec(), "invalid-json"),
        (b"{\"key\":\"demo\",\"events\":{}}".to_vec(), "invalid-json"),
        (vec![0xff, 0xfe, b'{', b'}'], "invalid-json"),
        (b"{\"events\":[]}".to_vec(), "missing-key"),
    ];
    for (body, code) in cases {
        let (s, v) = post(&app, body, &[]).await;
        assert_eq!(s, 400, "{v}");
        assert_eq!(error_code(&v), code);
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[actix_web::test]
async fn keys_and_origins_are_checked() {
    let h = harness();
    let app = app!(h);
    let mut b = fresh_batch();
    b["key"] = json!("nope");
    let (s, v) = post(&app, b.to_string(), &[]).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::UNAUTHORIZED, "unknown-key")
    );

    let b = fresh_batch().to_string();
    let (s, v) = post(&app, b.clone(), &[("origin", "https://evil.example")]).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::FORBIDDEN, "origin-not-allowed")
    );
    let (s, _) = post(&app, b.clone(), &[("origin", "http://localhost:5173")]).await;
    assert_eq!(s, 200);

    // The key may come in the URL instead.
    let mut no_key = fresh_batch();
    no_key.as_object_mut().unwrap().remove("key");
    let req = test::TestRequest::post()
        .uri("/v1/batch?key=demo")
        .set_payload(no_key.to_string())
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 200);
}

#[actix_web::test]
async fn cors_answers_only_allowed_origins() {
    let h = harness();
    let app = app!(h);
    let preflight = |origin: &'static str| {
        test::TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/v1/batch")
            .insert_header(("origin", origin))
            .insert_header(("access-control-request-method", "POST"))
            .to_request()
    };
    let ok = test::call_service(&app, preflight("https://shop.example")).await;
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://shop.example"
    );
    let no = test::call_service(&app, preflight("https://evil.example")).await;
    assert_eq!(no.status(), 403);
    assert!(no.headers().get("access-control-allow-origin").is_none());
}

#[actix_web::test]
async fn refusals_carry_cors_headers_for_allowed_origins() {
    // A page of another origin reads a refusal (status, Retry-After) only with these headers;
    // without them its SDK sees a network failure (tests/e2e/cross-origin.test.mjs).
    let h = harness_with(Args {
        rate_limit: Some(1), // bursts of 20
        ..Args::default()
    });
    let app = app!(h);
    let send = |body: String, origin: &'static str| {
        test::TestRequest::post()
            .uri("/v1/batch")
            .insert_header(("content-type", "text/plain"))
            .insert_header(("origin", origin))
            .set_payload(body)
            .to_request()
    };
    let header = |r: &actix_web::dev::ServiceResponse, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let bad = test::call_service(&app, send("not json".into(), "https://shop.example")).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(
        header(&bad, "access-control-allow-origin").as_deref(),
        Some("https://shop.example")
    );
    let evil = test::call_service(&app, send("not json".into(), "https://evil.example")).await;
    assert_eq!(evil.status(), 400);
    assert_eq!(
        header(&evil, "access-control-allow-origin"),
        None,
        "no site allows it"
    );

    let batch = fresh_batch().to_string();
    let mut limited = None;
    for _ in 0..30 {
        let r = test::call_service(&app, send(batch.clone(), "http://localhost:5173")).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "access-control-expose-headers").as_deref(),
            Some("Retry-After")
        );
    }
    let limited = limited.expect("a 429 within 30 batches");
    assert_eq!(
        header(&limited, "access-control-allow-origin").as_deref(),
        Some("http://localhost:5173")
    );
    assert_eq!(
        header(&limited, "access-control-expose-headers").as_deref(),
        Some("Retry-After")
    );
    assert!(header(&limited, "retry-after").is_some_and(|s| s.parse::<u64>().unwrap() > 0));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[actix_web::test]
async fn gzip_is_read_and_a_gzip_bomb_is_a_413() {
    let h = harness();
    let app = app!(h);
    let body = gzip(fresh_batch().to_string().as_bytes());
    let (s, v) = post(&app, body, &[("content-encoding", "gzip")]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accepted"], 3);

    // 100 MB of spaces inside a JSON batch, about 100 KB compressed.
    let mut bomb = b"{\"key\":\"demo\",\"events\":[".to_vec();
    bomb.extend(std::iter::repeat_n(b' ', 100 * 1024 * 1024));
    bomb.extend(b"]}");
    let bomb = gzip(&bomb);
    assert!(bomb.len() < 200 * 1024);
    let (s, v) = post(&app, bomb, &[("content-encoding", "gzip")]).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large")
    );

    let (s, v) = post(&app, vec![b' '; 2 * 1024 * 1024], &[]).await;
    assert_eq!(
        (s, error_code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large")
    );
    let (s, v) = post(&app, b"not gzip".to_vec(), &[("content-encoding", "gzip")]).await;
    assert_eq!((s, error_code(&v)), (StatusCode::BAD_REQUEST, "bad-gzip"));
}

#[actix_web::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let h = harness_with(Args {
        rate_limit: Some(60),
        ..Args::default()
    });
    let app = app!(h);
    let send = |ip: &'static str| {
        test::TestRequest::post()
            .uri("/v1/batch")
            .peer_addr(format!("{ip}:4000").parse().unwrap())
            .set_payload(r#"{"key":"demo","events":[]}"#)
            .to_request()
    };
    for _ in 0..20 {
        assert_eq!(
            test::call_service(&app, send("192.0.2.1")).await.status(),
            200
        );
    }
    let resp = test::call_service(&app, send("192.0.2.1")).await;
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait));
    let v: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    assert_eq!(error_code(&v), "rate-limited");
    assert_eq!(
        test::call_service(&app, send("192.0.2.2")).await.status(),
        200
    );
}

#[actix_web::test]
async fn the_client_ip_is_placed_and_not_kept() {
    use common::mmdb::{write, Network};
    let geo_dir = tempfile::tempdir().unwrap();
    let db = geo_dir.path().join("test-city.mmdb");
    std::fs::write(
        &db,
        write(&[
            Network {
                net: "81.2.69.0".parse().unwrap(),
                prefix: 24,
                country: "GB",
                region: "ENG",
                city: "London",
            },
            Network {
                net: "89.160.20.0".parse().unwrap(),
                prefix: 22,
                country: "SE",
                region: "E",
                city: "Linköping",
            },
        ]),
    )
    .unwrap();
    let h = harness_with(Args {
        rate_limit: Some(0),
        geoip: Some(db),
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..Args::default()
    });
    let app = app!(h);
    let send = |peer: &str, xff: Option<&str>, batch: &Value| {
        let mut r = test::TestRequest::post()
            .uri("/v1/batch")
            .peer_addr(peer.parse().unwrap())
            .set_payload(batch.to_string());
        if let Some(x) = xff {
            r = r.insert_header(("x-forwarded-for", x));
        }
        r.to_request()
    };
    // Straight from the client.
    let direct = fresh_batch();
    let resp = test::call_service(&app, send("81.2.69.160:5000", None, &direct)).await;
    assert_eq!(resp.status(), 200);
    let user = h
        .state
        .store
        .user("ann@example.com", &Bots::Include.into())
        .unwrap()
        .unwrap();
    let s = &user.sessions[0];
    assert_eq!(
        (s.country.as_deref(), s.region.as_deref(), s.city.as_deref()),
        (Some("GB"), Some("ENG"), Some("London"))
    );
    // Through a trusted proxy, another visitor.
    let mut proxied = fresh_batch();
    for (i, e) in proxied["events"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        e["event_id"] = json!(format!("019ab0b4-8a2c-7d1e-9f00-00000000000{i}"));
        e["anonymous_id"] = json!("5e0c2a1e-5b6d-4c7e-8f90-a1b2c3d4e5f6");
        e["user_id"] = json!("bo@example.com");
    }
    let resp = test::call_service(
        &app,
        send("10.1.2.3:5000", Some("89.160.21.5, 10.9.9.9"), &proxied),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let user = h
        .state
        .store
        .user("bo@example.com", &Bots::Include.into())
        .unwrap()
        .unwrap();
    assert_eq!(user.sessions[0].city.as_deref(), Some("Linköping"));
    // No raw IP is kept by default.
    let conn = rusqlite::Connection::open(h._dir.path().join("footfall.sqlite")).unwrap();
    let kept: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE ip IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 0);
}

#[actix_web::test]
async fn metrics_count_what_ingest_did() {
    let h = harness();
    let app = app!(h);
    let mut b = fresh_batch();
    b["events"][1]["event_id"] = json!("bad");
    post(&app, b.to_string(), &[]).await;
    post(&app, b.to_string(), &[]).await;
    post(&app, "nonsense", &[]).await;
    let resp =
        test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(resp.status(), 200);
    let text = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    for line in [
        "footfall_events_accepted_total 2",
        "footfall_events_duplicate_total 2",
        "footfall_events_rejected_total{reason=\"invalid\"} 2",
        "footfall_events_rejected_total{reason=\"invalid-json\"} 1",
        "footfall_batch_duration_seconds_count{status=\"200\"} 2",
        "footfall_write_queue_events 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[actix_web::test]
async fn every_path_of_the_openapi_document_is_served() {
    let h = harness();
    let app = app!(h);
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/v1/openapi.json")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let doc: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 6);
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let uri = path.replace("{id}", "ann@example.com");
            let req = test::TestRequest::default()
                .method(method.to_uppercase().parse().unwrap())
                .uri(&uri)
                .to_request();
            let resp = test::call_service(&app, req).await;
            let body: Value =
                serde_json::from_slice(&test::read_body(resp).await).unwrap_or(Value::Null);
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                !message.starts_with("no such endpoint"),
                "{method} {path} is documented but not served"
            );
        }
    }
}

#[actix_web::test]
async fn unknown_paths_get_the_json_error() {
    let h = harness();
    let app = app!(h);
    let resp = test::call_service(&app, test::TestRequest::get().uri("/nope").to_request()).await;
    assert_eq!(resp.status(), 404);
    let v: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    assert_eq!(error_code(&v), "not-found");
}

mod damage {
    //! Thousands of random mutations of a good batch: never a panic, always a known status,
    //! and on 200 every event is accounted for.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Cut {
        Flip(usize, u8),
        Truncate(usize),
        Insert(usize, Vec<u8>),
        Remove(usize, usize),
    }

    fn cuts() -> impl Strategy<Value = Vec<Cut>> {
        let cut = prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Cut::Flip(i, b)),
            any::<usize>().prop_map(Cut::Truncate),
            (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
                .prop_map(|(i, b)| Cut::Insert(i, b)),
            (any::<usize>(), 1usize..40).prop_map(|(i, n)| Cut::Remove(i, n)),
        ];
        proptest::collection::vec(cut, 1..4)
    }

    fn apply(mut b: Vec<u8>, cuts: &[Cut]) -> Vec<u8> {
        for c in cuts {
            let len = b.len().max(1);
            match c {
                Cut::Flip(i, x) => {
                    if !b.is_empty() {
                        b[i % len] = *x
                    }
                }
                Cut::Truncate(i) => b.truncate(i % len),
                Cut::Insert(i, bytes) => {
                    let at = (i % len).min(b.len());
                    b.splice(at..at, bytes.iter().copied());
                }
                Cut::Remove(i, n) => {
                    let at = (i % len).min(b.len());
                    let end = (at + n).min(b.len());
                    b.drain(at..end);
                }
            }
        }
        b
    }

    #[actix_web::test]
    async fn random_damage_never_panics_and_accounts_for_every_event() {
        let h = harness();
        let app = app!(h);
        let good = fresh_batch().to_string().into_bytes();
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 2000,
            ..ProptestConfig::default()
        });
        let bodies = std::cell::RefCell::new(Vec::new());
        runner
            .run(&cuts(), |cuts| {
                bodies.borrow_mut().push(apply(good.clone(), &cuts));
                Ok(())
            })
            .unwrap();
        let bodies = bodies.into_inner();
        let mut statuses = std::collections::BTreeMap::new();
        for body in bodies {
            let parsed: Option<Value> = serde_json::from_slice(&body).ok();
            let (s, v) = post(&app, body.clone(), &[]).await;
            *statuses.entry(s.as_u16()).or_insert(0) += 1;
            assert!(
                [200, 400, 401, 403, 413].contains(&s.as_u16()),
                "unexpected {s}: {v}"
            );
            if s == 200 {
                let n = parsed
                    .as_ref()
                    .unwrap_or_else(|| panic!("200 for {:?}", String::from_utf8_lossy(&body)))
                    ["events"]
                    .as_array()
                    .unwrap()
                    .len();
                let counted = v["accepted"].as_u64().unwrap()
                    + v["duplicates"].as_u64().unwrap()
                    + v["rejected"].as_array().unwrap().len() as u64;
                assert_eq!(counted, n as u64, "every event accounted for: {v}");
            } else {
                assert!(v["error"]["code"].is_string(), "{s}: {v}");
            }
        }
        assert!(
            statuses.get(&200).copied().unwrap_or(0) > 10,
            "{statuses:?}"
        );
        assert!(
            statuses.get(&400).copied().unwrap_or(0) > 10,
            "{statuses:?}"
        );
    }
}
