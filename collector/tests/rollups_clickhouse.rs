//! The ClickHouse rollups (`users_hourly`, `session_rollup`, `steps_hourly`, `anon_rollup`,
//! `trait_rollup`) against SQLite on the same events: users counted per hour, day and week
//! with `by`, `split`, bots, sites, user properties and partial hours at the ends of a range, session statistics and lists, and retention by any
//! or named steps, must be SQLite's answers exactly,
//! through duplicates replayed, an identify arriving later that merges two anonymous IDs into
//! one person, and a database whose rollups are made and filled from `events` on start (and
//! filled again after a fill cut short).
//! A row slipped into the rollup behind the store's back must change the answer: the rollup
//! is what these answers read.
//! Property keys, which ClickHouse looks for in the range's last day or week first, are
//! SQLite's too, whichever window holds the latest events.

mod common {
    pub mod clickhouse;
}

use common::clickhouse::ClickHouseServer;
use footfall_collector::config::Durability;
use footfall_collector::store::journeys::Step;
use footfall_collector::store::*;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// 2026-09-21T00:00:00Z, a Monday.
const START: i64 = 1_790_035_200_000;

/// Visitor `v`'s events: sessions on three days, at odd minutes (so ranges cut hours), on
/// two sites, some visitors bots; `anon-3` signs in as `bob` in its second session.
fn visitor(v: u64, ids: &mut u64) -> Vec<StoredEvent> {
    let browsers = [
        ("Chrome", "Windows", "desktop"),
        ("Firefox", "Linux", "desktop"),
        ("Safari", "iOS", "mobile"),
        ("HeadlessChrome", "Linux", "bot"),
    ];
    let (browser, os, device) = browsers[(v % 4) as usize];
    let mut out = Vec::new();
    for s in 0..3u64 {
        let mut t = START + (s as i64) * DAY + (v as i64 * 37 + s as i64 * 11) % 1400 * MINUTE;
        for p in 0..(1 + (v + s) % 4) {
            for (kind, name) in [
                ("page", "$pageview"),
                ("track", "play"),
                ("track", "$pageleave"),
            ] {
                // Some one-page sessions play (no bounce), some leave (a bounce still).
                if (name == "play" && v % 5 != 1)
                    || (name == "$pageleave" && (v + p).is_multiple_of(2))
                {
                    continue;
                }
                *ids += 1;
                t += 7 * MINUTE + (*ids as i64 % 13) * 1000;
                let signed_in = v == 3 && s >= 1;
                // User properties: set at each session's first page view by every third
                // visitor, by bob and by `anon-5` (bob's later), changing between sessions;
                // some visitors have an age and no plan.
                let first_page = p == 0 && kind == "page";
                let traits = if first_page && (v.is_multiple_of(3) || v == 5) {
                    let plan = ["free", "pro", "team"][((v / 3 + s) % 3) as usize];
                    Some(format!(r#"{{"plan":"{plan}","age":{}}}"#, 20 + v + s))
                } else if first_page && v % 7 == 1 {
                    Some(format!(r#"{{"age":{}}}"#, 20 + v))
                } else {
                    None
                };
                out.push(StoredEvent {
                    event_id: format!("019ab0b4-0000-7000-8000-{:012x}", *ids),
                    site: if v % 3 == 2 { "shop" } else { "demo" }.into(),
                    kind: if signed_in && p == 0 && kind == "page" {
                        "identify"
                    } else {
                        kind
                    },
                    name: name.into(),
                    time_ms: t,
                    client_ms: t,
                    server_ms: t,
                    anonymous_id: format!("anon-{v}"),
                    user_id: signed_in.then(|| "bob".to_owned()),
                    session_id: format!("sess-{v}-{s}"),
                    seq: p as i64 + 1,
                    path: ["/", "/pricing", "/docs"][((v + p) % 3) as usize].into(),
                    url: "https://shop.example/".into(),
                    browser: browser.into(),
                    os: os.into(),
                    device: device.into(),
                    bot_reason: (device == "bot").then(|| "crawler-list: HeadlessChrome".into()),
                    country: ["GB", "FR", ""][(v % 3) as usize].into(),
                    // A price on most events (one in five as text), a tag on some.
                    props: match *ids % 5 {
                        4 => r#"{"price":"call us","tag":"x"}"#.to_owned(),
                        k => format!(r#"{{"price":{}}}"#, (v * 37 + *ids * 11 + k) % 300),
                    },
                    traits,
                    ..Default::default()
                });
            }
        }
    }
    out
}

fn insert(store: &dyn Store, events: Vec<StoredEvent>) -> Vec<bool> {
    store.insert(events).blocking_recv().unwrap().unwrap()
}

/// Every answer the rollups give, one line each.
fn answers(store: &dyn Store) -> Vec<String> {
    let mut out = Vec::new();
    let ranges = [
        (START, START + 3 * DAY),                              // whole hours
        (START + 17 * MINUTE, START + 2 * DAY + 333 * MINUTE), // partial at both ends
        (START + 10 * MINUTE, START + 50 * MINUTE),            // inside one hour
        (START + 61 * MINUTE, START + 3 * HOUR),               // partial at the start only
    ];
    let tzs = [
        chrono_tz::UTC,
        chrono_tz::Europe::Paris,
        chrono_tz::Asia::Kolkata,
    ];
    let fields = [
        "",
        "browser",
        "site",
        "device",
        "country",
        "os",
        "path",
        "user.plan",
    ];
    let filters = [
        "",
        "device:neq:bot",
        "device:eq:bot",
        "site:eq:shop",
        "browser:contains:fire",
        "user.plan:eq:pro",
        "user.age:gt:24",
        "user.plan:neq:pro",
        "event.price:gt:150",
        "event.price:lt:40",
        "event.price:gt:-inf",
    ];
    let field = |f: &str| (!f.is_empty()).then(|| Field::parse(f).unwrap());
    let mut n = 0usize;
    for (from_ms, to_ms) in ranges {
        for interval in [Interval::Hour, Interval::Day, Interval::Week] {
            for tz in tzs {
                n += 1;
                let q = InsightsQuery {
                    metric: Metric::Users,
                    from_ms,
                    to_ms,
                    interval,
                    events: Vec::new(),
                    by: field(fields[n % fields.len()]),
                    split: field(fields[(n / 3) % fields.len()]),
                    filters: Filter::parse(filters[n % filters.len()])
                        .into_iter()
                        .collect(),
                    sites: if n % 4 == 1 {
                        vec!["shop".into()]
                    } else {
                        Vec::new()
                    },
                    tz,
                };
                out.push(format!("{q:?}\n{:?}", store.insights(&q).unwrap()));
            }
        }
    }
    // Users of some events (`steps_hourly`): by and split on the name, the page views' path
    // and the other columns, in every range, in two zones.
    let combos: [(&[&str], &str, &str); 6] = [
        (&["$pageview"], "path", ""),
        (&["$pageview"], "path", "browser"),
        (&["$pageview"], "user.plan", "path"),
        (&["play", "$pageview"], "name", "country"),
        (&["play", "$pageview"], "path", "name"),
        (&["play"], "", "user.plan"),
    ];
    for (r, &(from_ms, to_ms)) in ranges.iter().enumerate() {
        for (k, (events, by, split)) in combos.iter().enumerate() {
            for tz in [chrono_tz::UTC, chrono_tz::Europe::Paris] {
                let q = InsightsQuery {
                    metric: Metric::Users,
                    from_ms,
                    to_ms,
                    interval: if r < 2 { Interval::Day } else { Interval::Hour },
                    events: events.iter().map(|e| e.to_string()).collect(),
                    by: field(by),
                    split: field(split),
                    filters: Filter::parse(filters[(r + k) % 6]).into_iter().collect(),
                    sites: if k == 1 {
                        vec!["shop".into()]
                    } else {
                        Vec::new()
                    },
                    tz,
                };
                out.push(format!("{q:?}\n{:?}", store.insights(&q).unwrap()));
            }
        }
    }
    // Two user property filters at once (the collector decides who passes both), one of them
    // passing people without the property, beside an event column filter and a split.
    for (r, &(from_ms, to_ms)) in ranges.iter().enumerate() {
        let q = InsightsQuery {
            metric: Metric::Users,
            from_ms,
            to_ms,
            interval: Interval::Day,
            events: Vec::new(),
            by: field("browser"),
            split: field(if r % 2 == 0 { "country" } else { "" }),
            filters: ["user.plan:neq:pro", "user.age:gt:24", "device:neq:bot"]
                .iter()
                .map(|f| Filter::parse(f).unwrap())
                .collect(),
            sites: Vec::new(),
            tz: chrono_tz::UTC,
        };
        out.push(format!("{q:?}\n{:?}", store.insights(&q).unwrap()));
    }
    let scopes = [
        Scope::default(),
        Scope::from(Bots::Include),
        Scope::from(Bots::Only),
        Scope {
            bots: Bots::Exclude,
            sites: vec!["shop".into()],
        },
    ];
    // Retention (issue #18): whole hours from `users_hourly` (any event) and `steps_hourly`
    // (named steps), partial hours and half-hour zones from raw events.
    let steps = [
        (Step::Any, Step::Any),
        (Step::Page("/pricing".into()), Step::Event("play".into())),
        (Step::Event("play".into()), Step::Any),
        (Step::Event("$pageview".into()), Step::Page("/".into())),
    ];
    for (r, &(from_ms, to_ms)) in ranges.iter().enumerate() {
        for (k, (start, back)) in steps.iter().enumerate() {
            let interval = [Interval::Day, Interval::Week][(r + k) % 2];
            let tz = tzs[(r + k) % tzs.len()];
            let q = journeys::StepQuery {
                from_ms,
                to_ms,
                steps: vec![start.clone(), back.clone()],
                filters: Filter::parse(filters[(r + k) % filters.len()])
                    .into_iter()
                    .collect(),
                sites: if k == 3 {
                    vec!["demo".into()]
                } else {
                    Vec::new()
                },
                breakdown: None,
                people: false,
                periods: Some(journeys::Periods {
                    starts: bucket_starts(from_ms, to_ms, interval, tz),
                    interval,
                    tz,
                }),
            };
            let starts = bucket_starts(from_ms, to_ms, interval, tz);
            out.push(format!(
                "{q:?}\n{:?}",
                store.retention(&q, &starts).unwrap()
            ));
        }
    }
    // Funnels (issue #16): without a breakdown or people, ClickHouse reads `step_events`.
    let funnels = [
        vec![
            Step::Page("/".into()),
            Step::Event("play".into()),
            Step::Any,
        ],
        vec![Step::Event("$pageview".into()), Step::Page("/docs".into())],
        vec![
            Step::Any,
            Step::Event("play".into()),
            Step::Page("/pricing".into()),
        ],
    ];
    for (r, &(from_ms, to_ms)) in ranges.iter().enumerate() {
        for (k, steps) in funnels.iter().enumerate() {
            let q = journeys::StepQuery {
                from_ms,
                to_ms: to_ms + DAY,
                steps: steps.clone(),
                filters: Filter::parse(filters[(r + k) % filters.len()])
                    .into_iter()
                    .collect(),
                sites: if k == 2 {
                    vec!["shop".into()]
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            out.push(format!(
                "{q:?}\n{:?}",
                store.funnel(&q, to_ms, DAY).unwrap().steps
            ));
        }
    }
    let splits = [
        None,
        Some(SessionField::Browser),
        Some(SessionField::User),
        Some(SessionField::EntryPath),
        Some(SessionField::Site),
        Some(SessionField::Os),
        Some(SessionField::Device),
        Some(SessionField::Country),
    ];
    for (r, &(from_ms, to_ms)) in ranges.iter().enumerate() {
        for (k, scope) in scopes.iter().enumerate() {
            let q = SessionStatsQuery {
                from_ms,
                to_ms,
                user: (k == 1).then(|| "bob".to_owned()),
                split: splits[(k + 3 * r) % splits.len()],
                scope: scope.clone(),
            };
            out.push(format!("{q:?}\n{:?}", store.session_stats(&q).unwrap()));
            let q = SessionListQuery {
                from_ms,
                to_ms,
                user: (k == 2).then(|| "anon-7".to_owned()),
                scope: scope.clone(),
                limit: 5,
                after: None,
            };
            out.push(format!("{q:?}\n{:?}", store.sessions(&q).unwrap()));
            // The users feed (its people from `anon_rollup`), two pages of it, and one
            // person's detail, in two of the ranges.
            if r > 1 {
                continue;
            }
            let mut q = UsersQuery {
                contains: (k == 3).then(|| "anon-1".to_owned()),
                scope: scope.clone(),
                ..UsersQuery::new(from_ms, to_ms, 4)
            };
            let page = store.users(&q).unwrap();
            out.push(format!("{q:?}\n{page:?}"));
            q.cursor = page.next;
            out.push(format!("{q:?}\n{:?}", store.users(&q).unwrap()));
            out.push(format!("{:?}", store.user("bob", scope).unwrap()));
        }
    }
    out
}

fn same(what: &str, sqlite: &dyn Store, ch: &dyn Store) {
    let (a, b) = (answers(sqlite), answers(ch));
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a, b, "{what}: SQLite (left) and ClickHouse (right) differ");
    }
}

fn count(server: &ClickHouseServer, table: &str) -> u64 {
    server
        .query(&format!("SELECT count() FROM rollups.{table}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn rollups_answer_as_sqlite_does() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Sqlite::open(dir.path(), Durability::Process).unwrap();
    let url = server.url("rollups");
    let ch = ClickHouse::open(&url, dir.path(), 1 << 30).unwrap();
    let stores: [&dyn Store; 2] = [&sqlite, &ch];

    let mut ids = 0;
    let early: Vec<StoredEvent> = (0..24).flat_map(|v| visitor(v, &mut ids)).collect();
    for store in stores {
        for chunk in early.chunks(23) {
            assert!(insert(store, chunk.to_vec()).iter().all(|&f| f));
        }
    }
    for table in [
        "users_hourly",
        "session_rollup",
        "steps_hourly",
        "anon_rollup",
        "trait_rollup",
        "props_hourly",
        "trait_events",
        "step_events",
    ] {
        assert!(count(&server, table) > 0, "{table}");
    }
    same("first load", &sqlite, &ch);
    // `trait_events` holds the events that set user properties, and only those.
    let with_traits = server.query("SELECT count() FROM rollups.events WHERE traits IS NOT NULL");
    assert_ne!(with_traits.trim(), "0");
    assert_eq!(
        count(&server, "trait_events").to_string(),
        with_traits.trim()
    );
    // `step_events` holds a row for each row of `events`.
    assert_eq!(count(&server, "step_events"), count(&server, "events"));

    // Replayed: every event reported as a duplicate and counted once. And a copy stored
    // behind the insert path's back, as two collectors racing would leave it (the views
    // write its rollup rows a second time).
    for store in stores {
        assert!(insert(store, early[..40].to_vec()).iter().all(|&f| !f));
    }
    server.query(&format!(
        "INSERT INTO rollups.events SELECT * FROM rollups.events WHERE event_id = '{}'",
        early[5].event_id
    ));
    same("duplicates", &sqlite, &ch);

    // `anon-5`, seen since the first day, signs in as `bob` on the fourth: its earlier
    // events, already rolled up under its own hash, become bob's.
    let mut late = visitor(5, &mut ids);
    late.truncate(2);
    for (n, e) in late.iter_mut().enumerate() {
        e.time_ms += 3 * DAY;
        e.session_id = "sess-5-late".into();
        e.user_id = Some("bob".into());
        e.kind = if n == 0 { "identify" } else { e.kind };
    }
    let bobs_sessions = |ch: &dyn Store| {
        ch.session_stats(&SessionStatsQuery {
            from_ms: START,
            to_ms: START + 3 * DAY,
            user: Some("bob".into()),
            split: None,
            scope: Scope::default(),
        })
        .unwrap()
    };
    let before = bobs_sessions(&ch);
    for store in stores {
        assert!(insert(store, late.clone()).iter().all(|&f| f));
    }
    same("after a later identify", &sqlite, &ch);
    let after = bobs_sessions(&ch);
    assert!(
        after.totals.total_sessions > before.totals.total_sessions,
        "anon-5's sessions are bob's now: {before:?} {after:?}"
    );

    // An older database: no rollups, and events stored while there were none. On start the
    // rollups are made and filled from `events`.
    drop(ch);
    let mut more: Vec<StoredEvent> = (24..30).flat_map(|v| visitor(v, &mut ids)).collect();
    more.extend(early[..3].iter().cloned());
    {
        let old = ClickHouse::open(&url, dir.path(), 1 << 30).unwrap();
        for table in [
            "users_hourly",
            "session_rollup",
            "steps_hourly",
            "anon_rollup",
            "trait_rollup",
            "props_hourly",
            "trait_events",
            "step_events",
        ] {
            server.query(&format!("DROP TABLE rollups.{table}_feed"));
            server.query(&format!("DROP TABLE rollups.{table}"));
        }
        server.query("DROP TABLE rollups.rollups_filled");
        let fresh = insert(&old, more.clone());
        assert_eq!(fresh, insert(&sqlite, more.clone()));
    }
    let ch = ClickHouse::open(&url, dir.path(), 1 << 30).unwrap();
    same("rollups filled on start", &sqlite, &ch);
    assert_eq!(
        server.query("SELECT rollup FROM rollups.rollups_filled ORDER BY rollup"),
        "anon_rollup\ncopies\nevent_rows\nprops_hourly\nsession_rollup 3\nstep_events\nsteps_hourly\ntrait_events\ntrait_rollup\nusers_hourly\n"
    );
    // A fill that was cut short (its row in `rollups_filled` never written) runs again whole
    // on the next start, over what it had written.
    drop(ch);
    server.query("DROP TABLE rollups.rollups_filled");
    let ch = ClickHouse::open(&url, dir.path(), 1 << 30).unwrap();
    same("rollups filled twice", &sqlite, &ch);

    // A `session_rollup` of the first layout (first values as text, has-page and has-stay
    // states), filled and noted so, fed by its view: made again and filled on start.
    drop(ch);
    server.query("DROP TABLE rollups.session_rollup_feed");
    server.query("DROP TABLE rollups.session_rollup");
    let first_layout = "SELECT cityHash64(session_id) AS session_h, site, device,
            cityHash64(anonymous_id) AS anon_h, minState(time_ms) AS s_start,
            maxState(time_ms) AS s_end, maxState(toUInt8(type = 'page')) AS s_has_page,
            argMinState(browser, time_ms) AS s_browser
        FROM rollups.events GROUP BY session_h, site, device, anon_h";
    server.query(
        "CREATE TABLE rollups.session_rollup (
            session_h UInt64, site String, device String, anon_h UInt64,
            s_start AggregateFunction(min, Int64), s_end AggregateFunction(max, Int64),
            s_has_page AggregateFunction(max, UInt8),
            s_browser AggregateFunction(argMin, String, Int64)
        ) ENGINE = AggregatingMergeTree ORDER BY (session_h, site, device, anon_h)",
    );
    server.query(&format!(
        "CREATE MATERIALIZED VIEW rollups.session_rollup_feed TO rollups.session_rollup
         AS {first_layout}"
    ));
    server.query(&format!(
        "INSERT INTO rollups.session_rollup {first_layout}"
    ));
    // The notes as that version left them.
    server.query("DROP TABLE rollups.rollups_filled");
    server.query(
        "CREATE TABLE rollups.rollups_filled (rollup String, filled_ms Int64)
         ENGINE = MergeTree ORDER BY rollup",
    );
    server.query(
        "INSERT INTO rollups.rollups_filled VALUES ('session_rollup', 0), ('users_hourly', 0)",
    );
    let ch = ClickHouse::open(&url, dir.path(), 1 << 30).unwrap();
    same(
        "session_rollup of the first layout made again",
        &sqlite,
        &ch,
    );
    assert_eq!(
        server.query(
            "SELECT name FROM system.columns
             WHERE database = 'rollups' AND table = 'session_rollup'
               AND name IN ('s_browser', 's_browser_h', 's_has_page', 's_pages', 'country_h')
             ORDER BY name"
        ),
        "country_h\ns_pages\n"
    );
    assert_eq!(
        server.query("SELECT DISTINCT rollup FROM rollups.rollups_filled ORDER BY rollup"),
        // `steps_hourly`, `anon_rollup`, `trait_rollup` and `props_hourly` came after the
        // first layout, as did `event_rows` and `copies`: made (or, made already, filled
        // again) on that start too.
        "anon_rollup\ncopies\nevent_rows\nprops_hourly\nsession_rollup\nsession_rollup 3\nstep_events\nsteps_hourly\ntrait_events\ntrait_rollup\nusers_hourly\n"
    );

    // What the answers read: a user slipped into the rollup alone (an anonymous ID no event
    // has) at a whole hour is counted, so the rollup is the source, not the raw events.
    let users = |store: &dyn Store| users_in_three_days(store, "");
    assert_eq!(users(&ch), users(&sqlite));
    server.query(&format!(
        "INSERT INTO rollups.users_hourly VALUES ({}, 'demo', 'desktop', 'Chrome', 'Windows',
         'GB', cityHash64('nobody'))",
        START / HOUR + 5
    ));
    assert_eq!(users(&ch), users(&sqlite) + 1);
    // Retention reads the rollups as well: `nobody` starts a cohort (any event, from
    // `users_hourly`), and with a row of its own in `steps_hourly`, one of `play`.
    let cohort = |store: &dyn Store, start: Step| {
        let starts = bucket_starts(START, START + 3 * DAY, Interval::Day, chrono_tz::UTC);
        let q = journeys::StepQuery {
            from_ms: START,
            to_ms: START + 3 * DAY,
            steps: vec![start, Step::Any],
            filters: Vec::new(),
            sites: Vec::new(),
            breakdown: None,
            people: false,
            periods: Some(journeys::Periods {
                starts: starts.clone(),
                interval: Interval::Day,
                tz: chrono_tz::UTC,
            }),
        };
        store.retention(&q, &starts).unwrap()[0].values[0]
    };
    assert_eq!(cohort(&ch, Step::Any), cohort(&sqlite, Step::Any) + 1);
    let play = || Step::Event("play".into());
    assert_eq!(cohort(&ch, play()), cohort(&sqlite, play()));
    server.query(&format!(
        "INSERT INTO rollups.steps_hourly VALUES ('play', '', {}, 'demo', 'desktop', 'Chrome',
         'Windows', 'GB', cityHash64('nobody'))",
        START / HOUR + 5
    ));
    assert_eq!(cohort(&ch, play()), cohort(&sqlite, play()) + 1);
    // User properties come from `trait_rollup`: a plan slipped in there for `anon-1`, whose
    // events set none, makes it one more person on the pro plan.
    let pros = |store: &dyn Store| users_in_three_days(store, "user.plan:eq:pro");
    assert!(pros(&sqlite) > 0);
    assert_eq!(pros(&ch), pros(&sqlite));
    server.query(&format!(
        "INSERT INTO rollups.trait_rollup SELECT 'plan', cityHash64('anon-1'),
         argMaxState('pro', toInt64({START})), argMaxState(toUInt8(0), toInt64({START})),
         argMaxState(toFloat64(0), toInt64({START}))"
    ));
    assert_eq!(pros(&ch), pros(&sqlite) + 1);
    // An event property compared with a number comes from `props_hourly`: `nobody`, slipped
    // in there alone with a price of 999 at a whole hour, is one more person over 150.
    let dear = |store: &dyn Store| users_in_three_days(store, "event.price:gt:150");
    assert!(dear(&sqlite) > 0);
    assert_eq!(dear(&ch), dear(&sqlite));
    server.query(&format!(
        "INSERT INTO rollups.props_hourly VALUES ('price', {}, 'demo', 'desktop', 'Chrome',
         'Windows', 'GB', cityHash64('nobody'), 999, 999)",
        START / HOUR + 5
    ));
    assert_eq!(dear(&ch), dear(&sqlite) + 1);
    // The users feed lists people from `anon_rollup`: `nobody`, slipped in there alone, is
    // listed, with the times of its row.
    let feed = |store: &dyn Store| {
        let page = store
            .users(&UsersQuery::new(START, START + 3 * DAY, 1000))
            .unwrap();
        page.users
            .into_iter()
            .map(|u| (u.id, u.first_seen, u.last_seen))
            .collect::<Vec<_>>()
    };
    let before = feed(&sqlite);
    assert_eq!(feed(&ch), before);
    server.query(&format!(
        "INSERT INTO rollups.anon_rollup SELECT cityHash64('nobody'), 'demo', 'desktop',
         minState(toInt64({t})), maxState(toInt64({t})), anyState('nobody')",
        t = START + 5 * HOUR
    ));
    let after = feed(&ch);
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
    let nobody = after
        .iter()
        .find(|u| u.0 == "nobody")
        .expect("nobody listed");
    assert_eq!(
        nobody.1, nobody.2,
        "first and last seen: its one row's time"
    );
}

/// How many people `store` counts in the first three days (by day, UTC), with `filter` (a
/// filter's text, or none).
fn users_in_three_days(store: &dyn Store, filter: &str) -> u64 {
    store
        .insights(&InsightsQuery {
            metric: Metric::Users,
            from_ms: START,
            to_ms: START + 3 * DAY,
            interval: Interval::Day,
            events: Vec::new(),
            by: None,
            split: None,
            filters: Filter::parse(filter).into_iter().collect(),
            sites: Vec::new(),
            tz: chrono_tz::UTC,
        })
        .unwrap()
        .total
}

/// A SQLite store and a ClickHouse store (database `db` of `server`) side by side in `dir`.
fn both(server: &ClickHouseServer, dir: &std::path::Path, db: &str) -> (Sqlite, ClickHouse) {
    let sqlite = Sqlite::open(dir, Durability::Process).unwrap();
    let ch = ClickHouse::open(&server.url(db), dir, 1 << 30).unwrap();
    (sqlite, ch)
}

/// Event `n`, a page view at `time_ms` of visitor `anon-<v>` (three digits) on `demo` with
/// Firefox on a desktop, in the visitor's one session.
fn plain_event(n: u64, time_ms: i64, v: u64) -> StoredEvent {
    StoredEvent {
        event_id: format!("019ab0b4-0000-7000-8000-{n:012x}"),
        site: "demo".into(),
        kind: "page",
        name: "$pageview".into(),
        time_ms,
        client_ms: time_ms,
        server_ms: time_ms,
        anonymous_id: format!("anon-{v:03}"),
        session_id: format!("sess-{v:03}"),
        seq: 1,
        browser: "Firefox".into(),
        device: "desktop".into(),
        props: "{}".into(),
        ..Default::default()
    }
}

/// Property keys count the latest 5,000 events of the range. ClickHouse looks for them in the
/// range's last day first, then its last week, then all of it: the answer must be SQLite's
/// whichever window holds them.
#[test]
fn property_keys_of_the_latest_events_are_sqlites_whichever_window_holds_them() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, ch) = both(&server, dir.path(), "keys");
    let to = START + 30 * DAY;
    let mut n = 0u64;
    let mut event = |time_ms: i64, key: &str| {
        n += 1;
        StoredEvent {
            kind: "track",
            name: "play".into(),
            props: format!("{{\"{key}\": {n}, \"plan\": \"pro\"}}"),
            ..plain_event(n, time_ms, n % 50)
        }
    };
    let keys = |store: &dyn Store| {
        let k = store
            .property_keys(START, to, &Scope::default())
            .unwrap()
            .event;
        k.into_iter().map(|k| (k.key, k.count)).collect::<Vec<_>>()
    };
    // Ten days back, then 3 days back: fewer than 5,000 events in the last day or week, so
    // every window widens to the whole range.
    let old: Vec<StoredEvent> = (0..3000).map(|i| event(to - 10 * DAY + i, "old")).collect();
    let week: Vec<StoredEvent> = (0..1000).map(|i| event(to - 3 * DAY + i, "week")).collect();
    for store in [&sqlite as &dyn Store, &ch] {
        assert!(insert(store, old.clone()).iter().all(|&f| f));
        assert!(insert(store, week.clone()).iter().all(|&f| f));
    }
    let both = keys(&sqlite);
    assert_eq!(keys(&ch), both);
    assert!(both.iter().any(|k| k.0 == "old"), "{both:?}");
    // Then 6,000 in the range's last day: the latest 5,000 are all there.
    let day: Vec<StoredEvent> = (0..6000).map(|i| event(to - DAY + 10 * i, "day")).collect();
    for store in [&sqlite as &dyn Store, &ch] {
        for chunk in day.chunks(1000) {
            assert!(insert(store, chunk.to_vec()).iter().all(|&f| f));
        }
    }
    let latest = keys(&sqlite);
    assert_eq!(keys(&ch), latest);
    assert_eq!(
        latest,
        [("day".to_string(), 5000), ("plan".to_string(), 5000)],
        "only the last day's events"
    );
}

/// An insight's sample of people (the five with the latest matching events) under a user
/// property filter: ClickHouse looks for the latest 1,000 matching events in the range's last
/// day, then its last week, then all of it, each window joined with the people's properties.
/// It must name SQLite's five whichever window holds them, and the people whose latest plan
/// is another must not be among them, however recent their events.
#[test]
fn samples_under_a_user_filter_are_sqlites_whichever_window_holds_them() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, ch) = both(&server, dir.path(), "samples");
    let to = START + 30 * DAY;
    // Visitors 0 to 39: the even ones on the pro plan (set on their first event), the odd
    // ones pro first and free later.
    let plan_of = |v: u64, later: bool| if v % 2 == 1 && later { "free" } else { "pro" };
    let mut n = 0u64;
    let mut event = |time_ms: i64, v: u64, traits: Option<&str>| {
        n += 1;
        StoredEvent {
            traits: traits.map(|p| format!("{{\"plan\":\"{p}\"}}")),
            ..plain_event(n, time_ms, v)
        }
    };
    let mut first: Vec<StoredEvent> = (0..40)
        .map(|v| event(to - 20 * DAY + v as i64, v, Some(plan_of(v, false))))
        .collect();
    first.extend((0..40).map(|v| event(to - 19 * DAY + v as i64, v, Some(plan_of(v, true)))));
    let sample = |store: &dyn Store| {
        store
            .insights(&InsightsQuery {
                metric: Metric::Users,
                from_ms: START,
                to_ms: to,
                interval: Interval::Day,
                events: Vec::new(),
                by: None,
                split: None,
                filters: Filter::parse("user.plan:eq:pro").into_iter().collect(),
                sites: Vec::new(),
                tz: chrono_tz::UTC,
            })
            .unwrap()
            .sample_users
    };
    // A few events: the whole range is read.
    for store in [&sqlite as &dyn Store, &ch] {
        assert!(insert(store, first.clone()).iter().all(|&f| f));
    }
    let few = sample(&sqlite);
    assert_eq!(sample(&ch), few);
    assert_eq!(few.len(), 5, "{few:?}");
    // Then 1,520 events of everyone three days back (the last week holds the latest 1,000
    // pro events), then 3,000 in the last day, then 2,480 in the last hour (each holds
    // them), the free people's latest.
    for (back, count) in [(3 * DAY, 1520), (DAY, 3000), (HOUR, 2480)] {
        let more: Vec<StoredEvent> = (0..count)
            .map(|i| {
                let v = (i % 40) as u64;
                // The free people's events are the latest of each round of forty.
                let at = to - back + i * 20 + if v % 2 == 1 { 19 } else { 0 };
                event(at, v, None)
            })
            .collect();
        for store in [&sqlite as &dyn Store, &ch] {
            for chunk in more.chunks(1000) {
                assert!(insert(store, chunk.to_vec()).iter().all(|&f| f));
            }
        }
        let got = sample(&sqlite);
        assert_eq!(sample(&ch), got, "{back} ms back");
        assert_eq!(got.len(), 5, "{got:?}");
        // Only the pro people (even numbers), latest first: the last round of forty's.
        let want: Vec<String> = [38, 36, 34, 32, 30]
            .iter()
            .map(|v| format!("anon-{v:03}"))
            .collect();
        assert_eq!(got, want, "{back} ms back");
    }
}

/// A user property is the value set last by event time, whatever order the events arrive
/// in: a batch that arrives late with an older value changes nothing, and when an anonymous ID
/// is joined to a user, each key keeps the later of the two people's values. The user page,
/// filters and the feed must say so on both stores.
#[test]
fn user_properties_are_the_latest_set_whatever_order_they_arrive_in() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, ch) = both(&server, dir.path(), "traits");
    let mut n = 0u64;
    let mut event = |minute: i64, v: u64, user: Option<&str>, traits: &str| {
        n += 1;
        StoredEvent {
            kind: if user.is_some() { "identify" } else { "set" },
            name: if user.is_some() { "$identify" } else { "$set" }.into(),
            user_id: user.map(str::to_owned),
            traits: Some(traits.into()),
            ..plain_event(n, START + minute * MINUTE, v)
        }
    };
    // Visitor 1 sets the plan at minute 20, then a batch sent earlier arrives, with the plan
    // it set at minute 10 and a key the later one did not set.
    // Visitor 2 is carol from minute 5 (plan "team"), visitor 3 sets "pro" at minute 30 and
    // then signs in as carol at minute 40: carol's plan is "pro", her seat the one of minute 5.
    let batches = vec![
        vec![event(20, 1, None, r#"{"plan":"newer"}"#)],
        vec![event(10, 1, None, r#"{"plan":"older","seat":"a"}"#)],
        vec![event(5, 2, Some("carol"), r#"{"plan":"team","seat":"b"}"#)],
        vec![event(30, 3, None, r#"{"plan":"pro"}"#)],
        vec![event(40, 3, Some("carol"), "{}")],
    ];
    for store in [&sqlite as &dyn Store, &ch] {
        for b in &batches {
            assert!(insert(store, b.clone()).iter().all(|&f| f));
        }
    }
    let count = |store: &dyn Store, filter: &str| users_in_three_days(store, filter);
    for store in [&sqlite as &dyn Store, &ch] {
        assert_eq!(count(store, "user.plan:eq:newer"), 1);
        assert_eq!(count(store, "user.plan:eq:older"), 0);
        assert_eq!(count(store, "user.seat:eq:a"), 1);
        assert_eq!(count(store, "user.plan:eq:pro"), 1, "carol's latest plan");
        assert_eq!(count(store, "user.plan:eq:team"), 0);
        assert_eq!(count(store, "user.seat:eq:b"), 1, "carol's seat");
    }
    let carol = |store: &dyn Store| {
        let d = store.user("carol", &Scope::default()).unwrap().unwrap();
        format!("{:?}", d.user.properties)
    };
    assert_eq!(carol(&sqlite), carol(&ch));
    let feed = |store: &dyn Store| {
        let page = store
            .users(&UsersQuery::new(START, START + DAY, 10))
            .unwrap();
        format!("{page:?}")
    };
    assert_eq!(feed(&sqlite), feed(&ch));
}

/// The users feed pages through people in order of last activity, then id (its people from
/// `anon_rollup`): page after page must be SQLite's, across thirty people two to a time and
/// eighty with one time between them, identified people among them.
#[test]
fn users_feed_pages_are_sqlites_through_people_tied_on_their_last_time() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, ch) = both(&server, dir.path(), "feed");
    let event = |n: u64, time_ms: i64| StoredEvent {
        user_id: (n % 7 == 3).then(|| format!("user-{n}")),
        session_id: format!("sess-{n}"),
        ..plain_event(n, time_ms, (n * 37) % 110)
    };
    let events: Vec<StoredEvent> = (0..110)
        .map(|n| {
            let t = if n < 30 {
                START + DAY + (n / 2) as i64 * MINUTE
            } else {
                START + HOUR
            };
            event(n, t)
        })
        .collect();
    for store in [&sqlite as &dyn Store, &ch] {
        assert!(insert(store, events.clone()).iter().all(|&f| f));
    }
    let pages = |store: &dyn Store| {
        let mut q = UsersQuery::new(START, START + 2 * DAY, 10);
        let mut out = Vec::new();
        loop {
            let page = store.users(&q).unwrap();
            out.push(format!("{page:?}"));
            match page.next {
                Some(next) => q.cursor = Some(next),
                None => break out,
            }
        }
    };
    let want = pages(&sqlite);
    assert_eq!(want.len(), 11, "110 people, 10 a page");
    let got = pages(&ch);
    for (n, (a, b)) in want.iter().zip(&got).enumerate() {
        assert_eq!(
            a, b,
            "page {n}: SQLite (left) and ClickHouse (right) differ"
        );
    }
    assert_eq!(got.len(), want.len());
}

/// The session list reads whole only the days from its range's first UTC day on: a session
/// that began the day before and went on past midnight into the range began before it, and is
/// not listed, however its later events fall; one that began in the range is, with all of its
/// events, whichever day they are on. As SQLite lists them, with bots and their earlier
/// events left out.
#[test]
fn the_session_list_leaves_out_sessions_that_began_before_its_first_day() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, ch) = both(&server, dir.path(), "midnight");
    let midnight = START + 2 * DAY;
    let mut n = 0u64;
    let mut event = |time_ms: i64, v: u64| {
        n += 1;
        plain_event(n, time_ms, v)
    };
    let events = vec![
        // Visitor 1: 23:50 the day before, then 00:10 and 00:40 in the range.
        event(midnight - 10 * MINUTE, 1),
        event(midnight + 10 * MINUTE, 1),
        event(midnight + 40 * MINUTE, 1),
        // Visitor 2: begins in the range, goes on the next day.
        event(midnight + 5 * HOUR, 2),
        event(midnight + DAY + HOUR, 2),
        // Visitor 3: a bot's event two days before, then people's events in the range (the
        // bot's event is not kept, so the session begins in the range).
        StoredEvent {
            device: "bot".into(),
            ..event(midnight - 2 * DAY, 3)
        },
        event(midnight + 2 * HOUR, 3),
    ];
    for store in [&sqlite as &dyn Store, &ch] {
        assert!(insert(store, events.clone()).iter().all(|&f| f));
    }
    for from_ms in [midnight, midnight + 30 * MINUTE] {
        let q = SessionListQuery {
            from_ms,
            to_ms: midnight + 3 * DAY,
            user: None,
            scope: Scope::default(),
            limit: 10,
            after: None,
        };
        let listed = |store: &dyn Store| -> Vec<(String, u64)> {
            let page = store.sessions(&q).unwrap();
            page.sessions
                .into_iter()
                .map(|s| (s.session_id, s.events))
                .collect()
        };
        let want = listed(&sqlite);
        assert_eq!(listed(&ch), want, "from {from_ms}");
        let ids: Vec<&str> = want.iter().map(|s| s.0.as_str()).collect();
        assert!(!ids.contains(&"sess-001"), "{want:?}");
        assert!(want.contains(&("sess-002".into(), 2)), "{want:?}");
        assert!(ids.contains(&"sess-003"), "{want:?}");
    }
}

/// The session list looks for a page's sessions among those that started in the last day
/// before the page's end, then the last week, then the whole range. Page by page (the
/// cursor moving the end back), through sessions in the range's last day, a few days back,
/// ten days back, and one that began before the last day and went on into it, it must list
/// SQLite's sessions in SQLite's order.
#[test]
fn the_session_list_pages_through_its_windows_as_sqlite_does() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, ch) = both(&server, dir.path(), "listed");
    let to = START + 20 * DAY + 5 * HOUR;
    let mut n = 0u64;
    let mut event = |time_ms: i64, v: u64| {
        n += 1;
        plain_event(n, time_ms, v)
    };
    let mut events = Vec::new();
    // Twelve sessions in the last day, five three days back, nine ten days back; two of the
    // last day's share a start (ordered by id).
    for v in 0..12 {
        events.push(event(to - DAY + 1 + v as i64 * HOUR, v));
        events.push(event(to - DAY + 1 + v as i64 * HOUR + 10 * MINUTE, v));
    }
    events.push(event(to - DAY + 1 + 3 * HOUR, 12));
    for v in 20..25 {
        events.push(event(to - 3 * DAY + v as i64 * MINUTE, v));
    }
    for v in 30..39 {
        events.push(event(to - 10 * DAY + v as i64 * MINUTE, v));
    }
    // Began two hours before the last day and went on into it.
    events.push(event(to - DAY - 2 * HOUR, 40));
    events.push(event(to - DAY + 2 * HOUR, 40));
    for store in [&sqlite as &dyn Store, &ch] {
        assert!(insert(store, events.clone()).iter().all(|&f| f));
    }
    for (from_ms, limit) in [(to - 15 * DAY, 7), (to - 15 * DAY, 12), (to - 2 * DAY, 5)] {
        let mut q = SessionListQuery {
            from_ms,
            to_ms: to,
            user: None,
            scope: Scope::default(),
            limit,
            after: None,
        };
        let mut listed = Vec::new();
        loop {
            let pages: Vec<SessionPage> = [&sqlite as &dyn Store, &ch]
                .iter()
                .map(|s| s.sessions(&q).unwrap())
                .collect();
            assert_eq!(
                pages[0], pages[1],
                "{q:?}: SQLite (left), ClickHouse (right)"
            );
            listed.extend(pages[0].sessions.iter().map(|s| s.session_id.clone()));
            match (pages[0].more, pages[0].sessions.last()) {
                (true, Some(last)) => q.after = Some((last.started_ms, last.session_id.clone())),
                _ => break,
            }
        }
        let want = if from_ms == to - 2 * DAY { 14 } else { 28 };
        assert_eq!(
            listed.len(),
            want,
            "from {from_ms}, {limit} a page: {listed:?}"
        );
    }
}

/// A session's rows in `session_rollup` stay apart until ClickHouse merges the parts of its
/// inserts (here never: merges are stopped, as for the latest inserts of a busy site).
/// Session statistics put them together as SQLite groups the events: two page views in two
/// inserts are no bounce; a page view stored twice (a copy) and a page leave in another
/// insert still are; a session that spans more than 2³² ms in one row or across rows has its
/// whole length; one whose earliest event came in a later insert, before the range, is left
/// out. Split by browser and by entry path (a session's first values are its earliest
/// event's, whichever insert brought it) as well.
#[test]
fn session_statistics_put_a_sessions_rows_together_as_sqlite_does() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, ch) = both(&server, dir.path(), "parts");
    server.query("SYSTEM STOP MERGES parts.session_rollup");
    let mut n = 0u64;
    let mut event = |v: u64, time_ms: i64, name: &str| {
        n += 1;
        let page = name == "$pageview";
        StoredEvent {
            kind: if page { "page" } else { "track" },
            name: name.into(),
            path: format!("/p{}", v % 3),
            browser: if v % 2 == 1 { "Chrome" } else { "Firefox" }.into(),
            ..plain_event(n, time_ms, v)
        }
    };
    let at = |v: u64| START + DAY + v as i64 * HOUR;
    const LONG: i64 = 50 * DAY;
    let first = vec![
        event(1, at(1), "$pageview"),
        event(2, at(2), "$pageview"),
        event(3, at(3), "$pageview"),
        event(4, at(4), "$pageview"),
        event(4, at(4) + MINUTE, "$pageleave"),
        event(5, at(5), "$pageview"),
        event(6, START + 10 * MINUTE, "$pageview"),
        event(7, at(7), "$pageview"),
        event(7, at(7) + LONG, "$pageview"),
    ];
    // Later rows on another page; visitor 6's earliest event, in this insert, on Safari.
    let mut second = vec![
        event(1, at(1) + 5 * MINUTE, "$pageview"),
        event(2, at(2) + 2 * MINUTE, "$pageleave"),
        event(3, at(3) + 3 * MINUTE, "play"),
        event(5, at(5) + LONG, "play"),
        event(6, START - 10 * MINUTE, "play"),
    ];
    for e in &mut second {
        e.path = "/later".into();
    }
    second[4].browser = "Safari".into();
    for store in [&sqlite as &dyn Store, &ch] {
        assert!(insert(store, first.clone()).iter().all(|&f| f));
        assert!(insert(store, second.clone()).iter().all(|&f| f));
    }
    // Visitor 2's page view stored a second time, as two collectors racing would leave it.
    server.query(&format!(
        "INSERT INTO parts.events SELECT * FROM parts.events WHERE event_id = '{}'",
        first[1].event_id
    ));
    let rows = server.query("SELECT count() FROM parts.session_rollup");
    assert_eq!(rows.trim(), "13", "each insert's rows stay apart");
    for split in [
        None,
        Some(SessionField::Browser),
        Some(SessionField::EntryPath),
    ] {
        for (from_ms, to_ms) in [(START, START + 3 * DAY), (START - DAY, START + 60 * DAY)] {
            let q = SessionStatsQuery {
                from_ms,
                to_ms,
                user: None,
                split,
                scope: Scope::default(),
            };
            let want = sqlite.session_stats(&q).unwrap();
            assert_eq!(ch.session_stats(&q).unwrap(), want, "{q:?}");
            if split.is_none() && from_ms == START {
                // Sessions 1–5 and 7 (6 began before the range); 2 and 4 bounced.
                assert_eq!(want.totals.total_sessions, 6, "{want:?}");
                assert!(
                    (want.totals.bounce_rate - 2.0 / 6.0).abs() < 1e-9,
                    "{want:?}"
                );
                let long = 2.0 * LONG as f64 / 1000.0;
                assert!(want.totals.total_session_seconds > long, "{want:?}");
            }
        }
    }
}

/// Session statistics asked again and again while inserts land (each a part of its own, which
/// ClickHouse merges meanwhile), sessions going on from insert to insert: every answer must
/// be SQLite's after some number of those inserts, never a mix of two moments (the rows
/// summed as they were before an insert, the sessions of several rows found after it).
#[test]
fn session_statistics_while_inserts_land_are_sqlites_at_some_moment() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, ch) = both(&server, dir.path(), "meanwhile");
    const INSERTS: u64 = 16;
    let mut n = 0u64;
    // Insert `k`: visitors `k..k + 30` each go on with their session (begun in an earlier
    // insert, or now): a page view or a play, and a page leave now and then.
    let batches: Vec<Vec<StoredEvent>> = (0..INSERTS)
        .map(|k| {
            let mut out = Vec::new();
            for v in k..k + 30 {
                let time_ms = START + v as i64 * HOUR + k as i64 * MINUTE;
                for name in ["$pageview", "play", "$pageleave"] {
                    if (v + k) % 3
                        == ["$pageview", "play", "$pageleave"]
                            .iter()
                            .position(|x| *x == name)
                            .unwrap() as u64
                        || (name == "$pageview" && k == v)
                    {
                        n += 1;
                        out.push(StoredEvent {
                            kind: if name == "$pageview" { "page" } else { "track" },
                            name: name.into(),
                            browser: ["Firefox", "Chrome"][(v % 2) as usize].into(),
                            ..plain_event(n, time_ms, v)
                        });
                    }
                }
            }
            out
        })
        .collect();
    let queries: Vec<SessionStatsQuery> = [None, Some(SessionField::Browser)]
        .into_iter()
        .map(|split| SessionStatsQuery {
            from_ms: START,
            to_ms: START + 3 * DAY,
            user: None,
            split,
            scope: Scope::default(),
        })
        .collect();
    let ask = |store: &dyn Store| -> Vec<SessionStats> {
        queries
            .iter()
            .map(|q| store.session_stats(q).unwrap())
            .collect()
    };
    // SQLite's answers after each number of inserts.
    let mut moments = vec![ask(&sqlite)];
    for batch in &batches {
        assert!(insert(&sqlite, batch.clone()).iter().all(|&f| f));
        moments.push(ask(&sqlite));
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        let asker = s.spawn(|| {
            let mut seen = std::collections::BTreeSet::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                // Each question's answer on its own (an insert may land between two).
                for (i, got) in ask(&ch).into_iter().enumerate() {
                    let at = moments.iter().position(|m| m[i] == got);
                    assert!(at.is_some(), "an answer of no moment: {got:?}");
                    seen.extend(at);
                }
            }
            seen
        });
        for batch in &batches {
            assert!(insert(&ch, batch.clone()).iter().all(|&f| f));
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        asker.join().unwrap()
    });
    assert!(
        seen.len() > 2,
        "answers taken while inserts landed: {seen:?}"
    );
    assert_eq!(ask(&ch), moments[INSERTS as usize]);
}

/// The user property keys count the 5,000 people seen last: of 6,000 visitors seen one after
/// another, the first 1,000 set a key the others never do, so it is not counted; as SQLite
/// counts them.
#[test]
fn user_property_keys_count_the_people_seen_last() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, ch) = both(&server, dir.path(), "latest");
    let events: Vec<StoredEvent> = (0..6000u64)
        .map(|v| StoredEvent {
            kind: "identify",
            name: "$identify".into(),
            anonymous_id: format!("anon-{v:05}"),
            session_id: format!("sess-{v:05}"),
            traits: Some(
                if v < 1000 {
                    r#"{"early":1}"#
                } else {
                    r#"{"late":1}"#
                }
                .to_owned(),
            ),
            ..plain_event(v + 1, START + v as i64 * 1000, v)
        })
        .collect();
    for store in [&sqlite as &dyn Store, &ch] {
        for chunk in events.chunks(1000) {
            assert!(insert(store, chunk.to_vec()).iter().all(|&f| f));
        }
    }
    let keys = |store: &dyn Store| {
        let k = store
            .property_keys(START, START + DAY, &Scope::default())
            .unwrap()
            .user;
        k.into_iter().map(|k| (k.key, k.count)).collect::<Vec<_>>()
    };
    assert_eq!(keys(&sqlite), [("late".to_owned(), 5000)]);
    assert_eq!(keys(&ch), keys(&sqlite));
}
