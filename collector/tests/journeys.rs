//! Funnels and retention on both stores against a brute-force count over the raw events:
//! steps in random orders, repeated attempts, duplicates sent again, copies stored twice (in
//! ClickHouse, merges stopped), anonymous IDs merged by an identify that comes after their
//! first events, two sites, bots, a filter, days in other time zones, and steps exactly on the
//! window's edge and one millisecond past it.

mod common {
    pub mod clickhouse;
    pub mod rng;
}

use common::clickhouse::ClickHouseServer;
use common::rng::Rng;
use footfall_collector::config::Durability;
use footfall_collector::store::journeys::{self, Direction, PathQuery, Step, StepQuery};
use footfall_collector::store::*;
use std::collections::{BTreeMap, HashMap};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

const NAMES: [&str; 4] = ["view_item", "add_to_cart", "checkout", "buy"];
const PATHS: [&str; 3] = ["/", "/pricing", "/cart"];
const WINDOW: i64 = 2 * HOUR;

/// About 80 visitors over three weeks; some are one person on two browsers, joined by an
/// identify on the second browser after events on the first.
fn generate(start: i64) -> Vec<StoredEvent> {
    let mut rng = Rng(0x5eed_f00d_cafe_0001);
    let mut out = Vec::new();
    let mut n = 0u64;
    for v in 0..80u64 {
        let anon = format!("anon-{v:03}");
        // Visitors 2k and 2k+1 (k < 10) are one person, identified on the odd one only.
        let user = (v < 20 && v % 2 == 1).then(|| format!("user{}@example.com", v / 2));
        let bot = v % 13 == 5;
        let site = if v % 4 == 3 { "shop" } else { "demo" };
        let browser = ["Chrome", "Firefox", "Safari"][rng.next(3) as usize];
        let mut t = start + rng.next(20 * DAY as u64) as i64;
        let mut identified = false;
        for s in 0..1 + rng.next(4) {
            let session = format!("s-{v:03}-{s}");
            for _ in 0..1 + rng.next(7) {
                n += 1;
                let (kind, name, path) = match rng.next(6) {
                    0 | 1 => ("page", "$pageview", PATHS[rng.next(3) as usize]),
                    _ => ("track", NAMES[rng.next(4) as usize], "/"),
                };
                // Steps land at random gaps, some exactly at the window or one ms past it from
                // the visitor's last event, some at the same millisecond.
                t += match rng.next(8) {
                    0 => 0,
                    1 => WINDOW,
                    2 => WINDOW + 1,
                    3 => rng.next(3 * HOUR as u64) as i64,
                    _ => rng.next(20 * MIN as u64) as i64,
                };
                let mut e = StoredEvent {
                    event_id: format!("019ab0b4-0000-7000-8000-{n:012x}"),
                    site: site.into(),
                    kind,
                    name: name.into(),
                    time_ms: t,
                    client_ms: t,
                    server_ms: t,
                    anonymous_id: anon.clone(),
                    session_id: session.clone(),
                    seq: n as i64,
                    path: path.into(),
                    url: format!("https://shop.example{path}"),
                    props: "{}".into(),
                    browser: browser.into(),
                    device: if bot { "bot" } else { "desktop" }.into(),
                    ..Default::default()
                };
                if user.is_some() && s >= 1 && !identified {
                    identified = true;
                    let mut id = e.clone();
                    n += 1;
                    id.event_id = format!("019ab0b4-0000-7000-8000-{n:012x}");
                    id.kind = "identify";
                    id.name = "$identify".into();
                    id.user_id = user.clone();
                    out.push(id);
                }
                e.user_id = if identified { user.clone() } else { None };
                out.push(e);
            }
            t += HOUR + rng.next(3 * DAY as u64) as i64;
        }
    }
    // The person of visitor 2k is the user of 2k+1: a retroactive merge through the same user
    // ID, identified from 2k's browser at the very end.
    for k in 0..10 {
        let last = out
            .iter()
            .filter(|e| e.anonymous_id == format!("anon-{:03}", 2 * k))
            .max_by_key(|e| e.time_ms)
            .cloned();
        if let Some(mut e) = last {
            n += 1;
            e.event_id = format!("019ab0b4-0000-7000-8000-{n:012x}");
            e.kind = "identify";
            e.name = "$identify".into();
            e.time_ms += 1;
            e.user_id = Some(format!("user{k}@example.com"));
            out.push(e);
        }
    }
    out
}

/// Who each anonymous ID is: the user ID of its earliest identify, else itself.
fn people(events: &[StoredEvent]) -> HashMap<String, String> {
    let mut first: HashMap<String, (i64, String)> = HashMap::new();
    for e in events {
        if let Some(u) = &e.user_id {
            let entry = first
                .entry(e.anonymous_id.clone())
                .or_insert((e.time_ms, u.clone()));
            if e.time_ms < entry.0 {
                *entry = (e.time_ms, u.clone());
            }
        }
    }
    let mut of: HashMap<String, String> = first.into_iter().map(|(a, (_, u))| (a, u)).collect();
    for e in events {
        of.entry(e.anonymous_id.clone())
            .or_insert_with(|| e.anonymous_id.clone());
    }
    of
}

/// Each person's counted events (people's, of the sites, through the filter) in time order.
fn streams<'a>(
    events: &'a [StoredEvent],
    sites: &[&str],
    keep: &dyn Fn(&StoredEvent) -> bool,
) -> BTreeMap<String, Vec<&'a StoredEvent>> {
    let person = people(events);
    let mut out: BTreeMap<String, Vec<&StoredEvent>> = BTreeMap::new();
    for e in events {
        if e.device != "bot" && (sites.is_empty() || sites.contains(&e.site.as_str())) && keep(e) {
            out.entry(person[&e.anonymous_id].clone())
                .or_default()
                .push(e);
        }
    }
    for list in out.values_mut() {
        list.sort_by_key(|e| e.time_ms);
    }
    out
}

/// The furthest step reached from one start, trying every choice of every later step.
fn reach(events: &[&StoredEvent], steps: &[Step], k: usize, after: i64, t0: i64) -> usize {
    if k == steps.len() {
        return 0;
    }
    events
        .iter()
        .filter(|e| e.time_ms > after && e.time_ms - t0 <= WINDOW)
        .filter(|e| steps[k].matches(&e.name, &e.path))
        .map(|e| 1 + reach(events, steps, k + 1, e.time_ms, t0))
        .max()
        .unwrap_or(0)
}

/// Each step's count, each browser's, and how far each person got.
type BruteFunnel = (
    Vec<u64>,
    BTreeMap<String, Vec<u64>>,
    BTreeMap<String, usize>,
);

/// Each step's count, and each browser's (the browser of the step 1 event of the earliest
/// attempt that went furthest).
fn brute_funnel(
    events: &[StoredEvent],
    steps: &[Step],
    from: i64,
    to: i64,
    sites: &[&str],
    keep: &dyn Fn(&StoredEvent) -> bool,
) -> BruteFunnel {
    let mut counts = vec![0u64; steps.len()];
    let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut people = BTreeMap::new();
    for (person, list) in streams(events, sites, keep) {
        let list = &list;
        let mut best: Option<(usize, &str)> = None;
        for e in list
            .iter()
            .filter(|e| e.time_ms >= from && e.time_ms < to)
            .filter(|e| steps[0].matches(&e.name, &e.path))
        {
            let reached = 1 + reach(list, steps, 1, e.time_ms, e.time_ms);
            if best.is_none_or(|(b, _)| reached > b) {
                best = Some((reached, &e.browser));
            }
        }
        let Some((reached, browser)) = best else {
            continue;
        };
        people.insert(person, reached);
        let row = by
            .entry(browser.to_owned())
            .or_insert_with(|| vec![0; steps.len()]);
        for k in 0..reached {
            counts[k] += 1;
            row[k] += 1;
        }
    }
    (counts, by, people)
}

/// The period of a time: days (or Monday weeks) in the zone since the range's first.
fn period(t: i64, from: i64, week: bool, tz: chrono_tz::Tz) -> i64 {
    let local = |ms: i64| {
        let d = chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .with_timezone(&tz)
            .date_naive();
        if week {
            d - chrono::Duration::days(chrono::Datelike::weekday(&d).num_days_from_monday() as i64)
        } else {
            d
        }
    };
    let days = (local(t) - local(from)).num_days();
    if week {
        days / 7
    } else {
        days
    }
}

#[allow(clippy::too_many_arguments)]
fn brute_retention(
    events: &[StoredEvent],
    start: &Step,
    back: &Step,
    from: i64,
    to: i64,
    week: bool,
    tz: chrono_tz::Tz,
    sites: &[&str],
) -> Vec<Vec<u64>> {
    let periods = period(to - 1, from, week, tz) + 1;
    let mut cohorts: Vec<Vec<u64>> = (0..periods)
        .map(|c| vec![0u64; (periods - c) as usize])
        .collect();
    for list in streams(events, sites, &|_| true).values() {
        let in_range: Vec<&&StoredEvent> = list
            .iter()
            .filter(|e| e.time_ms >= from && e.time_ms < to)
            .collect();
        let Some(first) = in_range.iter().find(|e| start.matches(&e.name, &e.path)) else {
            continue;
        };
        let c = period(first.time_ms, from, week, tz);
        let cohort = &mut cohorts[c as usize];
        cohort[0] += 1;
        for k in 1..cohort.len() as i64 {
            if in_range.iter().any(|e| {
                back.matches(&e.name, &e.path) && period(e.time_ms, from, week, tz) == c + k
            }) {
                cohort[k as usize] += 1;
            }
        }
    }
    cohorts
}

/// A SQLite store and a ClickHouse store (database `db` on a server of its own), each empty.
struct BothStores {
    sqlite: Sqlite,
    ch: ClickHouse,
    _dir: tempfile::TempDir,
    server: ClickHouseServer,
}

impl BothStores {
    fn open(db: &str) -> BothStores {
        let server = ClickHouseServer::start();
        let dir = tempfile::tempdir().unwrap();
        BothStores {
            sqlite: Sqlite::open(dir.path(), Durability::Process).unwrap(),
            ch: ClickHouse::open(&server.url(db), dir.path(), 1 << 30).unwrap(),
            _dir: dir,
            server,
        }
    }

    fn stores(&self) -> [&dyn Store; 2] {
        [&self.sqlite, &self.ch]
    }
}

#[test]
fn funnels_and_retention_match_a_brute_force_count_on_both_stores() {
    let both = BothStores::open("journeys");
    let (stores, server) = (both.stores(), &both.server);

    let start = 1_790_000_000_000 + 7 * HOUR / 3;
    let mut events = generate(start);
    events.sort_by_key(|e| e.time_ms);
    assert!(events.len() > 500, "{} events", events.len());
    // Shuffled into batches; every third batch sent twice.
    let mut rng = Rng(7);
    let mut order: Vec<StoredEvent> = events.clone();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.next(i as u64 + 1) as usize);
    }
    for (b, chunk) in order.chunks(41).enumerate() {
        for s in stores {
            for _ in 0..1 + usize::from(b % 3 == 0) {
                s.insert(chunk.to_vec()).blocking_recv().unwrap().unwrap();
            }
        }
    }
    // Copies not merged away yet, as two collectors storing one retried batch leave them:
    // ClickHouse's answers must not change.
    server.query("SYSTEM STOP MERGES journeys.events");
    server.query(
        "INSERT INTO journeys.events SELECT * FROM journeys.events
         WHERE cityHash64(event_id) % 3 = 0",
    );
    let (rows, ids) = (
        server.query("SELECT count() FROM journeys.events"),
        server.query("SELECT uniqExact(event_id) FROM journeys.events"),
    );
    assert!(
        rows.trim().parse::<u64>().unwrap() > ids.trim().parse::<u64>().unwrap(),
        "copies stored: {rows} rows of {ids} events"
    );

    let bots = Bots::Exclude.filter().into_iter().collect::<Vec<_>>();
    let (from, to) = (start + DAY / 2, start + 18 * DAY);
    let funnels: Vec<Vec<Step>> = vec![
        vec![
            Step::Event("view_item".into()),
            Step::Event("add_to_cart".into()),
        ],
        vec![
            Step::Page("/".into()),
            Step::Event("add_to_cart".into()),
            Step::Event("checkout".into()),
            Step::Event("buy".into()),
        ],
        vec![
            Step::Event("buy".into()),
            Step::Event("buy".into()),
            Step::Page("/cart".into()),
        ],
        vec![Step::Any, Step::Event("checkout".into())],
        // Five names: ClickHouse looks them up (`transform`) rather than comparing each.
        vec![
            Step::Event("view_item".into()),
            Step::Event("add_to_cart".into()),
            Step::Event("$pageview".into()),
            Step::Event("checkout".into()),
            Step::Event("buy".into()),
        ],
        // One row can be several steps, by its name and by its path at once.
        vec![
            Step::Event("$pageview".into()),
            Step::Page("/cart".into()),
            Step::Page("/pricing".into()),
            Step::Event("$pageview".into()),
        ],
    ];
    let mut reached_last = 0;
    for (n, steps) in funnels.iter().enumerate() {
        for (sites, filter) in [
            (vec![], None),
            (vec!["shop"], None),
            (vec![], Some("Safari")),
        ] {
            let mut filters = bots.clone();
            if let Some(b) = filter {
                filters.push(Filter::parse(&format!("browser:neq:{b}")).unwrap());
            }
            // Broken down by browser (a person on two browsers counts under the one their
            // counted attempt began on).
            let q = StepQuery {
                from_ms: from,
                to_ms: to + WINDOW,
                steps: steps.clone(),
                filters,
                sites: sites.iter().map(|s| s.to_string()).collect(),
                breakdown: Field::parse("browser"),
                people: true,
                periods: None,
            };
            let keep = |e: &StoredEvent| filter.is_none_or(|b| e.browser != b);
            let (want, want_by, want_people) =
                brute_funnel(&events, steps, from, to, &sites, &keep);
            for s in stores {
                let mut found = s.step_events(&q).unwrap();
                let names = std::mem::take(&mut found.people);
                let found = journeys::funnel(found, steps.len(), from, to, WINDOW);
                let reached: BTreeMap<String, usize> = found
                    .reached
                    .iter()
                    .map(|(p, n)| (names[p].clone(), *n))
                    .collect();
                assert_eq!(reached, want_people, "funnel {n}: who reached how far");
                let got: Vec<u64> = found.steps.iter().map(|s| s.count).collect();
                assert_eq!(got, want, "funnel {n} {sites:?} {filter:?}");
                // The steps (counts and medians) of the events found with their people and
                // values, which the brute force holds; other reads must give them too.
                let verified = found.steps.clone();
                let by: BTreeMap<String, Vec<u64>> = found
                    .breakdown
                    .into_iter()
                    .map(|(k, v)| (k.unwrap_or_default(), v))
                    .collect();
                assert_eq!(by, want_by, "funnel {n} {sites:?} {filter:?} by browser");
                // The store's own funnel (a store may work it out where its events are; both
                // use the rules now), with and without the breakdown: the same counts,
                // medians and values as the rules give.
                for breakdown in [q.breakdown.clone(), None] {
                    let q = StepQuery {
                        people: false,
                        breakdown: breakdown.clone(),
                        ..q.clone()
                    };
                    let want =
                        journeys::funnel(s.step_events(&q).unwrap(), steps.len(), from, to, WINDOW);
                    let got = s.funnel(&q, to, WINDOW).unwrap();
                    assert_eq!(
                        got.steps, want.steps,
                        "funnel {n} {sites:?} {filter:?} {breakdown:?}"
                    );
                    // Without people or values, ClickHouse reads `step_events` instead.
                    assert_eq!(
                        got.steps, verified,
                        "funnel {n} {sites:?} {filter:?} {breakdown:?} as verified"
                    );
                    assert_eq!(
                        got.breakdown, want.breakdown,
                        "funnel {n} {breakdown:?} values"
                    );
                }
            }
            assert!(want[0] > 0, "funnel {n}: nobody started");
            reached_last += want[steps.len() - 1];
        }
    }
    assert!(reached_last > 0, "some funnels are completed");

    // A collector told of a native port where none answers: its large answers come over
    // HTTP instead, the same (on ClickHouse 18.16 the suite's own store reads over the
    // native protocol).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "http://127.0.0.1:{}/journeys?native_port={closed}",
        server.http_port
    );
    let fallback = ClickHouse::open(&url, dir.path(), 1 << 30).unwrap();
    for steps in &funnels {
        let q = StepQuery {
            from_ms: from,
            to_ms: to + WINDOW,
            steps: steps.clone(),
            filters: bots.clone(),
            ..Default::default()
        };
        let (got, want) = (
            fallback.funnel(&q, to, WINDOW).unwrap(),
            both.ch.funnel(&q, to, WINDOW).unwrap(),
        );
        assert_eq!(got.steps, want.steps, "{steps:?} over HTTP");
        assert!(want.steps[0].count > 0, "{steps:?}");
    }

    let mut returned = 0;
    for (start_step, back, week, tz, sites) in [
        (Step::Any, Step::Any, false, chrono_tz::UTC, vec![]),
        (
            Step::Page("/".into()),
            Step::Event("buy".into()),
            false,
            chrono_tz::America::New_York,
            vec![],
        ),
        (
            Step::Event("view_item".into()),
            Step::Any,
            true,
            chrono_tz::Asia::Kolkata,
            vec!["demo"],
        ),
    ] {
        let interval = if week { Interval::Week } else { Interval::Day };
        let starts = bucket_starts(from, to, interval, tz);
        let q = StepQuery {
            from_ms: from,
            to_ms: to,
            steps: vec![start_step.clone(), back.clone()],
            filters: bots.clone(),
            sites: sites.iter().map(|s| s.to_string()).collect(),
            breakdown: None,
            people: false,
            periods: Some(journeys::Periods {
                starts: starts.clone(),
                interval,
                tz,
            }),
        };
        let want = brute_retention(&events, &start_step, &back, from, to, week, tz, &sites);
        for s in stores {
            let got = s.retention(&q, &starts).unwrap();
            assert!(got.iter().zip(&starts).all(|(c, &t)| c.start_ms == t));
            let got: Vec<Vec<u64>> = got.into_iter().map(|c| c.values).collect();
            assert_eq!(got, want, "retention {start_step:?} {back:?} {tz}");
            let by_rules: Vec<Vec<u64>> = journeys::retention(s.step_events(&q).unwrap(), &starts)
                .into_iter()
                .map(|c| c.values)
                .collect();
            assert_eq!(
                by_rules, want,
                "retention by the rules {start_step:?} {back:?} {tz}"
            );
        }
        returned += want.iter().map(|c| c[1..].iter().sum::<u64>()).sum::<u64>();
    }
    assert!(returned > 0, "somebody came back");

    // User paths: each store's events walked by the rules, against a walk of the raw events.
    for (start_step, direction, depth, pages_only, sites) in [
        (
            Step::Event("$pageview".into()),
            Direction::After,
            3,
            true,
            vec![],
        ),
        (
            Step::Page("/cart".into()),
            Direction::Before,
            2,
            true,
            vec!["shop"],
        ),
        (
            Step::Event("add_to_cart".into()),
            Direction::After,
            4,
            false,
            vec![],
        ),
        (
            Step::Event("buy".into()),
            Direction::Before,
            3,
            false,
            vec!["demo"],
        ),
        (Step::Any, Direction::After, 2, false, vec![]),
    ] {
        let q = PathQuery {
            from_ms: from,
            to_ms: to,
            pages_only,
            filters: bots.clone(),
            sites: sites.iter().map(|s| s.to_string()).collect(),
        };
        let want = brute_paths(
            &events,
            &start_step,
            direction,
            depth,
            pages_only,
            from,
            to,
            &sites,
        );
        assert!(!want.is_empty(), "{start_step:?}: no paths");
        for s in stores {
            let (found, labels) = s.path_events(&q).unwrap();
            let by_rules = journeys::paths(found, &labels, &start_step, direction, depth);
            // The store's own walk (ClickHouse's in SQL): the whole answer as the rules give it.
            let got = s.paths(&q, &start_step, direction, depth).unwrap();
            assert_eq!(got, by_rules, "paths from {start_step:?} {direction:?}");
            let got: BTreeMap<Vec<String>, u64> = got.paths.into_iter().collect();
            // The answer keeps the 50 most common: compare those.
            let mut top: Vec<(&Vec<String>, &u64)> = want.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
            let top: BTreeMap<Vec<String>, u64> = top
                .into_iter()
                .take(50)
                .map(|(p, n)| (p.clone(), *n))
                .collect();
            assert_eq!(got, top, "paths from {start_step:?} {direction:?}");
        }
    }
    // A collector that has numbered no labels yet (ClickHouse's keeps those it numbered
    // last): a range without events, a start no event is, then a page first seen after the
    // labels were numbered. Each as the rules walk it.
    let dir = tempfile::tempdir().unwrap();
    let fresh = ClickHouse::open(&server.url("journeys"), dir.path(), 1 << 30).unwrap();
    let newcomer = StoredEvent {
        event_id: "019ab0b4-0000-7000-8000-ffffffffffff".into(),
        kind: "page",
        name: "$pageview".into(),
        path: "/brand-new".into(),
        ..events[events.len() / 2].clone()
    };
    for (start_step, (from_ms, to_ms), add, none) in [
        (Step::Any, (from - 400 * DAY, from - 399 * DAY), false, true),
        (Step::Event("never".into()), (from, to), false, true),
        (Step::Any, (from, to), false, false),
        (Step::Page("/brand-new".into()), (from, to), true, false),
    ] {
        if add {
            for s in [&both.sqlite as &dyn Store, &fresh] {
                s.insert(vec![newcomer.clone()])
                    .blocking_recv()
                    .unwrap()
                    .unwrap();
            }
        }
        let q = PathQuery {
            from_ms,
            to_ms,
            pages_only: false,
            filters: bots.clone(),
            sites: Vec::new(),
        };
        let (found, labels) = both.sqlite.path_events(&q).unwrap();
        let by_rules = journeys::paths(found, &labels, &start_step, Direction::After, 3);
        let got = fresh.paths(&q, &start_step, Direction::After, 3).unwrap();
        assert_eq!(got, by_rules, "paths from {start_step:?}");
        assert_eq!(got.paths.is_empty(), none, "paths from {start_step:?}");
    }
}

/// Paths walked the slow way: each session's events in order (ties by label), repeats in a
/// row dropped, from the first start.
#[allow(clippy::too_many_arguments)]
fn brute_paths(
    events: &[StoredEvent],
    start: &Step,
    direction: Direction,
    depth: usize,
    pages_only: bool,
    from: i64,
    to: i64,
    sites: &[&str],
) -> BTreeMap<Vec<String>, u64> {
    let mut sessions: BTreeMap<&str, Vec<&StoredEvent>> = BTreeMap::new();
    for e in events {
        if e.device != "bot"
            && e.time_ms >= from
            && e.time_ms < to
            && (sites.is_empty() || sites.contains(&e.site.as_str()))
            && (!pages_only || e.name == "$pageview")
        {
            sessions.entry(&e.session_id).or_default().push(e);
        }
    }
    let label = |e: &StoredEvent| {
        if e.name == "$pageview" {
            e.path.clone()
        } else {
            e.name.clone()
        }
    };
    let mut out: BTreeMap<Vec<String>, u64> = BTreeMap::new();
    for list in sessions.values_mut() {
        list.sort_by(|a, b| {
            a.time_ms
                .cmp(&b.time_ms)
                .then_with(|| label(a).cmp(&label(b)))
        });
        let mut walk: Vec<&StoredEvent> = Vec::new();
        for e in list.iter() {
            if walk.last().is_none_or(|w| label(w) != label(e)) {
                walk.push(e);
            }
        }
        let Some(at) = walk.iter().position(|e| start.matches(&e.name, &e.path)) else {
            continue;
        };
        let mut path: Vec<String> = match direction {
            Direction::After => walk[at..]
                .iter()
                .take(depth + 1)
                .map(|e| label(e))
                .collect(),
            Direction::Before => walk[..=at]
                .iter()
                .rev()
                .take(depth + 1)
                .map(|e| label(e))
                .collect(),
        };
        if path.len() <= depth {
            path.push(match direction {
                Direction::After => journeys::END.into(),
                Direction::Before => journeys::BEGIN.into(),
            });
        }
        *out.entry(path).or_default() += 1;
    }
    out
}

/// A page view, event or identify of `anon` at `t` for [`funnel_edges_count_exactly_on_both_stores`].
fn edge_event(n: &mut u64, anon: &str, name: &str, path: &str, t: i64) -> StoredEvent {
    *n += 1;
    let kind = match name {
        "$pageview" => "page",
        "$identify" => "identify",
        _ => "track",
    };
    StoredEvent {
        event_id: format!("019ab0b4-0000-7000-9000-{n:012x}"),
        site: "demo".into(),
        kind,
        name: name.into(),
        time_ms: t,
        client_ms: t,
        server_ms: t,
        anonymous_id: anon.into(),
        session_id: format!("s-{anon}"),
        seq: *n as i64,
        path: path.into(),
        url: format!("https://shop.example{path}"),
        props: "{}".into(),
        browser: "Chrome".into(),
        device: "desktop".into(),
        ..Default::default()
    }
}

/// The funnel "page view of /, then any page view, then buy" over people made one for each
/// edge, counted by hand: steps at one millisecond, an event that is two steps, the last step
/// exactly on the window's edge and one millisecond past it, a person whose steps are split
/// across two anonymous IDs joined by a later identify, a step 1 before the range and one in
/// its last millisecond, and first attempts that reach as far as later ones (their times make
/// the medians).
#[test]
fn funnel_edges_count_exactly_on_both_stores() {
    let both = BothStores::open("edges");
    let stores = both.stores();
    let (from, to) = (1_790_000_000_000, 1_790_000_000_000 + 10 * DAY);
    let mut n = 0;
    let mut events = Vec::new();
    let mut add = |anon: &str, name: &str, path: &str, t: i64| {
        events.push(edge_event(&mut n, anon, name, path, t));
    };
    let t = |day: i64| from + day * DAY;
    // a: other page views (one of them of / too) at the same millisecond as step 1: not
    // after it.
    add("a", "$pageview", "/", t(1));
    add("a", "$pageview", "/", t(1));
    add("a", "$pageview", "/pricing", t(1));
    // b: a page view of / is steps 1 and 2: the second one is the attempt's step 2.
    add("b", "$pageview", "/", t(2));
    add("b", "$pageview", "/", t(2) + MIN);
    add("b", "buy", "/", t(2) + 2 * MIN);
    // c: buy exactly the window after step 1 (in); d: one millisecond later (out).
    add("c", "$pageview", "/", t(3));
    add("c", "$pageview", "/x", t(3) + 10 * MIN);
    add("c", "buy", "/", t(3) + WINDOW);
    add("d", "$pageview", "/", t(3));
    add("d", "$pageview", "/x", t(3) + 10 * MIN);
    add("d", "buy", "/", t(3) + WINDOW + 1);
    // e: one person on two anonymous IDs, identified on both only afterwards.
    add("e1", "$pageview", "/", t(4));
    add("e2", "$pageview", "/x", t(4) + 5 * MIN);
    add("e1", "buy", "/", t(4) + 15 * MIN);
    for anon in ["e1", "e2"] {
        let mut id = edge_event(&mut n, anon, "$identify", "/", t(5));
        id.user_id = Some("e@example.com".into());
        events.push(id);
    }
    let mut add = |anon: &str, name: &str, path: &str, t: i64| {
        events.push(edge_event(&mut n, anon, name, path, t));
    };
    // f: step 1 only before the range: no attempt.
    add("f", "$pageview", "/", from - 1);
    add("f", "$pageview", "/x", from + 1);
    add("f", "buy", "/", from + 2);
    // g: step 1 in the range's last millisecond, the rest after the range.
    add("g", "$pageview", "/", to - 1);
    add("g", "$pageview", "/y", to + 1);
    add("g", "buy", "/", to + 2);
    // h: two attempts that both reach buy: the first counts (gaps 100 and 10 minutes).
    add("h", "$pageview", "/", t(6));
    add("h", "$pageview", "/x", t(6) + 100 * MIN);
    add("h", "$pageview", "/", t(6) + 101 * MIN);
    add("h", "$pageview", "/z", t(6) + 105 * MIN);
    add("h", "buy", "/", t(6) + 110 * MIN);
    // i: two attempts that both stop at step 2: the first counts (30 minutes, not 5).
    add("i", "$pageview", "/", t(7));
    add("i", "$pageview", "/x", t(7) + 30 * MIN);
    add("i", "$pageview", "/", t(7) + 40 * MIN);
    add("i", "$pageview", "/w", t(7) + 45 * MIN);
    for s in stores {
        s.insert(events.clone()).blocking_recv().unwrap().unwrap();
    }
    let steps = vec![
        Step::Page("/".into()),
        Step::Event("$pageview".into()),
        Step::Event("buy".into()),
    ];
    let q = StepQuery {
        from_ms: from,
        to_ms: to + WINDOW,
        steps: steps.clone(),
        ..Default::default()
    };
    // Step 2 gaps: b 60 s, c 600 s, d 600 s, e 300 s, g 2 ms, h 6,000 s, i 1,800 s (the
    // middle one of seven: 600 s); step 3: b 60 s, c 6,600 s, e 600 s, g 1 ms, h 600 s.
    let want = vec![
        journeys::FunnelStep {
            count: 8,
            median_seconds: None,
        },
        journeys::FunnelStep {
            count: 7,
            median_seconds: Some(600.0),
        },
        journeys::FunnelStep {
            count: 5,
            median_seconds: Some(600.0),
        },
    ];
    for s in stores {
        let got = s.funnel(&q, to, WINDOW).unwrap();
        assert_eq!(got.steps, want, "the store's funnel");
        let by_rules = journeys::funnel(s.step_events(&q).unwrap(), steps.len(), from, to, WINDOW);
        assert_eq!(
            by_rules.steps, want,
            "the rules over the store's step events"
        );
        // Paths over the same people, whose pages each appear on one day only: every label
        // is numbered, however few of the range's hours hold it.
        let pq = PathQuery {
            from_ms: from,
            to_ms: to,
            pages_only: false,
            filters: Vec::new(),
            sites: Vec::new(),
        };
        let start = Step::Event("$pageview".into());
        let (found, labels) = s.path_events(&pq).unwrap();
        let by_rules = journeys::paths(found, &labels, &start, Direction::After, 3);
        assert_eq!(
            by_rules.sessions, 10,
            "sessions with a page view in the range"
        );
        let got = s.paths(&pq, &start, Direction::After, 3).unwrap();
        assert_eq!(got, by_rules, "paths");
    }
}
