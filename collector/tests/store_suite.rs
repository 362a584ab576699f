//! One suite over the `Store` trait, run against SQLite and against a real ClickHouse: the same
//! generated events go into both, and every analysis method must give the same answer —
//! insights for each metric, interval, time zone, split and filter (event columns, `event.KEY`
//! and `user.KEY`), `by` with `split`, sites, the users feed page by page (filtered too), each
//! user and session, session statistics with every split, event names, property keys,
//! reports and erasure. Some batches are sent
//! twice: both stores must find the same duplicates and count nothing twice.

mod common {
    pub mod clickhouse;
    pub mod rng;
}

use common::clickhouse::ClickHouseServer;
use common::rng::Rng;
use footfall_collector::config::Durability;
use footfall_collector::store::*;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// A string with every character that needs escaping somewhere.
const AWKWARD: &str = "O'Brien \\ \"q\" é😀\ttab";

fn blank(event_id: String) -> StoredEvent {
    StoredEvent {
        event_id,
        site: "demo".into(),
        kind: "track",
        screen: "1920x1080".into(),
        viewport: "1280x720".into(),
        language: "en-GB".into(),
        timezone: "Europe/London".into(),
        sdk: "footfall-web/0.1.0".into(),
        props: "{}".into(),
        ..Default::default()
    }
}

/// Visitors over about seven weeks, each event at its own millisecond, in time order.
fn generate(start: i64) -> Vec<StoredEvent> {
    let mut rng = Rng(0x0ff1_ce5e_ed00_1234);
    let mut out = Vec::new();
    let mut n = 0u64;
    let browsers = [
        ("Chrome", "120.0.6099", "Windows", "desktop"),
        ("Firefox", "121.0", "Linux", "desktop"),
        ("Safari", "17.1", "iOS", "mobile"),
        ("Edge", "", "Windows", "desktop"),
        ("HeadlessChrome", "143.0.0.0", "Linux", "bot"),
    ];
    let paths = ["/", "/pricing", "/PRO/plans", "/docs/a?b", "/p/é"];
    let countries = ["GB", "FR", "US", "IN", ""];
    for v in 0..70u64 {
        let anon = format!("anon-{v:03}");
        // Visitors 0 and 1 are one person on two browsers; every fourth signs in; one user ID
        // has a quote in it.
        let user_id = match v {
            0 | 1 => Some("ann@example.com".to_owned()),
            7 => Some("o'neil\\x@example.com".to_owned()),
            _ if v.is_multiple_of(4) => Some(format!("user{v}@example.com")),
            _ => None,
        };
        // Visitor 1 (the second browser of visitor 0's person) is a bot: a person with
        // people's and bots' events both.
        let pick = if v == 1 { 4 } else { rng.next(5) as usize };
        let (browser, version, os, device) = browsers[pick];
        let country = rng.pick(&countries);
        // Two sites: every third visitor is on the shop's.
        let site = if v % 3 == 2 { "shop" } else { "demo" };
        let mut identified = false;
        let mut t = start + rng.next(45 * DAY as u64) as i64;
        // Visitors 0 and 1 have two sessions at least, so both are identified as Ann.
        let sessions = (1 + rng.next(4)).max(if v < 2 { 2 } else { 1 });
        for s in 0..sessions {
            let session = format!("sess-{v:03}-{s}");
            let pages = 1 + rng.next(4);
            let mut seq = 0;
            for p in 0..pages {
                let path = rng.pick(&paths);
                let mut kinds = vec![("page", "$pageview".to_owned())];
                if rng.next(3) == 0 {
                    kinds.push(("track", rng.pick(&["signup_clicked", "buy", "play"]).into()));
                }
                if user_id.is_some() && s == 1 && p == 0 && !identified {
                    kinds.push(("identify", "$identify".into()));
                }
                if rng.next(2) == 0 || pages == 1 {
                    kinds.push(("track", "$pageleave".into()));
                }
                if v % 5 == 2 && p == 0 {
                    kinds.push(("set", "$set".into()));
                }
                for (kind, name) in kinds {
                    n += 1;
                    seq += 1;
                    t += 1 + rng.next(90_000) as i64 + (n % 7) as i64;
                    if kind == "identify" {
                        identified = true;
                    }
                    let mut e = blank(format!("019ab0b4-0000-7000-8000-{n:012x}"));
                    e.kind = kind;
                    e.name = name.clone();
                    e.time_ms = t;
                    e.client_ms = t - 1500;
                    e.server_ms = t + 20;
                    e.anonymous_id = anon.clone();
                    e.site = site.into();
                    e.user_id = if identified { user_id.clone() } else { None };
                    e.session_id = session.clone();
                    e.seq = seq;
                    e.path = path.into();
                    e.url = format!("https://shop.example{path}");
                    e.title = if n.is_multiple_of(9) {
                        AWKWARD.into()
                    } else {
                        format!("Page {path}")
                    };
                    e.browser = browser.into();
                    e.browser_version = version.into();
                    e.os = os.into();
                    e.device = device.into();
                    if device == "bot" {
                        e.bot_reason = Some("crawler-list: HeadlessChrome".into());
                    }
                    e.country = country.into();
                    e.city = if country == "FR" {
                        "Paris".into()
                    } else {
                        String::new()
                    };
                    e.referrer_domain =
                        rng.pick(&["", "google.com", "news.ycombinator.com"]).into();
                    e.utm_source = rng.pick(&["", "", "newsletter"]).into();
                    let v_value = match rng.next(9) {
                        0 => "150".to_owned(),
                        1 => "\"150\"".to_owned(),
                        2 => "1.5".into(),
                        3 => "true".into(),
                        4 => "\"abc\"".into(),
                        5 => "[1,2]".into(),
                        6 => "-3".into(),
                        7 => "1e20".into(),
                        _ => "\"\"".into(),
                    };
                    e.props = match rng.next(4) {
                        0 => "{}".into(),
                        1 => format!(
                            r#"{{"plan":"{}","price":{},"v":{v_value}}}"#,
                            rng.pick(&["free", "pro", "team"]),
                            rng.next(120)
                        ),
                        2 => format!(
                            r#"{{"v":{v_value},"tags":["a","b"],"q":{}}}"#,
                            serde_json::json!(AWKWARD)
                        ),
                        _ => format!(r#"{{"price":{}.5,"flag":false}}"#, rng.next(99)),
                    };
                    if kind == "identify" || kind == "set" {
                        e.traits = Some(format!(
                            r#"{{"plan":"{}","seats":{},"name":{}}}"#,
                            rng.pick(&["free", "pro", "team"]),
                            rng.next(50),
                            serde_json::json!(if v == 7 { AWKWARD } else { "N" })
                        ));
                    }
                    out.push(e);
                }
            }
            t += HOUR + rng.next(5 * DAY as u64) as i64;
        }
    }
    out.sort_by_key(|e| e.time_ms);
    out
}

fn insert(store: &dyn Store, events: Vec<StoredEvent>) -> Vec<bool> {
    store.insert(events).blocking_recv().unwrap().unwrap()
}

fn fields(names: &[&str]) -> Vec<Option<Field>> {
    names
        .iter()
        .map(|n| (!n.is_empty()).then(|| Field::parse(n).unwrap()))
        .collect()
}

#[test]
fn sqlite_and_clickhouse_give_the_same_answers() {
    let server = ClickHouseServer::start();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Sqlite::open(dir.path(), Durability::Process).unwrap();
    let ch = ClickHouse::open(&server.url("suite"), dir.path(), 1 << 30).unwrap();
    let stores: [&dyn Store; 2] = [&sqlite, &ch];

    let start = 1_790_000_000_000; // 2026-09-21
    let events = generate(start);
    assert!(events.len() > 600, "{} events", events.len());
    let end = events.last().unwrap().time_ms + 1;
    // In batches; every fifth batch twice (all duplicates the second time), and one batch that
    // holds an event twice.
    for (b, chunk) in events.chunks(37).enumerate() {
        let mut batch = chunk.to_vec();
        if b == 3 {
            batch.push(chunk[0].clone());
        }
        let outcomes: Vec<Vec<bool>> = stores.iter().map(|s| insert(*s, batch.clone())).collect();
        assert_eq!(outcomes[0], outcomes[1], "batch {b}");
        if b % 5 == 0 {
            let again: Vec<Vec<bool>> = stores.iter().map(|s| insert(*s, batch.clone())).collect();
            assert_eq!(again[0], vec![false; batch.len()]);
            assert_eq!(again[1], again[0], "batch {b} again");
        }
    }
    // A copy, as two collectors racing leave it: a second collector whose duplicate check
    // ran before the first one's insert landed (here: `event_ids` without the event) stores
    // the event again. Queries must still count it once.
    let copy = &events[10].event_id;
    server.query("RENAME TABLE suite.event_ids TO suite.event_ids_all");
    server.query("CREATE TABLE suite.event_ids AS suite.event_ids_all");
    server.query(&format!(
        "INSERT INTO suite.event_ids SELECT event_id FROM suite.event_ids_all
         WHERE event_id != '{copy}'"
    ));
    server.query("DROP TABLE suite.event_ids_all");
    // Not merged away while the answers are compared (until the erase).
    server.query("SYSTEM STOP MERGES suite.events");
    let racer_dir = dir.path().join("racer");
    std::fs::create_dir_all(&racer_dir).unwrap();
    let racer = ClickHouse::open(&server.url("suite"), &racer_dir, 1 << 30).unwrap();
    assert_eq!(insert(&racer, vec![events[10].clone()]), [true]);
    drop(racer);
    assert_eq!(
        server
            .query(&format!(
                "SELECT count() FROM suite.events WHERE event_id = '{copy}'"
            ))
            .trim(),
        "2",
        "the copy is stored"
    );

    let same = |what: &str, f: &dyn Fn(&dyn Store) -> String| {
        let a = f(stores[0]);
        let b = f(stores[1]);
        assert_eq!(a, b, "{what}: SQLite (left) and ClickHouse (right) differ");
    };

    // Insights.
    let tzs = [
        chrono_tz::UTC,
        chrono_tz::Europe::Paris,
        chrono_tz::America::New_York,
        chrono_tz::Asia::Kolkata,
    ];
    let intervals = [
        Interval::Hour,
        Interval::Day,
        Interval::Week,
        Interval::Month,
    ];
    let metrics = [Metric::Users, Metric::Sessions, Metric::Events];
    let query = |metric, interval, tz, by: Option<Field>, filters: Vec<Filter>| {
        let (from_ms, to_ms) = match interval {
            Interval::Hour => (start + 3 * DAY + 7 * HOUR / 3, start + 6 * DAY),
            _ => (start + DAY / 3, end),
        };
        InsightsQuery {
            metric,
            from_ms,
            to_ms,
            interval,
            events: Vec::new(),
            by,
            split: None,
            filters,
            sites: Vec::new(),
            tz,
        }
    };
    for metric in metrics {
        for interval in intervals {
            for tz in tzs {
                let q = query(metric, interval, tz, None, Vec::new());
                same(&format!("{q:?}"), &|s| {
                    format!("{:?}", s.insights(&q).unwrap())
                });
            }
        }
    }
    let splits = fields(&[
        "",
        "browser",
        "event.plan",
        "event.v",
        "user.plan",
        "name",
        "path",
        "url",
        "title",
        "country",
        "user.seats",
        "site",
    ]);
    let filter_sets: Vec<Vec<&str>> = vec![
        vec![],
        vec!["browser:eq:Chrome"],
        vec!["browser:neq:Chrome", "path:contains:pro"],
        vec!["event.price:gt:50"],
        vec!["event.price:lt:50.5"],
        vec!["event.v:gt:100"],
        vec!["event.v:lt:abc"],
        vec!["event.v:gt:ab"],
        vec!["event.v:eq:1"],
        vec!["event.v:exists"],
        vec!["event.v:contains:"],
        vec!["event.tags:contains:\"A\""],
        vec!["event.flag:eq:0"],
        vec!["user.plan:neq:free"],
        vec!["user.plan:eq:pro", "event.plan:exists"],
        vec!["user.seats:gt:20"],
        vec!["user.name:contains:o'b"],
        vec!["browser_version:gt:100"],
        vec!["browser_version:lt:18"],
        vec!["city:exists"],
        vec!["city:eq:"],
        vec!["title:eq:O'Brien \\ \"q\" é😀\ttab"],
        vec!["event.q:contains:\\ \"Q\" É"],
        vec!["url:contains:?B"],
        vec!["name:gt:$pageview"],
        vec!["referrer:lt:h"],
        vec!["device:neq:bot"],
        vec!["device:eq:bot", "browser:neq:Chrome"],
        vec!["site:eq:shop"],
    ];
    let mut i = 0usize;
    for filters in &filter_sets {
        let filters: Vec<Filter> = filters.iter().map(|f| Filter::parse(f).unwrap()).collect();
        for split in &splits {
            i += 1;
            // Walk the metrics, intervals and zones as the combinations go by.
            let q = query(
                metrics[i % 3],
                intervals[(i / 3) % 4],
                tzs[(i / 12) % 4],
                split.clone(),
                filters.clone(),
            );
            same(&format!("{q:?}"), &|s| {
                format!("{:?}", s.insights(&q).unwrap())
            });
        }
    }
    let mut q = query(
        Metric::Users,
        Interval::Day,
        tzs[1],
        fields(&["name"])[0].clone(),
        Vec::new(),
    );
    q.events = vec!["buy".into(), "$identify".into()];
    same("who used", &|s| format!("{:?}", s.insights(&q).unwrap()));

    // `by` with `split`, `split` over time, and sites.
    let site_sets: [Vec<String>; 4] = [
        vec![],
        vec!["demo".into()],
        vec!["shop".into()],
        vec!["shop".into(), "demo".into()],
    ];
    let pairs = [
        ("browser", "country"),
        ("", "browser"),
        ("name", "user.plan"),
        ("event.plan", "site"),
        ("user.plan", "event.v"),
        ("", "user.seats"),
        ("path", "url"),
    ];
    for (n, (by, split)) in pairs.iter().enumerate() {
        for (m, sites) in site_sets.iter().enumerate() {
            let k = n * 4 + m;
            let mut q = query(
                metrics[k % 3],
                intervals[(k / 3) % 4],
                tzs[k % 4],
                fields(&[by])[0].clone(),
                filter_sets[k % filter_sets.len()]
                    .iter()
                    .map(|f| Filter::parse(f).unwrap())
                    .collect(),
            );
            q.split = fields(&[split])[0].clone();
            q.sites = sites.clone();
            let answers: Vec<Insights> = stores.iter().map(|s| s.insights(&q).unwrap()).collect();
            assert_eq!(answers[0], answers[1], "{q:?}");
            if m == 0 && q.filters.is_empty() {
                assert!(!answers[0].table.is_empty(), "{q:?}");
            }
            // Every row names its split value; rows keyed by bucket with `split` alone.
            for row in &answers[0].table {
                if by.is_empty() {
                    assert!(
                        row.key.as_deref().is_some_and(|k| k.ends_with('Z')),
                        "{row:?}"
                    );
                }
            }
        }
    }
    // Events of each pair, everyone's, the copy among them: counted once.
    for metric in metrics {
        let mut q = query(
            metric,
            Interval::Week,
            tzs[2],
            fields(&["browser"])[0].clone(),
            vec![],
        );
        q.split = fields(&["country"])[0].clone();
        same(&format!("{q:?}"), &|s| {
            format!("{:?}", s.insights(&q).unwrap())
        });
    }
    // A site's answer counts only its events: the shop's users and the demo's add up to all.
    let users_of = |sites: &[String]| {
        let mut q = query(Metric::Events, Interval::Day, tzs[0], None, Vec::new());
        q.sites = sites.to_vec();
        sqlite.insights(&q).unwrap().total
    };
    assert_eq!(
        users_of(&site_sets[1]) + users_of(&site_sets[2]),
        users_of(&site_sets[0])
    );
    assert!(users_of(&site_sets[2]) > 0);
    assert_eq!(users_of(&site_sets[3]), users_of(&site_sets[0]));

    // The users feed, page by page, and searches, with bots left out, included and alone.
    let all_bots = [Bots::Exclude, Bots::Include, Bots::Only];
    let scope = |bots: Bots| Scope {
        bots,
        sites: Vec::new(),
    };
    for (contains, bots) in [None, Some("ANN"), Some("'"), Some("anon-00"), Some("")]
        .into_iter()
        .flat_map(|c| all_bots.map(|b| (c, b)))
    {
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let q = UsersQuery {
                from_ms: start,
                to_ms: end,
                limit: 7,
                cursor: cursor.clone(),
                contains: contains.map(str::to_owned),
                scope: scope(bots),
                events: Vec::new(),
                filters: Vec::new(),
                ids: None,
            };
            let pages_seen: Vec<UsersPage> = stores.iter().map(|s| s.users(&q).unwrap()).collect();
            assert_eq!(pages_seen[0], pages_seen[1], "users {q:?}");
            cursor = pages_seen[0].next.clone();
            pages += 1;
            if cursor.is_none() {
                break;
            }
        }
        if contains.is_none() {
            assert!(pages > 2, "the feed should take several pages");
        }
    }
    for bots in all_bots {
        let q = UsersQuery {
            from_ms: start + 10 * DAY,
            to_ms: start + 20 * DAY,
            limit: 100,
            cursor: None,
            contains: None,
            scope: scope(bots),
            events: Vec::new(),
            filters: Vec::new(),
            ids: None,
        };
        same("users in a window", &|s| {
            format!("{:?}", s.users(&q).unwrap())
        });
    }
    // The feed filtered by sites, events done and properties, page by page.
    let user_filters: [&[&str]; 6] = [
        &[],
        &["browser:eq:Chrome"],
        &["user.plan:neq:free"],
        &["event.price:gt:50", "path:contains:pro"],
        &["site:eq:shop"],
        &["country:exists", "user.seats:lt:30"],
    ];
    let mut filtered = 0;
    for (n, filters) in user_filters.iter().enumerate() {
        for (m, sites) in site_sets.iter().enumerate() {
            for events in [
                vec![],
                vec!["buy".to_owned()],
                vec!["play".into(), "$set".into()],
            ] {
                let mut cursor = None;
                loop {
                    let q = UsersQuery {
                        from_ms: start + 3 * DAY,
                        to_ms: end,
                        limit: 9,
                        cursor: cursor.clone(),
                        contains: (n == 2 && m == 1).then(|| "0".into()),
                        scope: Scope {
                            bots: all_bots[(n + m) % 3],
                            sites: sites.clone(),
                        },
                        events: events.clone(),
                        filters: filters.iter().map(|f| Filter::parse(f).unwrap()).collect(),
                        ids: (n == 1).then(|| {
                            vec![
                                "ann@example.com".into(),
                                "anon-003".into(),
                                "anon-010".into(),
                            ]
                        }),
                    };
                    let got: Vec<UsersPage> = stores.iter().map(|s| s.users(&q).unwrap()).collect();
                    assert_eq!(got[0], got[1], "users {q:?}");
                    filtered += got[0].users.len();
                    cursor = got[0].next.clone();
                    if cursor.is_none() {
                        break;
                    }
                }
            }
        }
    }
    assert!(filtered > 100, "{filtered} users in the filtered feeds");
    // Bots are left out by default: nobody in the default feed is only a bot, and the person
    // with a bot's browser too keeps only the other browser's sessions.
    let feed = |bots| {
        sqlite
            .users(&UsersQuery {
                from_ms: start,
                to_ms: end,
                limit: 1000,
                cursor: None,
                contains: None,
                scope: scope(bots),
                events: Vec::new(),
                filters: Vec::new(),
                ids: None,
            })
            .unwrap()
            .users
    };
    let (people, everyone, bots_only) =
        (feed(Bots::Exclude), feed(Bots::Include), feed(Bots::Only));
    assert!(!bots_only.is_empty() && people.len() < everyone.len());
    let sessions_of = |list: &[UserSummary], id: &str| {
        list.iter()
            .find(|u| u.id == id)
            .map_or(0, |u| u.session_count)
    };
    let mut mixed = 0;
    for u in &everyone {
        let (a, b) = (sessions_of(&people, &u.id), sessions_of(&bots_only, &u.id));
        assert_eq!(a + b, u.session_count, "{}", u.id);
        mixed += usize::from(a > 0 && b > 0);
    }
    assert!(mixed > 0, "a person with a bot's browser and a person's");

    // Each person and each session.
    let mut ids: Vec<String> = events.iter().map(|e| e.anonymous_id.clone()).collect();
    ids.extend(events.iter().filter_map(|e| e.user_id.clone()));
    ids.push("nobody".into());
    ids.sort();
    ids.dedup();
    for id in &ids {
        for (n, bots) in all_bots.iter().enumerate() {
            let scope = Scope {
                bots: *bots,
                sites: site_sets[n].clone(),
            };
            same(&format!("user {id} {scope:?}"), &|s| {
                format!("{:?}", s.user(id, &scope).unwrap())
            });
        }
    }
    let mut sessions: Vec<String> = events.iter().map(|e| e.session_id.clone()).collect();
    sessions.sort();
    sessions.dedup();
    for id in sessions.iter().chain([&"none".to_owned()]) {
        for (n, bots) in all_bots.iter().enumerate() {
            let scope = Scope {
                bots: *bots,
                sites: site_sets[n + 1].clone(),
            };
            same(&format!("session {id} {scope:?}"), &|s| {
                format!("{:?}", s.session(id, &scope).unwrap())
            });
        }
    }

    // Session statistics.
    for split in [
        None,
        Some(SessionField::Browser),
        Some(SessionField::Os),
        Some(SessionField::Device),
        Some(SessionField::Country),
        Some(SessionField::EntryPath),
        Some(SessionField::User),
        Some(SessionField::Site),
    ] {
        for (from_ms, to_ms) in [(start, end), (start + 5 * DAY, start + 12 * DAY)] {
            for (user, bots) in [
                None,
                Some("ann@example.com"),
                Some("anon-005"),
                Some("anon-000"),
            ]
            .into_iter()
            .flat_map(|u| all_bots.map(|b| (u, b)))
            {
                let q = SessionStatsQuery {
                    from_ms,
                    to_ms,
                    user: user.map(str::to_owned),
                    split,
                    scope: Scope {
                        bots,
                        sites: site_sets[(from_ms / DAY) as usize % 4].clone(),
                    },
                };
                same(&format!("{q:?}"), &|s| {
                    format!("{:?}", s.session_stats(&q).unwrap())
                });
            }
        }
    }

    // The session list, page by page: the same rows, in the same order, on both stores; every
    // session of the statistics once.
    for (from_ms, to_ms) in [(start, end), (start + 5 * DAY, start + 12 * DAY)] {
        for (user, bots, sites) in [None, Some("ann@example.com"), Some("anon-005")]
            .into_iter()
            .flat_map(|u| all_bots.map(|b| (u, b)))
            .flat_map(|(u, b)| site_sets.iter().map(move |s| (u, b, s.clone())))
        {
            let scope = Scope { bots, sites };
            let mut q = SessionListQuery {
                from_ms,
                to_ms,
                user: user.map(str::to_owned),
                scope: scope.clone(),
                limit: 7,
                after: None,
            };
            let mut seen = std::collections::HashSet::new();
            loop {
                let pages: Vec<SessionPage> =
                    stores.iter().map(|s| s.sessions(&q).unwrap()).collect();
                assert_eq!(
                    pages[0], pages[1],
                    "{q:?}: SQLite (left) and ClickHouse (right) differ"
                );
                for r in &pages[0].sessions {
                    assert!(
                        seen.insert(r.session_id.clone()),
                        "{q:?}: {} twice",
                        r.session_id
                    );
                }
                match (pages[0].more, pages[0].sessions.last()) {
                    (true, Some(last)) => {
                        q.after = Some((last.started_ms, last.session_id.clone()))
                    }
                    _ => break,
                }
            }
            let stats = stores[0]
                .session_stats(&SessionStatsQuery {
                    from_ms,
                    to_ms,
                    user: user.map(str::to_owned),
                    split: None,
                    scope,
                })
                .unwrap();
            assert_eq!(seen.len() as u64, stats.totals.total_sessions, "{q:?}");
        }
    }

    for (from_ms, to_ms) in [(start, end), (start + 5 * DAY, start + 9 * DAY)] {
        for (bots, sites) in all_bots
            .iter()
            .flat_map(|b| site_sets.iter().map(move |s| (b, s)))
        {
            let scope = Scope {
                bots: *bots,
                sites: sites.clone(),
            };
            same("event names", &|s| {
                format!("{:?}", s.event_names(from_ms, to_ms, &scope).unwrap())
            });
            same("property keys", &|s| {
                format!("{:?}", s.property_keys(from_ms, to_ms, &scope).unwrap())
            });
        }
    }

    // Reports: saved, renamed, shared, deleted.
    for (n, id) in ["r1", "r'2", "r3"].iter().enumerate() {
        let r = Report {
            id: id.to_string(),
            name: format!("Report {n} {AWKWARD}"),
            view: "insights".into(),
            query: "metric=users&last=30d&by=browser".into(),
            created_at: footfall_collector::store::rfc3339(start + n as i64 * 1000),
            created_by: ["admin", "Dana's \"laptop\" (token x)", ""][n].into(),
            share: (n > 0).then(|| footfall_collector::store::Share {
                token: ["", "tok'en", "t3"][n].into(),
                by: "admin".into(),
                at_ms: start + 5_000,
                expires_ms: (n == 2).then_some(start + 86_400_000),
            }),
        };
        for s in stores {
            s.save_report(r.clone()).blocking_recv().unwrap().unwrap();
        }
    }
    let mut renamed = stores[0].report("r1", false).unwrap().unwrap();
    renamed.name = "renamed".into();
    renamed.created_at = footfall_collector::store::rfc3339(start + 99_000);
    renamed.created_by = "someone else".into();
    renamed.share = Some(footfall_collector::store::Share {
        token: "shared later".into(),
        by: "Dana (token d)".into(),
        at_ms: start + 7_000,
        expires_ms: Some(start + 9_000),
    });
    for s in stores {
        s.save_report(renamed.clone())
            .blocking_recv()
            .unwrap()
            .unwrap();
    }
    same("reports", &|s| format!("{:?}", s.reports().unwrap()));
    same("report by token", &|s| {
        format!("{:?}", s.report("tok'en", true).unwrap())
    });
    same("report shared later", &|s| {
        format!("{:?}", s.report("shared later", true).unwrap())
    });
    let later = stores[0].report("shared later", true).unwrap().unwrap();
    assert_eq!(
        later.created_by, "admin",
        "the owner is kept from the first save"
    );
    assert_eq!(later.share.unwrap().expires_ms, Some(start + 9_000));
    same("report by id", &|s| {
        format!("{:?}", s.report("r1", false).unwrap())
    });
    same("delete report", &|s| {
        format!(
            "{:?} {:?}",
            s.delete_report("r3").blocking_recv().unwrap().unwrap(),
            s.delete_report("r3").blocking_recv().unwrap().unwrap()
        )
    });
    same("reports after delete", &|s| {
        format!("{:?}", s.reports().unwrap())
    });
    assert_eq!(stores[1].reports().unwrap().len(), 2);

    // Identified late, after every answer above was read: an identify of anon-003 (never
    // identified) arrives, dated before its first event, and anon-009 (never identified)
    // turns out to be a known user on another browser. Both change person in every answer,
    // their earlier events included.
    let (known_anon, known_user) = events
        .iter()
        .filter(|e| e.anonymous_id.as_str() > "anon-001")
        .find_map(|e| Some((e.anonymous_id.clone(), e.user_id.clone()?)))
        .unwrap();
    let mut both = vec![known_anon, "anon-009".to_owned()];
    both.sort();
    let mut late = Vec::new();
    for (n, anon, user) in [
        (0, "anon-003", "late@example.com"),
        (1, "anon-009", known_user.as_str()),
    ] {
        assert!(events
            .iter()
            .all(|e| e.anonymous_id != anon || e.user_id.is_none()));
        let times: Vec<i64> = events
            .iter()
            .filter(|e| e.anonymous_id == anon)
            .map(|e| e.time_ms)
            .collect();
        let mut t = times.iter().min().unwrap() - 1;
        while events.iter().any(|e| e.time_ms == t) {
            t -= 1;
        }
        let mut e = blank(format!("019ab0b4-0000-7000-8000-ffff0000000{n}"));
        e.kind = "identify";
        e.name = "$identify".into();
        e.time_ms = t;
        e.client_ms = t;
        e.server_ms = end + n;
        e.anonymous_id = anon.into();
        e.user_id = Some(user.into());
        e.session_id = format!("sess-late-{n}");
        e.seq = 1;
        e.traits = Some(format!(r#"{{"plan":"late{n}"}}"#));
        late.push(e);
    }
    for s in stores {
        insert(s, late.clone());
    }
    for metric in metrics {
        let q = query(
            metric,
            Interval::Day,
            tzs[1],
            fields(&["user.plan"])[0].clone(),
            Vec::new(),
        );
        same("insights after a late identify", &|s| {
            format!("{:?}", s.insights(&q).unwrap())
        });
    }
    let everyone = UsersQuery {
        from_ms: start,
        to_ms: end,
        limit: 1000,
        cursor: None,
        contains: None,
        scope: scope(Bots::Include),
        events: Vec::new(),
        filters: Vec::new(),
        ids: None,
    };
    same("users after a late identify", &|s| {
        format!("{:?}", s.users(&everyone).unwrap())
    });
    let filtered = UsersQuery {
        filters: vec![Filter::parse("user.plan:exists").unwrap()],
        ..everyone.clone()
    };
    same("filtered users after a late identify", &|s| {
        format!("{:?}", s.users(&filtered).unwrap())
    });
    same("sessions after a late identify", &|s| {
        let q = SessionStatsQuery {
            from_ms: start,
            to_ms: end,
            user: None,
            split: Some(SessionField::User),
            scope: scope(Bots::Include),
        };
        format!("{:?}", s.session_stats(&q).unwrap())
    });
    let identified_late = stores[1].users(&everyone).unwrap();
    assert!(identified_late
        .users
        .iter()
        .any(|u| u.id == "late@example.com" && u.anonymous_ids == ["anon-003"]));
    assert!(identified_late
        .users
        .iter()
        .any(|u| u.id == known_user && u.anonymous_ids == both));

    // Erasure: a person on two browsers, by user ID, and a visitor never identified.
    server.query("SYSTEM START MERGES suite.events");
    for person in ["ann@example.com", "anon-005"] {
        let erased: Vec<Erased> = stores
            .iter()
            .map(|s| s.erase(person).blocking_recv().unwrap().unwrap())
            .collect();
        assert_eq!(erased[0], erased[1], "erase {person}");
        assert!(erased[0].events > 0);
    }
    same("erased user", &|s| {
        format!("{:?}", s.user("anon-000", &scope(Bots::Include)).unwrap())
    });
    assert!(stores[1]
        .user("ann@example.com", &scope(Bots::Include))
        .unwrap()
        .is_none());
    for metric in metrics {
        let q = query(
            metric,
            Interval::Week,
            tzs[2],
            fields(&["user.plan"])[0].clone(),
            Vec::new(),
        );
        same("insights after erase", &|s| {
            format!("{:?}", s.insights(&q).unwrap())
        });
    }
    // Her prices are gone from every source too (on ClickHouse, `props_hourly`).
    let q = query(
        Metric::Users,
        Interval::Day,
        tzs[0],
        None,
        vec![Filter::parse("event.price:gt:50").unwrap()],
    );
    same("users with a price after erase", &|s| {
        format!("{:?}", s.insights(&q).unwrap())
    });
    let q = UsersQuery {
        from_ms: start,
        to_ms: end,
        limit: 1000,
        cursor: None,
        contains: None,
        scope: scope(Bots::Include),
        events: Vec::new(),
        filters: vec![Filter::parse("user.plan:exists").unwrap()],
        ids: None,
    };
    same("users after erase", &|s| {
        format!("{:?}", s.users(&q).unwrap())
    });
    let q = SessionStatsQuery {
        from_ms: start,
        to_ms: end,
        user: None,
        split: Some(SessionField::User),
        scope: scope(Bots::Exclude),
    };
    same("sessions after erase", &|s| {
        format!("{:?}", s.session_stats(&q).unwrap())
    });
    // Ann comes back on her first browser and signs in again: the alias is written anew (the
    // ClickHouse writer had written it before the erase), and she is one person with only the
    // new visit.
    let mut back = blank("019ab0b4-0000-7000-8000-ffffffff0001".into());
    back.kind = "page";
    back.name = "$pageview".into();
    back.anonymous_id = "anon-000".into();
    back.session_id = "sess-000-back".into();
    back.time_ms = end + HOUR;
    back.server_ms = back.time_ms;
    let mut signed_in = back.clone();
    signed_in.event_id = "019ab0b4-0000-7000-8000-ffffffff0002".into();
    signed_in.kind = "identify";
    signed_in.name = "$identify".into();
    signed_in.user_id = Some("ann@example.com".into());
    signed_in.time_ms += 1;
    signed_in.server_ms += 1;
    for s in stores {
        assert_eq!(
            insert(s, vec![back.clone(), signed_in.clone()]),
            [true, true]
        );
    }
    same("erased user back", &|s| {
        format!(
            "{:?}",
            s.user("ann@example.com", &scope(Bots::Include)).unwrap()
        )
    });
    let ann = stores[0]
        .user("ann@example.com", &scope(Bots::Include))
        .unwrap()
        .expect("Ann by user ID after returning");
    assert_eq!(ann.user.anonymous_ids, ["anon-000"]);
    let events: usize = ann.sessions.iter().map(|s| s.events.len()).sum();
    assert_eq!(events, 2, "only the visit after the erase");

    // API tokens: saved, used, revoked; a use recorded after a revocation does not revive the
    // token, even once ClickHouse has merged the versions.
    let tokens: Vec<ApiToken> = (0..3)
        .map(|n| ApiToken {
            id: format!("t{n}"),
            name: format!("Token {n} {AWKWARD}"),
            hash: format!("{n:064x}"),
            sites: vec!["a".into(), format!("s'{n}")],
            scope: if n == 0 { "admin" } else { "read" }.into(),
            created_ms: start + n,
            last_used_ms: None,
        })
        .collect();
    for s in stores {
        for t in &tokens {
            s.save_token(t.clone()).blocking_recv().unwrap().unwrap();
        }
        s.touch_token(tokens[1].clone(), start + 5_000)
            .blocking_recv()
            .unwrap()
            .unwrap();
        s.touch_token(tokens[1].clone(), start + 4_000)
            .blocking_recv()
            .unwrap()
            .unwrap();
    }
    same("tokens", &|s| format!("{:?}", s.tokens().unwrap()));
    assert_eq!(
        stores[1].tokens().unwrap()[1].last_used_ms,
        Some(start + 5_000)
    );
    same("revoke token", &|s| {
        format!(
            "{:?} {:?}",
            s.revoke_token("t2").blocking_recv().unwrap().unwrap(),
            s.revoke_token("t2").blocking_recv().unwrap().unwrap()
        )
    });
    for s in stores {
        s.touch_token(tokens[2].clone(), start + 9_000)
            .blocking_recv()
            .unwrap()
            .unwrap();
    }
    server.query("OPTIMIZE TABLE suite.api_tokens FINAL");
    same("tokens after revoke", &|s| {
        format!("{:?}", s.tokens().unwrap())
    });
    assert_eq!(stores[1].tokens().unwrap().len(), 2);
}
