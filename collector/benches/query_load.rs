//! Query benchmark: 1,000,000 generated events (about 50,000 users over 30 days, several
//! browsers, user properties, one user in 20 a bot) in SQLite, then the analyst's questions,
//! each timed over several runs and each leaving bots out, as the API does by default.
//! Bounded; stops by itself.
//!
//! `cargo bench -p footfall-collector --bench query_load` (env `QUERY_EVENTS`, default
//! 1,000,000; `QUERY_RUNS`, default 5; `QUERY_STORE`, `sqlite` (default) or `clickhouse`: a
//! ClickHouse server started for the run, as the tests start it; `QUERY_CLICKHOUSE_URL` to use
//! a running one instead, and `QUERY_REUSE=1` to query what an earlier run stored there).

#[path = "../tests/common/clickhouse.rs"]
mod clickhouse;
#[path = "../tests/common/rng.rs"]
mod rng;

use rng::Rng;

use footfall_collector::config::Durability;
use footfall_collector::store::journeys::{self, Direction, PathQuery, Step, StepQuery};
use footfall_collector::store::{
    bucket_starts, Bots, ClickHouse, Field, Filter, InsightsQuery, Interval, Metric, Scope,
    SessionField, SessionListQuery, SessionStatsQuery, Sqlite, Store, StoredEvent, UsersQuery,
};
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000;
const BROWSERS: [&str; 4] = ["Chrome", "Safari", "Firefox", "Edge"];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether generated user `user` is a bot: one in 20, none of them identified (a site's
/// traffic has bots, which every question leaves out as the API does by default).
fn bot(user: u64) -> bool {
    user % 20 == 7
}

fn event(n: u64, t: i64, user: u64, session: u64, seq: i64, rng: &mut Rng) -> StoredEvent {
    let page = rng.next(5) == 0 || seq == 1;
    let identify = user.is_multiple_of(4) && seq == 2;
    let (kind, name) = match (page, identify) {
        (_, true) => ("identify", "$identify".to_owned()),
        (true, _) => ("page", "$pageview".to_owned()),
        _ => (
            "track",
            ["add_to_cart", "search", "purchase", "$pageleave"][rng.next(4) as usize].to_owned(),
        ),
    };
    StoredEvent {
        event_id: format!("019ab0b4-0000-7000-8000-{n:012x}"),
        site: "demo".into(),
        kind,
        name,
        time_ms: t,
        client_ms: t,
        server_ms: t,
        anonymous_id: format!("anon-{user:06}"),
        user_id: (user.is_multiple_of(4) && seq >= 2).then(|| format!("user{user}@example.com")),
        session_id: format!("s-{user:06}-{session}"),
        seq,
        url: "https://shop.example/p".into(),
        path: ["/", "/p/boots", "/p/socks", "/checkout"][rng.next(4) as usize].into(),
        title: "Shop".into(),
        referrer: String::new(),
        screen: "1920x1080".into(),
        viewport: "1280x720".into(),
        language: "en-GB".into(),
        timezone: "Europe/London".into(),
        sdk: "footfall-web/0.1.0".into(),
        props: format!(r#"{{"price":{}}}"#, rng.next(200)),
        traits: identify.then(|| {
            format!(
                r#"{{"plan":"{}"}}"#,
                ["free", "pro"][(user % 8 / 4) as usize]
            )
        }),
        browser: BROWSERS[(user % 4) as usize].into(),
        browser_version: "120".into(),
        os: "Windows".into(),
        device: if bot(user) { "bot" } else { "desktop" }.into(),
        bot_reason: bot(user).then(|| "user agent: HeadlessChrome".into()),
        referrer_domain: String::new(),
        utm_source: String::new(),
        utm_medium: String::new(),
        utm_campaign: String::new(),
        utm_term: String::new(),
        utm_content: String::new(),
        country: "GB".into(),
        region: String::new(),
        city: String::new(),
        ip: None,
    }
}

/// Runs every call on `width` threads at once, each taking the next call when done, and
/// returns when all are.
fn together(calls: &[Box<dyn Fn() + Sync + '_>], width: usize) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..width.min(calls.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match calls.get(i) {
                    Some(call) => call(),
                    None => break,
                }
            });
        }
    });
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut all: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    all.sort();
    (all[all.len() / 2], all[all.len() - 1])
}

fn main() {
    let total = env_or("QUERY_EVENTS", 1_000_000) as u64;
    let runs = env_or("QUERY_RUNS", 5);
    let dir = tempfile::tempdir().unwrap();
    // QUERY_DIR keeps the database for a look afterwards.
    let path = std::env::var_os("QUERY_DIR").map_or_else(|| dir.path().to_owned(), Into::into);
    let kind = std::env::var("QUERY_STORE").unwrap_or_else(|_| "sqlite".into());
    // QUERY_CLICKHOUSE_URL uses a server already running instead of starting one.
    let given = std::env::var("QUERY_CLICKHOUSE_URL").ok();
    let server =
        (kind == "clickhouse" && given.is_none()).then(clickhouse::ClickHouseServer::start);
    let url = given.or_else(|| server.as_ref().map(|s| s.url("bench")));
    let store: Box<dyn Store> = match &url {
        Some(url) => Box::new(ClickHouse::open(url, &path, 1 << 30).unwrap()),
        None => Box::new(Sqlite::open(&path, Durability::Process).unwrap()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let start = now - 30 * DAY;
    println!("query load: generating {total} events over 30 days into {kind}");
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut n = 0u64;
    let mut batch = Vec::with_capacity(10_000);
    let mut in_flight = std::collections::VecDeque::new();
    let t0 = Instant::now();
    // QUERY_REUSE=1 with QUERY_CLICKHOUSE_URL: the events are there from an earlier run.
    let reuse = std::env::var("QUERY_REUSE").is_ok_and(|v| v == "1");
    // Each user's three sessions, a few days apart; a user's events stop at the present (a
    // user whose next event would come later has no more), and users come until there are
    // `total` events.
    let mut user = 0;
    'outer: while !reuse && n < total {
        user += 1;
        let mut t = start + rng.next(29 * DAY as u64) as i64;
        for session in 0..3 {
            for seq in 1..=(2 + rng.next(10) as i64) {
                t += 1000 + rng.next(120_000) as i64;
                if t >= now {
                    continue 'outer;
                }
                batch.push(event(n, t, user, session, seq, &mut rng));
                n += 1;
                if batch.len() == 10_000 {
                    // A few inserts in flight, so the writer can group them.
                    in_flight.push_back(store.insert(std::mem::take(&mut batch)));
                    if in_flight.len() > 4 {
                        let done = in_flight.pop_front().unwrap();
                        rt.block_on(done).unwrap().unwrap();
                    }
                    if n.is_multiple_of(500_000) {
                        println!("  {n} events stored ({:.0} s)", t0.elapsed().as_secs_f64());
                    }
                }
                if n >= total {
                    break 'outer;
                }
            }
            t += rng.next(3 * DAY as u64) as i64;
        }
    }
    if !batch.is_empty() {
        in_flight.push_back(store.insert(batch));
    }
    for done in in_flight {
        rt.block_on(done).unwrap().unwrap();
    }
    // Reused: the earlier run stored QUERY_EVENTS events (its users are not counted again).
    let users = if reuse {
        n = total;
        "its".to_owned()
    } else {
        println!(
            "  {n} events of {user} users stored in {:.1} s\n",
            t0.elapsed().as_secs_f64()
        );
        user.to_string()
    };

    // Every question leaves bots out, as the API does unless asked otherwise.
    let people = || -> Vec<Filter> { Bots::Exclude.filter().into_iter().collect() };
    let daily = |by: Option<Field>, filters: Vec<Filter>| InsightsQuery {
        metric: Metric::Users,
        from_ms: start,
        to_ms: now,
        interval: Interval::Day,
        events: Vec::new(),
        by,
        split: None,
        filters: people().into_iter().chain(filters).collect(),
        sites: Vec::new(),
        tz: chrono_tz::Tz::UTC,
    };
    // The first query reads every event into the in-memory index; later ones read only
    // what arrived since.
    let t = Instant::now();
    store.insights(&daily(None, vec![])).unwrap();
    let what = if server.is_some() || kind == "clickhouse" {
        "cold caches"
    } else {
        "builds the event index"
    };
    println!(
        "first query ({what}, {n} events): {:.0} ms\n",
        t.elapsed().as_secs_f64() * 1e3
    );
    let mut rows = Vec::new();
    // QUERY_ONLY=TEXT times only the questions whose name holds TEXT (for a profiler).
    let only = std::env::var("QUERY_ONLY").unwrap_or_default();
    let mut measure = |name: &str, goal_ms: u64, f: &mut dyn FnMut()| {
        if !name.contains(&only) {
            return;
        }
        let (median, max) = time(runs, f);
        rows.push(format!(
            "| {name} | {:.1} ms | {:.1} ms | {goal_ms} ms |",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        ));
    };
    measure("daily users, 30 days", 250, &mut || {
        store.insights(&daily(None, vec![])).unwrap();
    });
    measure("daily users by browser", 250, &mut || {
        store
            .insights(&daily(Some(Field::parse("browser").unwrap()), vec![]))
            .unwrap();
    });
    measure("daily users, filter event.price > 150", 250, &mut || {
        store
            .insights(&daily(
                None,
                vec![Filter::parse("event.price:gt:150").unwrap()],
            ))
            .unwrap();
    });
    measure("daily users, filter user.plan = pro", 250, &mut || {
        store
            .insights(&daily(
                None,
                vec![Filter::parse("user.plan:eq:pro").unwrap()],
            ))
            .unwrap();
    });
    measure("users feed, first page (50)", 100, &mut || {
        store
            .users(&UsersQuery::new(now - 7 * DAY, now, 50))
            .unwrap();
    });
    measure("session stats, 30 days", 250, &mut || {
        store
            .session_stats(&SessionStatsQuery {
                from_ms: start,
                to_ms: now,
                user: None,
                split: None,
                scope: Scope::default(),
            })
            .unwrap();
    });
    measure("session stats by browser", 250, &mut || {
        store
            .session_stats(&SessionStatsQuery {
                from_ms: start,
                to_ms: now,
                user: None,
                split: Some(SessionField::Browser),
                scope: Scope::default(),
            })
            .unwrap();
    });
    measure("users by browser split by country", 250, &mut || {
        let mut q = daily(Some(Field::parse("browser").unwrap()), vec![]);
        q.split = Field::parse("country");
        store.insights(&q).unwrap();
    });
    measure("users feed, did purchase, filter browser", 250, &mut || {
        store
            .users(&UsersQuery {
                from_ms: now - 7 * DAY,
                to_ms: now,
                limit: 50,
                cursor: None,
                contains: None,
                scope: Scope::default(),
                events: vec!["purchase".into()],
                filters: vec![Filter::parse("browser:eq:Safari").unwrap()],
                ids: None,
            })
            .unwrap();
    });
    let steps: Vec<Step> = ["$pageview", "add_to_cart", "purchase"]
        .iter()
        .map(|s| Step::parse(s).unwrap())
        .collect();
    measure("funnel, 3 steps, 30 days, 14 d window", 250, &mut || {
        let q = StepQuery {
            from_ms: start,
            to_ms: now + 14 * DAY,
            steps: steps.clone(),
            filters: people(),
            ..Default::default()
        };
        store.funnel(&q, now, 14 * DAY).unwrap();
    });
    let starts = bucket_starts(start, now, Interval::Day, chrono_tz::Tz::UTC);
    measure("retention, daily cohorts, 30 days", 250, &mut || {
        let q = StepQuery {
            from_ms: start,
            to_ms: now,
            steps: vec![Step::Any, Step::Any],
            filters: people(),
            sites: Vec::new(),
            breakdown: None,
            people: false,
            periods: Some(journeys::Periods {
                starts: starts.clone(),
                interval: Interval::Day,
                tz: chrono_tz::Tz::UTC,
            }),
        };
        store.retention(&q, &starts).unwrap();
    });
    measure("paths after a page view, 4 deep, 7 days", 250, &mut || {
        let q = PathQuery {
            from_ms: now - 7 * DAY,
            to_ms: now,
            pages_only: false,
            filters: people(),
            sites: Vec::new(),
        };
        let start = Step::Event("$pageview".into());
        store.paths(&q, &start, Direction::After, 4).unwrap();
    });
    // The dashboard's views, each as the page asks: every call of the view sent at once, six at
    // a time as a browser sends them to one host (the collector answers each on its blocking
    // pool, so two cores share them), timed until the last answer; and, for comparison, the
    // Overview's calls one after another.
    let week =
        |by: Option<&str>, events: Vec<String>, metric: Metric, interval: Interval| InsightsQuery {
            metric,
            from_ms: now - 7 * DAY,
            to_ms: now,
            interval,
            events,
            by: by.map(|f| Field::parse(f).unwrap()),
            split: None,
            filters: Bots::Exclude.filter().into_iter().collect(),
            sites: Vec::new(),
            tz: chrono_tz::Tz::UTC,
        };
    let store = &*store;
    type Call<'a> = Box<dyn Fn() + Sync + 'a>;
    let stats = move |split: Option<SessionField>| -> Call {
        Box::new(move || {
            store
                .session_stats(&SessionStatsQuery {
                    from_ms: now - 7 * DAY,
                    to_ms: now,
                    user: None,
                    split,
                    scope: Scope::default(),
                })
                .unwrap();
        })
    };
    let ask = move |q: InsightsQuery| -> Call {
        Box::new(move || {
            store.insights(&q).unwrap();
        })
    };
    let feed = move |days: i64, limit: usize| -> Call {
        Box::new(move || {
            store
                .users(&UsersQuery::new(now - days * DAY, now, limit))
                .unwrap();
        })
    };
    let mut overview: Vec<Call> = vec![
        ask(week(None, vec![], Metric::Users, Interval::Day)),
        ask(week(
            None,
            vec!["$pageview".into()],
            Metric::Events,
            Interval::Month,
        )),
        stats(None),
        stats(Some(SessionField::EntryPath)),
        ask(week(
            Some("path"),
            vec!["$pageview".into()],
            Metric::Users,
            Interval::Day,
        )),
    ];
    for by in [
        "referrer_domain",
        "utm_source",
        "utm_campaign",
        "browser",
        "os",
        "device",
        "country",
    ] {
        overview.push(ask(week(Some(by), vec![], Metric::Users, Interval::Day)));
    }
    let scope = Scope::default();
    let insights_view: Vec<Call> = vec![
        ask(daily(None, vec![])),
        feed(30, 6),
        Box::new(|| {
            store.event_names(now - 90 * DAY, now, &scope).unwrap();
        }),
        Box::new(|| {
            store.property_keys(now - 90 * DAY, now, &scope).unwrap();
        }),
    ];
    let sessions_view: Vec<Call> = vec![
        stats(None),
        ask(week(None, vec![], Metric::Sessions, Interval::Day)),
        Box::new(move || {
            store
                .sessions(&SessionListQuery {
                    from_ms: now - 7 * DAY,
                    to_ms: now,
                    user: None,
                    scope: Scope::default(),
                    limit: 25,
                    after: None,
                })
                .unwrap();
        }),
    ];
    let users_view: Vec<Call> = vec![feed(7, 50)];
    measure("event names, 90 days (the pickers)", 250, &mut || {
        store.event_names(now - 90 * DAY, now, &scope).unwrap();
    });
    measure("property keys, 90 days (the pickers)", 250, &mut || {
        store.property_keys(now - 90 * DAY, now, &scope).unwrap();
    });
    measure(
        &format!(
            "overview page: its {} calls, one after another",
            overview.len()
        ),
        250,
        &mut || overview.iter().for_each(|call| call()),
    );
    for (view, calls) in [
        ("overview page", &overview),
        ("insights page (30 days)", &insights_view),
        ("sessions page (7 days)", &sessions_view),
        ("users page (7 days)", &users_view),
    ] {
        measure(
            &format!(
                "{view}: its {} calls at once, as the page sends them",
                calls.len()
            ),
            250,
            &mut || together(calls, 6),
        );
    }
    println!("| query ({n} events, {users} users) | median | max of {runs} | goal |");
    println!("| --- | ---: | ---: | ---: |");
    for r in rows {
        println!("{r}");
    }
    // Resident memory now: the store's page cache, readers and the event index.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
    {
        println!("{line}");
    }
}
