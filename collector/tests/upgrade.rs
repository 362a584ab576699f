//! Upgrades: a collector opens a data dir written at every earlier schema version and answers
//! as a collector that stored the same events at the current version does.
//!
//! `fixtures/schema/vN.sql` is a store as the collector left it at version N (made by
//! `make.py` beside them from that version's migrations). Each is loaded into a data dir and
//! opened by the collector, which migrates it; the same events, read back from it, are stored
//! through the current writer into a fresh data dir; then every query endpoint must give both
//! the same answers.

use actix_web::{test, web, App};
use footfall_collector::app;
use footfall_collector::config::{Args, Config};
use footfall_collector::state::AppState;
use footfall_collector::store::StoredEvent;
use serde_json::Value;
use std::path::Path;

fn collector(dir: &Path) -> web::Data<AppState> {
    let config = Config::load(Args {
        data_dir: Some(dir.into()),
        admin_token: Some("t".into()),
        ..Args::default()
    })
    .unwrap();
    let store = footfall_collector::store::open(&config).unwrap();
    web::Data::new(AppState::new(config, store).unwrap())
}

/// Every event of the store at `db`, in the order it was stored.
fn events_of(db: &Path) -> Vec<StoredEvent> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT event_id, site, type, name, time_ms, client_ms, server_ms, anonymous_id,
                    user_id, session_id, seq, url, path, title, referrer, screen, viewport,
                    language, timezone, sdk, props, traits, browser, browser_version, os, device,
                    bot_reason, referrer_domain, utm_source, utm_medium, utm_campaign, utm_term,
                    utm_content, country, region, city, ip
             FROM events ORDER BY rowid",
        )
        .unwrap();
    stmt.query_map([], |r| {
        let kind: String = r.get(2)?;
        Ok(StoredEvent {
            event_id: r.get(0)?,
            site: r.get(1)?,
            kind: match kind.as_str() {
                "page" => "page",
                "identify" => "identify",
                "set" => "set",
                _ => "track",
            },
            name: r.get(3)?,
            time_ms: r.get(4)?,
            client_ms: r.get(5)?,
            server_ms: r.get(6)?,
            anonymous_id: r.get(7)?,
            user_id: r.get(8)?,
            session_id: r.get(9)?,
            seq: r.get(10)?,
            url: r.get(11)?,
            path: r.get(12)?,
            title: r.get(13)?,
            referrer: r.get(14)?,
            screen: r.get(15)?,
            viewport: r.get(16)?,
            language: r.get(17)?,
            timezone: r.get(18)?,
            sdk: r.get(19)?,
            props: r.get(20)?,
            traits: r.get(21)?,
            browser: r.get(22)?,
            browser_version: r.get(23)?,
            os: r.get(24)?,
            device: r.get(25)?,
            bot_reason: r.get(26)?,
            referrer_domain: r.get(27)?,
            utm_source: r.get(28)?,
            utm_medium: r.get(29)?,
            utm_campaign: r.get(30)?,
            utm_term: r.get(31)?,
            utm_content: r.get(32)?,
            country: r.get(33)?,
            region: r.get(34)?,
            city: r.get(35)?,
            ip: r.get(36)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

const RANGE: &str = "from=2026-05-31&to=2026-06-05";

fn questions() -> Vec<String> {
    let mut q: Vec<String> = [
        "/api/v1/insights?metric=users&interval=day",
        "/api/v1/insights?metric=sessions&by=browser",
        "/api/v1/insights?metric=events&by=name",
        "/api/v1/insights?metric=sessions&interval=day&split=path",
        "/api/v1/insights?metric=users&event=add_to_cart&filter=user.plan:eq:team",
        "/api/v1/insights?metric=users&by=user.plan",
        "/api/v1/insights?metric=events&filter=event.price:gt:12",
        "/api/v1/users?limit=100",
        "/api/v1/users?contains=ann",
        "/api/v1/sessions/stats?",
        "/api/v1/sessions/stats?split=entry_path",
        "/api/v1/sessions/stats?split=browser",
        "/api/v1/sessions/stats?user=ann@example.com",
        "/api/v1/events?",
        "/api/v1/properties?",
        "/api/v1/properties/values?field=event.product",
    ]
    .iter()
    .map(|q| format!("{q}&{RANGE}"))
    .collect();
    for path in [
        "/api/v1/users/ann@example.com",
        "/api/v1/users/anon-1",
        "/api/v1/users/bob@example.com",
        "/api/v1/users/anon-2",
        "/api/v1/sessions/s-1-0",
        "/api/v1/sessions/s-2-4",
    ] {
        q.push(path.into());
    }
    q
}

async fn answers(state: &web::Data<AppState>) -> Vec<(String, u16, Value)> {
    let app = test::init_service(App::new().configure(app::configure(state.clone()))).await;
    let mut out = Vec::new();
    for q in questions() {
        let req = test::TestRequest::get()
            .uri(&q)
            .insert_header(("Authorization", "Bearer t"))
            .to_request();
        let r = test::call_service(&app, req).await;
        let status = r.status().as_u16();
        let body: Value = serde_json::from_slice(&test::read_body(r).await).unwrap();
        out.push((q, status, body));
    }
    out
}

#[actix_web::test]
async fn every_earlier_schema_opens_and_answers_as_the_current_one() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema");
    let mut versions: Vec<u32> = std::fs::read_dir(&fixtures)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix('v')?.strip_suffix(".sql")?.parse().ok()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=versions.len() as u32).collect::<Vec<_>>());
    assert!(versions.len() >= 6, "a fixture for every released version");

    for version in versions {
        let old = tempfile::tempdir().unwrap();
        let db = old.path().join("footfall.sqlite");
        let sql = std::fs::read_to_string(fixtures.join(format!("v{version}.sql"))).unwrap();
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(&sql)
            .unwrap();
        let upgraded = collector(old.path());
        let events = events_of(&db);
        assert!(events.len() > 50, "v{version}: the fixture has visits");

        let fresh_dir = tempfile::tempdir().unwrap();
        let fresh = collector(fresh_dir.path());
        let outcome = fresh.store.insert(events).await.unwrap().unwrap();
        assert!(outcome.iter().all(|&new| new));

        let (got, want) = (answers(&upgraded).await, answers(&fresh).await);
        for ((q, status, body), (_, want_status, want_body)) in got.iter().zip(&want) {
            assert_eq!(*want_status, 200, "{q}: {want_body}");
            assert_eq!(
                (status, body),
                (want_status, want_body),
                "v{version}, upgraded vs stored now: {q}"
            );
        }
        let v: u32 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert!(v >= version, "migrated forward");
    }
}
