//! The query API against answers computed independently, in this test, from the raw events a
//! deterministic generator sent: users with several browsers, identify part-way through a
//! visit, bounces, long sessions, sessions across midnight.

mod common {
    pub mod rng;
}

use common::rng::Rng;

use actix_web::{test, web, App};
use footfall_collector::app;
use footfall_collector::config::{Args, Config};
use footfall_collector::state::AppState;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const DAY: i64 = 86_400_000;
const MIN: i64 = 60_000;

const AGENTS: [(&str, &str); 3] = [
    ("Chrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
    ("Firefox", "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
    ("Safari", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"),
];

#[derive(Clone, Debug)]
struct Ev {
    id: String,
    kind: &'static str,
    name: String,
    t: i64,
    anon: String,
    user: Option<String>,
    session: String,
    seq: u64,
    browser: usize,
}

/// Visitors over nine days; returns every event, in the order sent.
fn generate(start: i64) -> Vec<Ev> {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut out = Vec::new();
    let mut n = 0u64;
    for v in 0..40u64 {
        let browser = rng.next(3) as usize;
        let anon = format!("anon-{v:03}");
        // Every third visitor signs in during their second session; visitors 0 and 1 are
        // the same person on two browsers.
        let user_id = match v {
            0 | 1 => Some("ann@example.com".to_owned()),
            _ if v % 3 == 0 => Some(format!("user{v}@example.com")),
            _ => None,
        };
        let mut identified = false;
        let mut t = start + rng.next(8 * DAY as u64) as i64;
        for s in 0..(1 + rng.next(4)) {
            let session = format!("sess-{v:03}-{s}");
            let mut seq = 0;
            let mut push = |kind: &'static str, name: &str, t: i64, user: &Option<String>| {
                n += 1;
                seq += 1;
                out.push(Ev {
                    id: format!("019ab0b4-0000-7000-8000-{n:012x}"),
                    kind,
                    name: name.into(),
                    t,
                    anon: anon.clone(),
                    user: user.clone(),
                    session: session.clone(),
                    seq,
                    browser,
                });
            };
            let current_user = |identified: bool| if identified { user_id.clone() } else { None };
            push("page", "$pageview", t, &current_user(identified));
            let bounce = rng.next(4) == 0;
            if !bounce {
                for _ in 0..rng.next(6) {
                    // Long gaps sometimes: sessions that run across midnight.
                    let long = rng.next(5) == 0;
                    t += 1000 + rng.next(if long { 25 * MIN as u64 } else { 90_000 }) as i64;
                    let name = ["add_to_cart", "search", "purchase"][rng.next(3) as usize];
                    push("track", name, t, &current_user(identified));
                }
                if s == 1 && user_id.is_some() && !identified {
                    identified = true;
                    t += 500;
                    push("identify", "$identify", t, &current_user(true));
                }
            }
            t += 1000 + rng.next(60_000) as i64;
            push("track", "$pageleave", t, &current_user(identified));
            t += 2 * 3_600_000 + rng.next(DAY as u64) as i64;
        }
    }
    out
}

fn wire(e: &Ev) -> Value {
    let ts = chrono::DateTime::from_timestamp_millis(e.t)
        .unwrap()
        .to_rfc3339();
    let mut v = json!({
        "event_id": e.id, "type": e.kind, "name": e.name, "timestamp": ts,
        "anonymous_id": e.anon, "user_id": e.user, "session_id": e.session, "seq": e.seq,
        "page": {"url": "https://shop.example/p", "path": "/p"}, "props": {"n": e.seq},
    });
    if e.kind == "identify" {
        v["traits"] = json!({"plan": "pro"});
    }
    v
}

/// Who each anonymous ID is: the first user ID it was sent with, else itself.
fn people(events: &[Ev]) -> HashMap<String, String> {
    let mut of = HashMap::new();
    for e in events {
        if let Some(u) = &e.user {
            of.entry(e.anon.clone()).or_insert_with(|| u.clone());
        }
    }
    for e in events {
        of.entry(e.anon.clone()).or_insert_with(|| e.anon.clone());
    }
    of
}

async fn setup() -> (tempfile::TempDir, Vec<Ev>, web::Data<AppState>, i64) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Args {
        data_dir: Some(dir.path().into()),
        admin_token: Some("t".into()),
        rate_limit: Some(0),
        ..Args::default()
    })
    .unwrap();
    let store = footfall_collector::store::open(&config).unwrap();
    let state = web::Data::new(AppState::new(config, store).unwrap());
    let start = (chrono::Utc::now().timestamp_millis() / DAY - 10) * DAY;
    let events = generate(start);
    (dir, events, state, start)
}

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(app::configure($state.clone()))).await
    };
}

async fn get<S>(app: &S, uri: &str) -> Value
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let req = test::TestRequest::get()
        .uri(uri)
        .insert_header(("authorization", "Bearer t"))
        .to_request();
    let resp = test::call_service(app, req).await;
    let status = resp.status();
    let body: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
    assert_eq!(status, 200, "{uri}: {body}");
    body
}

/// Sends every event in one batch of the demo site, as a browser of this user agent.
async fn post_all<S>(app: &S, events: &[Ev], agent: &str)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let batch = json!({"key": "demo", "events": events.iter().map(wire).collect::<Vec<_>>()});
    let req = test::TestRequest::post()
        .uri("/v1/batch")
        .insert_header(("user-agent", agent))
        .set_payload(batch.to_string())
        .to_request();
    assert_eq!(test::call_service(app, req).await.status(), 200);
}

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms / DAY * DAY)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

#[actix_web::test]
async fn every_answer_matches_the_raw_events() {
    let (_dir, events, state, start) = setup().await;
    let app = app!(state);
    // Send per visitor and browser, as browsers would, each batch with its own user agent.
    let mut by_anon: BTreeMap<String, Vec<&Ev>> = BTreeMap::new();
    for e in &events {
        by_anon.entry(e.anon.clone()).or_default().push(e);
    }
    for evs in by_anon.values() {
        let ua = AGENTS[evs[0].browser].1;
        let batch =
            json!({"key": "demo", "events": evs.iter().map(|e| wire(e)).collect::<Vec<_>>()});
        let req = test::TestRequest::post()
            .uri("/v1/batch")
            .insert_header(("user-agent", ua))
            .set_payload(batch.to_string())
            .to_request();
        let resp = test::call_service(&app, req).await;
        let body: Value = serde_json::from_slice(&test::read_body(resp).await).unwrap();
        assert_eq!(
            body["accepted"].as_u64().unwrap() as usize,
            evs.len(),
            "{body}"
        );
    }
    let person = people(&events);
    let from = day(start);
    let to = day(start + 10 * DAY);

    // Insights: events, sessions and users per UTC day.
    for metric in ["events", "sessions", "users"] {
        let got = get(
            &app,
            &format!("/api/v1/insights?metric={metric}&from={from}&to={to}"),
        )
        .await;
        let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for e in &events {
            let key = match metric {
                "events" => e.id.clone(),
                "sessions" => e.session.clone(),
                _ => person[&e.anon].clone(),
            };
            want.entry(day(e.t)).or_default().insert(key);
        }
        let points = got["series"][0]["points"].as_array().unwrap();
        assert_eq!(points.len(), 10, "ten daily points");
        for p in points {
            let d = &p["t"].as_str().unwrap()[..10];
            let expected = want.get(d).map_or(0, |s| s.len()) as u64;
            assert_eq!(p["value"].as_u64().unwrap(), expected, "{metric} on {d}");
        }
        let total: BTreeSet<&String> = want.values().flatten().collect();
        assert_eq!(
            got["total"].as_u64().unwrap(),
            total.len() as u64,
            "{metric} total"
        );
    }
    // Who used: only purchasers.
    let got = get(
        &app,
        &format!("/api/v1/insights?metric=users&event=purchase&from={from}&to={to}"),
    )
    .await;
    let buyers: BTreeSet<&String> = events
        .iter()
        .filter(|e| e.name == "purchase")
        .map(|e| &person[&e.anon])
        .collect();
    assert_eq!(got["total"].as_u64().unwrap(), buyers.len() as u64);

    // Split by browser; filters on event columns, event properties and user properties.
    let got = get(
        &app,
        &format!("/api/v1/insights?metric=users&by=browser&from={from}&to={to}"),
    )
    .await;
    for row in got["table"].as_array().unwrap() {
        let b = AGENTS.iter().position(|(n, _)| *n == row["key"]).unwrap();
        let want: BTreeSet<&String> = events
            .iter()
            .filter(|e| e.browser == b)
            .map(|e| &person[&e.anon])
            .collect();
        assert_eq!(row["value"].as_u64().unwrap(), want.len() as u64, "{row}");
    }
    let series = got["series"].as_array().unwrap();
    assert_eq!(series.len(), got["table"].as_array().unwrap().len());
    let chrome = series.iter().find(|s| s["key"] == "Chrome").unwrap();
    let mut per_day: BTreeMap<String, BTreeSet<&String>> = BTreeMap::new();
    for e in events.iter().filter(|e| e.browser == 0) {
        per_day
            .entry(day(e.t))
            .or_default()
            .insert(&person[&e.anon]);
    }
    for p in chrome["points"].as_array().unwrap() {
        let d = &p["t"].as_str().unwrap()[..10];
        assert_eq!(
            p["value"].as_u64().unwrap(),
            per_day.get(d).map_or(0, |s| s.len()) as u64
        );
    }
    let pro: BTreeSet<&String> = events
        .iter()
        .filter(|e| e.kind == "identify")
        .map(|e| &person[&e.anon])
        .collect();
    type Keep<'a> = Box<dyn Fn(&Ev) -> bool + 'a>;
    let cases: Vec<(&str, Keep)> = vec![
        ("browser:eq:Firefox", Box::new(|e: &Ev| e.browser == 1)),
        ("browser:neq:Firefox", Box::new(|e: &Ev| e.browser != 1)),
        (
            "name:contains:CART",
            Box::new(|e: &Ev| e.name.contains("cart")),
        ),
        ("event.n:gt:3", Box::new(|e: &Ev| e.seq > 3)),
        ("event.n:lt:2", Box::new(|e: &Ev| e.seq < 2)),
        ("event.n:exists", Box::new(|_: &Ev| true)),
        ("event.n:eq:2", Box::new(|e: &Ev| e.seq == 2)),
        ("browser:gt:Ed", Box::new(|e: &Ev| e.browser != 0)),
        ("browser:lt:B", Box::new(|_: &Ev| false)),
        ("browser:exists", Box::new(|_: &Ev| true)),
        ("country:exists", Box::new(|_: &Ev| false)),
        ("country:eq:", Box::new(|_: &Ev| true)),
        ("path:eq:/p", Box::new(|_: &Ev| true)),
        ("url:contains:SHOP", Box::new(|_: &Ev| true)),
        ("type:neq:track", Box::new(|e: &Ev| e.kind != "track")),
        (
            "user.plan:eq:pro",
            Box::new(|e: &Ev| pro.contains(&person[&e.anon])),
        ),
    ];
    for (filter, keep) in cases {
        let got = get(
            &app,
            &format!("/api/v1/insights?metric=events&filter={filter}&from={from}&to={to}"),
        )
        .await;
        let want = events.iter().filter(|e| keep(e)).count() as u64;
        assert_eq!(got["total"].as_u64().unwrap(), want, "filter {filter}");
    }

    // Splits answered from the index, from event properties and from user properties.
    type Key<'a> = Box<dyn Fn(&Ev) -> Option<String> + 'a>;
    let splits: Vec<(&str, Key)> = vec![
        ("name", Box::new(|e: &Ev| Some(e.name.clone()))),
        ("event.n", Box::new(|e: &Ev| Some(e.seq.to_string()))),
        (
            "user.plan",
            Box::new(|e: &Ev| pro.contains(&person[&e.anon]).then(|| "pro".to_owned())),
        ),
    ];
    for (by, key) in &splits {
        let got = get(
            &app,
            &format!("/api/v1/insights?metric=sessions&by={by}&from={from}&to={to}"),
        )
        .await;
        let mut want: BTreeMap<Option<String>, BTreeSet<&String>> = BTreeMap::new();
        for e in &events {
            want.entry(key(e)).or_default().insert(&e.session);
        }
        let table = got["table"].as_array().unwrap();
        assert_eq!(table.len(), want.len(), "by {by}: {got}");
        for row in table {
            let k = row["key"].as_str().map(str::to_owned);
            assert!(row.get("split").is_none(), "{row}");
            assert_eq!(
                row["value"].as_u64().unwrap(),
                want[&k].len() as u64,
                "by {by} key {k:?}"
            );
        }
    }
    // `by` with `split`: a row per pair of values; `split` alone: a row per day and value.
    let day_of = |t: i64| {
        chrono::DateTime::from_timestamp_millis(t.div_euclid(DAY) * DAY)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string()
    };
    for (by, by_key) in &splits {
        for (split, split_key) in &splits {
            let (want, query) = match by == split {
                // The same field twice stands for `split` alone, over days.
                true => {
                    let mut want: BTreeMap<_, BTreeSet<&String>> = BTreeMap::new();
                    for e in &events {
                        let k = (Some(day_of(e.t)), split_key(e));
                        want.entry(k).or_default().insert(&e.session);
                    }
                    (want, format!("split={split}"))
                }
                false => {
                    let mut want: BTreeMap<_, BTreeSet<&String>> = BTreeMap::new();
                    for e in &events {
                        want.entry((by_key(e), split_key(e)))
                            .or_default()
                            .insert(&e.session);
                    }
                    (want, format!("by={by}&split={split}"))
                }
            };
            let got = get(
                &app,
                &format!("/api/v1/insights?metric=sessions&{query}&from={from}&to={to}"),
            )
            .await;
            let table = got["table"].as_array().unwrap();
            let rows: BTreeMap<_, u64> = table
                .iter()
                .map(|r| {
                    let text = |k: &str| r[k].as_str().map(str::to_owned);
                    ((text("key"), text("split")), r["value"].as_u64().unwrap())
                })
                .collect();
            let want: BTreeMap<_, u64> = want
                .into_iter()
                .map(|(k, sessions)| (k, sessions.len() as u64))
                .collect();
            assert_eq!(rows, want, "{query}");
            assert_eq!(table.len(), rows.len(), "{query}: one row per pair");
        }
    }

    // Days in another time zone.
    let tokyo = chrono_tz::Asia::Tokyo;
    let got = get(
        &app,
        &format!("/api/v1/insights?metric=events&from={from}&to={to}&tz=Asia/Tokyo"),
    )
    .await;
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        let local = chrono::DateTime::from_timestamp_millis(e.t)
            .unwrap()
            .with_timezone(&tokyo);
        *want
            .entry(local.format("%Y-%m-%d").to_string())
            .or_default() += 1;
    }
    let points = got["series"][0]["points"].as_array().unwrap();
    let mut seen = 0;
    for p in points {
        let t = chrono::DateTime::parse_from_rfc3339(p["t"].as_str().unwrap()).unwrap();
        let local = t.with_timezone(&tokyo);
        assert_eq!(
            local.format("%H:%M").to_string(),
            "00:00",
            "buckets start at local midnight"
        );
        let d = local.format("%Y-%m-%d").to_string();
        let v = p["value"].as_u64().unwrap();
        seen += v;
        // The first bucket starts before `from` (local midnight); the range cuts it.
        if t.timestamp_millis() >= start {
            assert_eq!(v, want.get(&d).copied().unwrap_or(0), "Tokyo {d}");
        }
    }
    assert_eq!(seen, events.len() as u64);

    // Users, newest activity first, page by page.
    let mut last: HashMap<&String, i64> = HashMap::new();
    for e in &events {
        let l = last.entry(&person[&e.anon]).or_insert(e.t);
        *l = (*l).max(e.t);
    }
    let mut want: Vec<(&String, i64)> = last.into_iter().collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut seen = Vec::new();
    let mut uri = format!("/api/v1/users?from={from}&to={to}&limit=7");
    loop {
        let page = get(&app, &uri).await;
        for u in page["users"].as_array().unwrap() {
            seen.push(u["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/users?from={from}&to={to}&limit=7&cursor={c}"),
            None => break,
        }
    }
    let want_ids: Vec<String> = want.iter().map(|(id, _)| (*id).clone()).collect();
    assert_eq!(seen, want_ids);

    // Ann: two browsers, one person, every session.
    let ann = get(&app, "/api/v1/users/ann@example.com").await;
    assert_eq!(
        ann["user"]["anonymous_ids"],
        json!(["anon-000", "anon-001"])
    );
    let ann_sessions: BTreeSet<&String> = events
        .iter()
        .filter(|e| person[&e.anon] == "ann@example.com")
        .map(|e| &e.session)
        .collect();
    assert_eq!(
        ann["user"]["session_count"].as_u64().unwrap(),
        ann_sessions.len() as u64
    );
    assert_eq!(
        ann["sessions"].as_array().unwrap().len(),
        ann_sessions.len()
    );
    assert_eq!(ann["user"]["properties"], json!({"plan": "pro"}));
    let listed = get(
        &app,
        &format!("/api/v1/users?from={from}&to={to}&contains=ANN@"),
    )
    .await;
    assert_eq!(listed["users"][0]["id"], "ann@example.com");
    assert_eq!(listed["users"].as_array().unwrap().len(), 1);

    // Session statistics, overall and by browser.
    let mut sessions: BTreeMap<&String, Vec<&Ev>> = BTreeMap::new();
    for e in &events {
        sessions.entry(&e.session).or_default().push(e);
    }
    let stats = |only: &dyn Fn(&Ev) -> bool| {
        let chosen: Vec<&Vec<&Ev>> = sessions.values().filter(|s| only(s[0])).collect();
        let n = chosen.len() as f64;
        let total: i64 = chosen
            .iter()
            .map(|s| s.iter().map(|e| e.t).max().unwrap() - s.iter().map(|e| e.t).min().unwrap())
            .sum();
        let bounces = chosen
            .iter()
            .filter(|s| {
                s.iter().filter(|e| e.kind == "page").count() == 1
                    && s.iter().all(|e| e.kind == "page" || e.name == "$pageleave")
            })
            .count();
        (
            chosen.len() as u64,
            total as f64 / 1000.0,
            bounces as f64 / n,
        )
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    let got = get(
        &app,
        &format!("/api/v1/sessions/stats?from={from}&to={to}&split=browser"),
    )
    .await;
    let (n, secs, bounce) = stats(&|_| true);
    assert_eq!(got["total_sessions"].as_u64().unwrap(), n);
    assert!(close(got["total_session_seconds"].as_f64().unwrap(), secs));
    assert!(close(
        got["avg_session_seconds"].as_f64().unwrap(),
        secs / n as f64
    ));
    assert!(close(got["bounce_rate"].as_f64().unwrap(), bounce));
    assert!(
        bounce > 0.0 && bounce < 1.0,
        "the data has bounces and visits"
    );
    for row in got["table"].as_array().unwrap() {
        let name = row["key"].as_str().unwrap();
        let b = AGENTS.iter().position(|(n, _)| *n == name).unwrap();
        let (n, secs, bounce) = stats(&|e| e.browser == b);
        assert_eq!(row["total_sessions"].as_u64().unwrap(), n, "{name}");
        assert!(close(row["total_session_seconds"].as_f64().unwrap(), secs));
        assert!(close(row["bounce_rate"].as_f64().unwrap(), bounce));
    }
    let got = get(
        &app,
        &format!("/api/v1/sessions/stats?from={from}&to={to}&user=ann@example.com"),
    )
    .await;
    let (n, secs, _) = stats(&|e| person[&e.anon] == "ann@example.com");
    assert_eq!(got["total_sessions"].as_u64().unwrap(), n);
    assert!(close(got["total_session_seconds"].as_f64().unwrap(), secs));

    // Discovery: event names, property keys, values.
    let names = get(&app, &format!("/api/v1/events?from={from}&to={to}")).await;
    let pageviews = events.iter().filter(|e| e.name == "$pageview").count() as u64;
    let row = names["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "$pageview")
        .unwrap();
    assert_eq!(row["count"].as_u64().unwrap(), pageviews);
    let keys = get(&app, &format!("/api/v1/properties?from={from}&to={to}")).await;
    assert_eq!(keys["event"][0]["key"], "n");
    assert_eq!(keys["user"][0]["key"], "plan");
    assert!(keys["columns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "browser"));
    let values = get(
        &app,
        &format!("/api/v1/properties/values?field=browser&from={from}&to={to}"),
    )
    .await;
    let firefox = events.iter().filter(|e| e.browser == 1).count() as u64;
    let row = values["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["value"] == "Firefox")
        .unwrap();
    assert_eq!(row["count"].as_u64().unwrap(), firefox);

    // CSV of a table.
    let req = test::TestRequest::get()
        .uri(&format!(
            "/api/v1/insights?metric=users&by=browser&from={from}&to={to}&format=csv"
        ))
        .insert_header(("authorization", "Bearer t"))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "text/csv; charset=utf-8"
    );
    let csv = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "key,value");
    assert_eq!(lines.len(), 4, "{csv}");

    // One session, its events in order.
    let (id, evs) = sessions.iter().max_by_key(|(_, s)| s.len()).unwrap();
    let got = get(&app, &format!("/api/v1/sessions/{id}")).await;
    let names: Vec<&str> = got["session"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = evs.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, want);
}

async fn send<S>(
    app: &S,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let mut req = test::TestRequest::default()
        .method(method.parse().unwrap())
        .uri(uri);
    if let Some(t) = token {
        req = req.insert_header(("authorization", format!("Bearer {t}")));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let body = serde_json::from_slice(&test::read_body(resp).await).unwrap_or(Value::Null);
    (status, body)
}

/// Asserts that `uri` is a 400 whose message names `param`.
async fn refuses<S>(app: &S, uri: &str, param: &str)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let (status, body) = send(app, "GET", uri, Some("t"), None).await;
    assert_eq!(status, 400, "{uri}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("`{param}`")), "{uri}: {message}");
}

#[actix_web::test]
async fn reports_are_saved_shared_by_link_and_deleted() {
    let (_dir, _events, state, _) = setup().await;
    let app = app!(state);
    let (s, private) = send(
        &app,
        "POST",
        "/api/v1/reports",
        Some("t"),
        Some(json!({"name": "Daily users", "view": "insights", "query": "metric=users&last=30d"})),
    )
    .await;
    assert_eq!(s, 201, "{private}");
    assert_eq!(private["shared"], false);
    let (s, shared) = send(&app, "POST", "/api/v1/reports", Some("t"),
        Some(json!({"name": "Sessions", "view": "sessions", "query": "last=7d&split=browser", "shared": true}))).await;
    assert_eq!(s, 201);
    let link = shared["share_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("/#shared/")
        .to_owned();

    let (s, list) = send(&app, "GET", "/api/v1/reports", Some("t"), None).await;
    assert_eq!(s, 200);
    assert_eq!(list["reports"].as_array().unwrap().len(), 2);
    let (s, opened) = send(
        &app,
        "GET",
        &format!("/api/v1/reports/{}", private["id"].as_str().unwrap()),
        Some("t"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(opened["report"]["name"], "Daily users");
    assert!(opened["result"]["series"].is_array());
    // The link works without the token, and only for shared reports.
    let (s, by_link) = send(&app, "GET", &format!("/api/v1/shared/{link}"), None, None).await;
    assert_eq!(s, 200, "{by_link}");
    assert!(by_link["result"]["total_sessions"].is_u64());
    let (s, _) = send(
        &app,
        "GET",
        &format!("/api/v1/shared/{}", private["id"].as_str().unwrap()),
        None,
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = send(&app, "GET", "/api/v1/reports", None, None).await;
    assert_eq!(s, 401);
    // Bad reports are refused with the parameter named.
    let (s, e) = send(
        &app,
        "POST",
        "/api/v1/reports",
        Some("t"),
        Some(json!({"name": "x", "view": "insights", "query": "metric=nope"})),
    )
    .await;
    assert_eq!(s, 400);
    assert!(e["error"]["message"].as_str().unwrap().contains("`metric`"));
    let (s, e) = send(
        &app,
        "POST",
        "/api/v1/reports",
        Some("t"),
        Some(json!({"name": 3})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("invalid-json"))
    );
    let (s, _) = send(
        &app,
        "DELETE",
        &format!("/api/v1/reports/{}", shared["id"].as_str().unwrap()),
        Some("t"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _) = send(&app, "GET", &format!("/api/v1/shared/{link}"), None, None).await;
    assert_eq!(s, 404);
}

#[actix_web::test]
async fn erasing_a_person_removes_every_row_of_every_anonymous_id() {
    let (dir, events, state, _) = setup().await;
    let app = app!(state);
    post_all(&app, &events, AGENTS[0].1).await;
    let ann_events = events
        .iter()
        .filter(|e| e.anon == "anon-000" || e.anon == "anon-001")
        .count();
    let insights = "/api/v1/insights?metric=events&from=2000-01-01&to=2100-01-01";
    let (_, before) = send(&app, "GET", insights, Some("t"), None).await;
    assert_eq!(before["total"].as_u64().unwrap() as usize, events.len());
    let (s, erased) = send(
        &app,
        "DELETE",
        "/api/v1/users/ann@example.com",
        Some("t"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{erased}");
    assert_eq!(
        erased["erased"]["events"].as_u64().unwrap() as usize,
        ann_events
    );
    assert_eq!(
        erased["erased"]["anonymous_ids"],
        json!(["anon-000", "anon-001"])
    );
    let (s, _) = send(
        &app,
        "GET",
        "/api/v1/users/ann@example.com",
        Some("t"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = send(&app, "GET", "/api/v1/users/anon-000", Some("t"), None).await;
    assert_eq!(s, 404);
    let conn = rusqlite::Connection::open(dir.path().join("footfall.sqlite")).unwrap();
    for (table, column) in [
        ("events", "anonymous_id"),
        ("sessions", "anonymous_id"),
        ("aliases", "anonymous_id"),
        ("people", "id"),
    ] {
        let n: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table} WHERE {column} IN ('anon-000', 'anon-001', 'ann@example.com')"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
    let (s, _) = send(
        &app,
        "DELETE",
        "/api/v1/users/ann@example.com",
        Some("t"),
        None,
    )
    .await;
    assert_eq!(s, 404, "nothing left to erase");
    let (_, after) = send(&app, "GET", insights, Some("t"), None).await;
    assert_eq!(
        after["total"].as_u64().unwrap() as usize,
        events.len() - ann_events,
        "insights forget the erased person"
    );
    let (s, _) = send(&app, "GET", "/api/v1/users/anon-002", Some("t"), None).await;
    assert_eq!(s, 200, "others kept");
}

/// Bots are stored but left out of every answer unless `bots=include` or `bots=only` asks
/// for them (product.md §2 Query API).
#[actix_web::test]
async fn bots_are_left_out_unless_asked_for() {
    let (_dir, events, state, start) = setup().await;
    let app = app!(state);
    // The first ten visitors come as people (Chrome), the rest as a crawler.
    let (people, bots): (Vec<&Ev>, Vec<&Ev>) =
        events.iter().partition(|e| e.anon.as_str() < "anon-010");
    for (evs, ua) in [
        (&people, AGENTS[0].1),
        (
            &bots,
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ),
    ] {
        let batch =
            json!({"key": "demo", "events": evs.iter().map(|e| wire(e)).collect::<Vec<_>>()});
        let req = test::TestRequest::post()
            .uri("/v1/batch")
            .insert_header(("user-agent", ua))
            .set_payload(batch.to_string())
            .to_request();
        assert_eq!(test::call_service(&app, req).await.status(), 200);
    }
    let from = chrono::DateTime::from_timestamp_millis(start - DAY)
        .unwrap()
        .to_rfc3339();
    let range = format!("from={}&to=2100-01-01", from.replace('+', "%2B"));
    let total = |v: &Value| v["total"].as_u64().unwrap() as usize;
    let insights = |bots: &str| format!("/api/v1/insights?metric=events&{range}{bots}");
    assert_eq!(total(&get(&app, &insights("")).await), people.len());
    assert_eq!(
        total(&get(&app, &insights("&bots=exclude")).await),
        people.len()
    );
    assert_eq!(total(&get(&app, &insights("&bots=only")).await), bots.len());
    assert_eq!(
        total(&get(&app, &insights("&bots=include")).await),
        events.len()
    );
    // `device` splits and filters as any field.
    let by_device = get(
        &app,
        &format!("/api/v1/insights?metric=events&{range}&by=device&bots=include"),
    )
    .await;
    let rows: Vec<(String, u64)> = by_device["table"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_owned(),
                r["value"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        rows.contains(&("bot".to_owned(), bots.len() as u64)),
        "{rows:?}"
    );
    let filtered = get(
        &app,
        &format!("/api/v1/insights?metric=events&{range}&bots=include&filter=device:eq:bot"),
    )
    .await;
    assert_eq!(total(&filtered), bots.len());

    let ids = |v: &Value| -> Vec<String> {
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let feed = |bots: &str| format!("/api/v1/users?{range}&limit=1000{bots}");
    let people_ids = ids(&get(&app, &feed("")).await);
    let bot_ids = ids(&get(&app, &feed("&bots=only")).await);
    let everyone = ids(&get(&app, &feed("&bots=include")).await);
    assert!(!people_ids.is_empty() && !bot_ids.is_empty());
    assert!(people_ids.iter().all(|id| !bot_ids.contains(id)));
    assert_eq!(people_ids.len() + bot_ids.len(), everyone.len());

    let a_bot = &bots[0].anon;
    let (s, _) = send(
        &app,
        "GET",
        &format!("/api/v1/users/{a_bot}"),
        Some("t"),
        None,
    )
    .await;
    assert_eq!(s, 404, "a bot is not a user by default");
    let (s, v) = send(
        &app,
        "GET",
        &format!("/api/v1/users/{a_bot}?bots=include"),
        Some("t"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sessions"][0]["device"], "bot");
    let session = &bots[0].session;
    let (s, _) = send(
        &app,
        "GET",
        &format!("/api/v1/sessions/{session}"),
        Some("t"),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = send(
        &app,
        "GET",
        &format!("/api/v1/sessions/{session}?bots=only"),
        Some("t"),
        None,
    )
    .await;
    assert_eq!(s, 200);

    let sessions = |v: &Value| v["total_sessions"].as_u64().unwrap();
    let stats = |bots: &str| format!("/api/v1/sessions/stats?{range}{bots}");
    let (p, b, all) = (
        sessions(&get(&app, &stats("")).await),
        sessions(&get(&app, &stats("&bots=only")).await),
        sessions(&get(&app, &stats("&bots=include")).await),
    );
    assert!(p > 0 && b > 0);
    assert_eq!(p + b, all);

    let count_names = |v: &Value| -> u64 {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(
        count_names(&get(&app, &format!("/api/v1/events?{range}")).await),
        people.len() as u64
    );
    assert_eq!(
        count_names(&get(&app, &format!("/api/v1/events?{range}&bots=include")).await),
        events.len() as u64
    );
    let values = get(
        &app,
        &format!("/api/v1/properties/values?field=device&{range}"),
    )
    .await;
    assert_eq!(
        values["values"],
        json!([{"value": "desktop", "count": people.len()}])
    );
    let keys = get(&app, &format!("/api/v1/properties?{range}&bots=only")).await;
    assert!(keys["columns"]
        .as_array()
        .unwrap()
        .contains(&json!("device")));

    for uri in [
        "/api/v1/insights?metric=events&bots=some",
        "/api/v1/users?bots=yes",
        "/api/v1/users/anon-000?bots=1",
        "/api/v1/sessions/stats?bots=",
    ] {
        let (s, v) = send(&app, "GET", uri, Some("t"), None).await;
        assert_eq!(s, 400, "{uri}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("`bots`"),
            "{v}"
        );
    }
}

#[actix_web::test]
async fn sites_are_kept_apart_and_the_users_feed_filters() {
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
    let app = app!(state);
    let start = (chrono::Utc::now().timestamp_millis() / DAY - 10) * DAY;
    let events = generate(start);
    // Every visitor on one site: even ones on a, odd ones on b (by their number).
    let site_of = |e: &Ev| {
        let n: u32 = e.anon.trim_start_matches("anon-").parse().unwrap();
        if n.is_multiple_of(2) {
            "a"
        } else {
            "b"
        }
    };
    let mut by_anon: BTreeMap<String, Vec<&Ev>> = BTreeMap::new();
    for e in &events {
        by_anon.entry(e.anon.clone()).or_default().push(e);
    }
    for evs in by_anon.values() {
        let batch = json!({"key": site_of(evs[0]),
                           "events": evs.iter().map(|e| wire(e)).collect::<Vec<_>>()});
        let req = test::TestRequest::post()
            .uri("/v1/batch")
            .insert_header(("user-agent", AGENTS[evs[0].browser].1))
            .set_payload(batch.to_string())
            .to_request();
        assert_eq!(test::call_service(&app, req).await.status(), 200);
    }
    let person = people(&events);
    let (from, to) = (day(start), day(start + 10 * DAY));
    let range = format!("from={from}&to={to}");
    let people_of = |keep: &dyn Fn(&Ev) -> bool| -> BTreeSet<String> {
        events
            .iter()
            .filter(|e| keep(e))
            .map(|e| person[&e.anon].clone())
            .collect()
    };

    // Insights per site, for both, and by site.
    let all = people_of(&|_| true);
    let (on_a, on_b) = (
        people_of(&|e| site_of(e) == "a"),
        people_of(&|e| site_of(e) == "b"),
    );
    assert!(!on_a.is_empty() && !on_b.is_empty());
    for (query, want) in [
        ("site=a", &on_a),
        ("site=b", &on_b),
        ("site=a&site=b", &all),
        ("site=b,a", &all),
        ("", &all),
    ] {
        let got = get(
            &app,
            &format!("/api/v1/insights?metric=users&{range}&{query}"),
        )
        .await;
        assert_eq!(got["total"].as_u64().unwrap(), want.len() as u64, "{query}");
    }
    let got = get(
        &app,
        &format!("/api/v1/insights?metric=users&by=site&{range}"),
    )
    .await;
    let table: BTreeMap<&str, u64> = got["table"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap(), r["value"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        table,
        BTreeMap::from([("a", on_a.len() as u64), ("b", on_b.len() as u64)])
    );
    let got = get(
        &app,
        &format!("/api/v1/insights?metric=users&filter=site:neq:a&{range}"),
    )
    .await;
    assert_eq!(got["total"].as_u64().unwrap(), on_b.len() as u64);

    // An unknown site is an error that names the parameter, on every query endpoint.
    for path in [
        "/api/v1/insights?metric=users&site=c",
        "/api/v1/users?site=c",
        "/api/v1/users/anon-000?site=c",
        "/api/v1/sessions/stats?site=c",
        "/api/v1/sessions/x?site=c",
        "/api/v1/events?site=c",
        "/api/v1/properties?site=c",
        "/api/v1/properties/values?field=browser&site=c",
    ] {
        let (status, body) = send(&app, "GET", path, Some("t"), None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid-parameter", "{path}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`site`"));
    }

    // Sessions, event names and a person's page per site.
    let sessions_of = |site: &str| -> BTreeSet<&String> {
        events
            .iter()
            .filter(|e| site_of(e) == site)
            .map(|e| &e.session)
            .collect()
    };
    for site in ["a", "b"] {
        let got = get(&app, &format!("/api/v1/sessions/stats?{range}&site={site}")).await;
        assert_eq!(
            got["total_sessions"].as_u64().unwrap(),
            sessions_of(site).len() as u64
        );
        let names = get(&app, &format!("/api/v1/events?{range}&site={site}")).await;
        let count: u64 = names["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["count"].as_u64().unwrap())
            .sum();
        let want = events.iter().filter(|e| site_of(e) == site).count();
        assert_eq!(count, want as u64, "event names of {site}");
    }
    // Someone seen on b only (a person may have visited both sites).
    let id = on_b.iter().find(|p| !on_a.contains(*p)).unwrap();
    let (status, _) = send(
        &app,
        "GET",
        &format!("/api/v1/users/{id}?site=a"),
        Some("t"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{id} has no sessions on a");
    let got = get(&app, &format!("/api/v1/users/{id}?site=b")).await;
    assert!(got["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["site"] == "b"));

    // The users feed filtered by an event done, a user property, an event column and a site.
    let pro: BTreeSet<String> = events
        .iter()
        .filter(|e| e.kind == "identify")
        .map(|e| person[&e.anon].clone())
        .collect();
    assert!(!pro.is_empty());
    let range = &range;
    let feed = |query: String| {
        let app = &app;
        async move {
            let got = get(app, &format!("/api/v1/users?{range}&limit=1000&{query}")).await;
            assert!(got["next_cursor"].is_null());
            got["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned())
                .collect::<BTreeSet<String>>()
        }
    };
    let firefox = AGENTS.iter().position(|a| a.0 == "Firefox").unwrap();
    for (query, want) in [
        (
            "event=purchase".to_owned(),
            people_of(&|e| e.name == "purchase"),
        ),
        (
            "event=purchase&site=b".into(),
            people_of(&|e| e.name == "purchase" && site_of(e) == "b"),
        ),
        ("filter=user.plan:eq:pro".into(), pro.clone()),
        (
            "filter=browser:eq:Firefox&filter=event.n:gt:3".into(),
            people_of(&|e| e.browser == firefox && e.seq > 3),
        ),
        (
            "event=search&filter=event.n:eq:2".into(),
            people_of(&|e| e.name == "search" && e.seq == 2),
        ),
        ("site=a".into(), on_a.clone()),
    ] {
        let got = feed(query.clone()).await;
        assert!(!want.is_empty(), "{query}");
        assert_eq!(got, want, "{query}");
    }
    let (status, body) = send(
        &app,
        "GET",
        "/api/v1/users?filter=plan:eq:pro",
        Some("t"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`filter`"));
}

#[actix_web::test]
async fn funnels_and_retention_answer_as_the_contract_says() {
    let (_dir, events, state, start) = setup().await;
    let app = app!(state);
    post_all(&app, &events, AGENTS[0].1).await;
    let person = people(&events);
    let (from, to) = (day(start), day(start + 10 * DAY));

    let got = get(
        &app,
        &format!("/api/v1/funnel?step=$pageview:/p&step=add_to_cart&step=purchase&from={from}&to={to}&window=1d"),
    )
    .await;
    let steps = got["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0]["name"], "$pageview:/p");
    let everyone: BTreeSet<&String> = events.iter().map(|e| &person[&e.anon]).collect();
    assert_eq!(steps[0]["count"].as_u64().unwrap(), everyone.len() as u64);
    assert_eq!(steps[0]["conversion"].as_f64().unwrap(), 1.0);
    let mut before = u64::MAX;
    for s in steps {
        let count = s["count"].as_u64().unwrap();
        assert!(count <= before, "{got}");
        let conversion = s["conversion"].as_f64().unwrap();
        let first = steps[0]["count"].as_f64().unwrap();
        assert!((conversion - count as f64 / first).abs() < 1e-9);
        before = count;
    }
    assert!(steps[2]["count"].as_u64().unwrap() > 0, "{got}");
    assert!(got["breakdown"].is_null(), "no breakdown without by");
    // Who dropped after each step: the users feed of the funnel's people at that step.
    let funnel = "step=$pageview:/p&step=add_to_cart&step=purchase&window=1d";
    for k in 1..=3usize {
        let users = get(
            &app,
            &format!("/api/v1/users?{funnel}&dropped_after={k}&from={from}&to={to}&limit=1000"),
        )
        .await;
        let here = steps[k - 1]["count"].as_u64().unwrap();
        let next = steps.get(k).map_or(0, |s| s["count"].as_u64().unwrap());
        assert_eq!(
            users["users"].as_array().unwrap().len() as u64,
            here - next,
            "dropped after step {k}"
        );
    }
    for (query, param) in [
        ("step=a&step=b", "dropped_after"),
        ("step=a&step=b&dropped_after=3", "dropped_after"),
        ("step=a&dropped_after=1", "step"),
    ] {
        refuses(&app, &format!("/api/v1/users?{query}"), param).await;
    }
    // Broken down by browser: every visit came from one Chrome, so one row equal to the steps.
    let by = get(
        &app,
        &format!("/api/v1/funnel?step=$pageview:/p&step=add_to_cart&step=purchase&from={from}&to={to}&window=1d&by=browser"),
    )
    .await;
    let rows = by["breakdown"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{by}");
    assert_eq!(rows[0]["key"], "Chrome");
    let counts = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["count"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(counts(&rows[0]["steps"]), counts(&got["steps"]));
    assert!(steps[1]["median_seconds_from_previous"].as_f64().unwrap() > 0.0);

    let got = get(
        &app,
        &format!(
            "/api/v1/retention?start_event=$pageview&return_event=purchase&from={from}&to={to}"
        ),
    )
    .await;
    let cohorts = got["cohorts"].as_array().unwrap();
    assert_eq!(cohorts.len(), 10, "a cohort per day");
    let mut size = 0;
    for (i, c) in cohorts.iter().enumerate() {
        let values = c["values"].as_array().unwrap();
        assert_eq!(values.len(), 10 - i, "periods up to the range's end");
        assert_eq!(values[0], c["size"]);
        assert!(c["start"].as_str().unwrap().ends_with('Z'));
        size += c["size"].as_u64().unwrap();
    }
    assert_eq!(size, everyone.len() as u64, "each person in one cohort");

    for (query, param) in [
        ("step=a", "step"),
        ("step=a&step=b&window=soon", "window"),
        ("step=a&step=$pageview:p", "step"),
        ("step=a&step=b&site=nowhere", "site"),
        ("step=a&step=b&colour=red", "colour"),
    ] {
        refuses(&app, &format!("/api/v1/funnel?{query}"), param).await;
    }
    for (query, param) in [("interval=month", "interval"), ("tz=Mars/Base", "tz")] {
        refuses(&app, &format!("/api/v1/retention?{query}"), param).await;
    }
    let (status, _) = send(&app, "GET", "/api/v1/funnel?step=a&step=b", None, None).await;
    assert_eq!(status, 401);

    // User paths: every session starts at /p (the one page), then leaves or walks events.
    let sessions: BTreeSet<&String> = events.iter().map(|e| &e.session).collect();
    let got = get(&app, &format!("/api/v1/paths?from={from}&to={to}")).await;
    assert_eq!(got["sessions"].as_u64().unwrap(), sessions.len() as u64);
    let paths = got["paths"].as_array().unwrap();
    assert_eq!(paths[0]["steps"], json!(["/p", "(end)"]), "{got}");
    assert_eq!(paths[0]["count"].as_u64().unwrap(), sessions.len() as u64);
    let got = get(
        &app,
        &format!("/api/v1/paths?type=events&start=add_to_cart&depth=2&from={from}&to={to}"),
    )
    .await;
    let nodes = got["nodes"].as_array().unwrap();
    assert_eq!(nodes[0][0]["label"], "add_to_cart");
    let links = got["links"].as_array().unwrap();
    let first: u64 = links
        .iter()
        .filter(|l| l["depth"] == 0)
        .map(|l| l["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        first,
        got["sessions"].as_u64().unwrap(),
        "every path takes a first step"
    );
    for (query, param) in [
        ("depth=0", "depth"),
        ("direction=sideways", "direction"),
        ("start=buy", "start"),
        ("type=clicks", "type"),
    ] {
        refuses(&app, &format!("/api/v1/paths?{query}"), param).await;
    }
}

#[actix_web::test]
async fn struggling_users_come_first_with_many_short_sessions() {
    let (_dir, events, state, start) = setup().await;
    let app = app!(state);
    post_all(&app, &events, AGENTS[1].1).await;
    let person = people(&events);
    let (from, to) = (start + DAY, start + 9 * DAY);
    // Each session's span, then each person's sessions that began in the range.
    let mut spans: BTreeMap<&String, (i64, i64, &String)> = BTreeMap::new();
    for e in &events {
        let s = spans
            .entry(&e.session)
            .or_insert((e.t, e.t, &person[&e.anon]));
        s.0 = s.0.min(e.t);
        s.1 = s.1.max(e.t);
    }
    let mut per: BTreeMap<&String, (u64, i64)> = BTreeMap::new();
    for (first, last, who) in spans.values() {
        if *first >= from && *first < to {
            let p = per.entry(who).or_default();
            p.0 += 1;
            p.1 += last - first;
        }
    }
    let mut want: Vec<(&String, u64, f64)> = per
        .into_iter()
        .map(|(who, (n, ms))| (who, n, ms as f64 / 1000.0 / n as f64))
        .collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.total_cmp(&b.2)).then(a.0.cmp(b.0)));
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let range = format!("from={}&to={}", iso(from), iso(to));

    // Two pages of five, then the rest.
    let mut got = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(
            &app,
            &format!("/api/v1/users?sort=struggling&limit=5&{range}{cursor}"),
        )
        .await;
        for u in page["users"].as_array().unwrap() {
            got.push((
                u["id"].as_str().unwrap().to_owned(),
                u["sessions_in_range"].as_u64().unwrap(),
                u["avg_session_seconds"].as_f64().unwrap(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.0, g.1), (w.0, w.1));
        assert!((g.2 - w.2).abs() < 1e-6, "{g:?} {w:?}");
    }
    assert!(want[0].1 > want[want.len() - 1].1, "the counts differ");

    // Only people with at least 3 sessions averaging at most 10 minutes.
    let page = get(
        &app,
        &format!("/api/v1/users?min_sessions=3&max_avg_session=600&limit=1000&{range}"),
    )
    .await;
    let ids: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = want
        .iter()
        .filter(|w| w.1 >= 3 && w.2 <= 600.0)
        .map(|w| w.0.as_str())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(ids, expected);
    let (status, body) = send(&app, "GET", "/api/v1/users?sort=loudest", Some("t"), None).await;
    assert_eq!(status, 400, "{body}");
}

#[actix_web::test]
async fn the_session_list_pages_through_every_session_newest_first() {
    let (_dir, events, state, start) = setup().await;
    let app = app!(state);
    post_all(&app, &events, AGENTS[1].1).await;
    let person = people(&events);
    let (from, to) = (start + DAY, start + 8 * DAY);
    // Each session from the raw events: first and last time, events, page views, its person.
    type Span<'a> = (i64, i64, u64, u64, &'a String);
    let mut spans: BTreeMap<&String, Span> = BTreeMap::new();
    for e in &events {
        let s = spans
            .entry(&e.session)
            .or_insert((e.t, e.t, 0, 0, &person[&e.anon]));
        s.0 = s.0.min(e.t);
        s.1 = s.1.max(e.t);
        s.2 += 1;
        s.3 += u64::from(e.kind == "page");
    }
    let mut want: Vec<(&String, &Span)> = spans
        .iter()
        .filter(|(_, s)| s.0 >= from && s.0 < to)
        .map(|(id, s)| (*id, s))
        .collect();
    want.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let range = format!("from={}&to={}", iso(from), iso(to));

    // Pages of 9 until no cursor: every session once, newest first, as the raw events say.
    let (mut got, mut cursor, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page = get(&app, &format!("/api/v1/sessions?limit=9&{range}{cursor}")).await;
        pages += 1;
        got.extend(page["sessions"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={}", c.replace('+', "%2B")),
            None => break,
        }
    }
    assert!(want.len() > 20 && pages > 2, "{} sessions", want.len());
    assert_eq!(got.len(), want.len());
    for (g, (id, (first, last, n, pv, who))) in got.iter().zip(&want) {
        assert_eq!(g["session_id"], json!(id));
        assert_eq!(g["started_at"], json!(iso(*first)));
        assert_eq!(g["ended_at"], json!(iso(*last)));
        assert_eq!(g["duration_seconds"], json!((last - first) as f64 / 1000.0));
        assert_eq!(
            (g["events"].as_u64(), g["pageviews"].as_u64()),
            (Some(*n), Some(*pv))
        );
        assert_eq!(g["user"], json!(who));
        assert_eq!(
            g["browser"],
            json!(AGENTS[1].0),
            "the browser the events came from"
        );
    }
    let stats = get(&app, &format!("/api/v1/sessions/stats?{range}")).await;
    assert_eq!(stats["total_sessions"], json!(want.len()));

    // One person's sessions; a session of the list opens by its ID.
    let ann = get(
        &app,
        &format!("/api/v1/sessions?limit=1000&{range}&user=ann@example.com"),
    )
    .await;
    let ann: Vec<&Value> = ann["sessions"].as_array().unwrap().iter().collect();
    let mine = want.iter().filter(|w| w.1 .4 == "ann@example.com").count();
    assert!(mine > 0);
    assert_eq!(ann.len(), mine);
    let id = ann[0]["session_id"].as_str().unwrap();
    let one = get(&app, &format!("/api/v1/sessions/{id}")).await;
    assert_eq!(
        one["session"]["events"].as_array().unwrap().len() as u64,
        ann[0]["events"].as_u64().unwrap()
    );

    for (query, param) in [
        ("limit=0", "limit"),
        ("cursor=nope", "cursor"),
        ("split=browser", "split"),
    ] {
        refuses(&app, &format!("/api/v1/sessions?{query}"), param).await;
    }
}
