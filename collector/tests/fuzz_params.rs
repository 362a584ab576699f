//! Every GET route of `app::ROUTES` with thousands of generated query strings and path IDs:
//! known parameters with odd values, unknown parameters, repeats, encodings, huge numbers,
//! control characters. The collector must answer each with 2xx or a 4xx JSON error, never a
//! 5xx, and keep answering.

mod common {
    pub mod rng;
}

use common::rng::Rng;

use actix_web::{test, web, App};
use footfall_collector::app::{self, ROUTES};
use footfall_collector::config::{Args, Config};
use footfall_collector::state::AppState;
use serde_json::{json, Value};

const NAMES: &[&str] = &[
    "metric",
    "last",
    "from",
    "to",
    "interval",
    "by",
    "split",
    "event",
    "filter",
    "tz",
    "site",
    "bots",
    "format",
    "limit",
    "cursor",
    "contains",
    "sort",
    "min_sessions",
    "max_avg_session",
    "user",
    "step",
    "window",
    "start_event",
    "return_event",
    "start",
    "direction",
    "depth",
    "type",
    "field",
    "colour",
    "",
    "metric[]",
];

const VALUES: &[&str] = &[
    "",
    "users",
    "sessions",
    "events",
    "7d",
    "0d",
    "99999999d",
    "-1h",
    "1y",
    "2026-11-29",
    "2026-02-30",
    "2026-11-29T10:00:00Z",
    "1970-01-01",
    "9999-12-31",
    "-271821-04-20",
    "hour",
    "week",
    "month",
    "minute",
    "browser",
    "user.plan",
    "event.price",
    "event.",
    "user.",
    "browser:eq:Chrome",
    "browser:eq",
    "event.price:gt:1e308",
    "event.price:lt:NaN",
    "event.price:gt:-inf",
    "path:contains:%",
    "name:exists",
    "::",
    "user.plan:neq:",
    "Europe/Paris",
    "Mars/Base",
    "UTC",
    "a",
    "b",
    "c",
    "a,b",
    ",,,",
    "include",
    "only",
    "csv",
    "json",
    "xml",
    "1",
    "0",
    "1001",
    "-5",
    "18446744073709551616",
    "1.5",
    "r5",
    "r-1",
    "123.zz",
    "1.",
    "struggling",
    "avg_session",
    "$pageview",
    "$pageview:/",
    "$pageview:x",
    "after",
    "before",
    "pages",
    "\u{0}",
    "\u{7f}",
    "é😀",
    "'; DROP TABLE events; --",
    "\\",
    "\"",
    "%00",
    "%FF",
    "%E2%82",
];

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[actix_web::test]
async fn no_query_string_makes_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Args {
        data_dir: Some(dir.path().into()),
        admin_token: Some("t".into()),
        rate_limit: Some(0),
        sites: vec!["a=https://a.example".into(), "b=https://b.example".into()],
        ..Args::default()
    })
    .unwrap();
    let store = footfall_collector::store::open(&config).unwrap();
    let state = web::Data::new(AppState::new(config, store).unwrap());
    let app = test::init_service(App::new().configure(app::configure(state.clone()))).await;

    // A little data, so that queries have something to group, filter and walk.
    let now = chrono::Utc::now();
    let events: Vec<Value> = (0..60)
        .map(|n| {
            let t = now - chrono::Duration::minutes(n * 37);
            json!({
                "event_id": format!("019ab0b4-0000-7000-8000-{n:012x}"),
                "type": if n % 3 == 0 { "page" } else { "track" },
                "name": if n % 3 == 0 { "$pageview" } else { "buy" },
                "timestamp": t.to_rfc3339(),
                "anonymous_id": format!("anon-{}", n % 7),
                "user_id": (n % 5 == 0).then(|| format!("u{}@example.com", n % 7)),
                "session_id": format!("s-{}-{}", n % 7, n / 20),
                "seq": n,
                "page": {"url": "https://a.example/p?x=1", "path": "/p"},
                "props": {"price": n, "plan": if n % 2 == 0 { "free" } else { "pro" }},
            })
        })
        .collect();
    let req = test::TestRequest::post()
        .uri("/v1/batch")
        .insert_header((
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        ))
        .set_payload(json!({"key": "a", "events": events}).to_string())
        .to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 200);

    let mut rng = Rng(0x00f0_0dba_d5ee_d001);
    let gets: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.method == "get")
        .map(|r| r.path)
        .collect();
    assert!(gets.len() >= 15, "{gets:?}");
    let ids = [
        "anon-1",
        "u0@example.com",
        "s-1-0",
        "nobody",
        "%2F..%2F",
        "é",
        "%00",
    ];
    let mut answered = [0u32; 6];
    for i in 0..2_500 {
        let route = gets[i % gets.len()];
        let mut path = route.to_owned();
        for hole in ["{id}", "{token}"] {
            path = path.replace(hole, rng.pick(&ids));
        }
        let pairs: Vec<String> = (0..rng.next(7))
            .map(|_| {
                let (k, v) = (rng.pick(NAMES), rng.pick(VALUES));
                match rng.next(10) {
                    0 => encode(k),
                    // Unencoded, where a client could send it so.
                    1 if v
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"#\"<>\\^`{|}".contains(&b)) =>
                    {
                        format!("{}={v}", encode(k))
                    }
                    _ => format!("{}={}", encode(k), encode(v)),
                }
            })
            .collect();
        let uri = format!("{path}?{}", pairs.join("&"));
        // What no HTTP client could send (the URI parser refuses it) is not a question.
        if uri.parse::<actix_web::http::Uri>().is_err() {
            continue;
        }
        let req = test::TestRequest::get()
            .uri(&uri)
            .insert_header(("authorization", "Bearer t"))
            .to_request();
        let resp = test::call_service(&app, req).await;
        let status = resp.status().as_u16();
        let body = test::read_body(resp).await;
        assert!(
            status < 500,
            "{uri}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        if status >= 400 {
            let err: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{uri}: {status} without a JSON error"));
            assert!(err["error"]["code"].is_string(), "{uri}: {err}");
        }
        answered[(status / 100) as usize] += 1;
    }
    // Both kinds of answer happened: the generator reaches past the parameter checks.
    assert!(answered[2] > 300 && answered[4] > 300, "{answered:?}");
}
