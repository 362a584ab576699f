//! Where events go and where answers come from. The HTTP layer sees only the [`Store`] trait;
//! SQLite is the default implementation, ClickHouse the scale-out one.

mod buckets;
mod clickhouse;
pub mod journeys;
mod piles;
mod sqlite;

pub use buckets::{bucket_starts, day_start};
pub use clickhouse::{ClickHouse, SpoolGauges};
pub use sqlite::Sqlite;

use crate::config::Config;
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Opens the store the configuration names: ClickHouse when a URL is set, else the SQLite file
/// under the data dir (created, with the dir, if missing). The error says which and why.
pub fn open(config: &Config) -> Result<Arc<dyn Store>, String> {
    Ok(match &config.clickhouse {
        Some(url) => Arc::new(
            ClickHouse::open(url, &config.data_dir, config.spool_max_bytes)
                .map_err(|e| format!("cannot use ClickHouse: {e}"))?,
        ),
        None => {
            let dir = &config.data_dir;
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create the data dir {}: {e}", dir.display()))?;
            Arc::new(
                Sqlite::open(dir, config.durability)
                    .map_err(|e| format!("cannot open the store in {}: {e}", dir.display()))?,
            )
        }
    })
}

/// One validated, enriched event as stored. `Default` is for tests and benches: every field
/// empty.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredEvent {
    pub event_id: String,
    pub site: String,
    pub kind: &'static str,
    pub name: String,
    /// Skew-corrected event time, ms since the epoch (what queries use).
    pub time_ms: i64,
    /// The client's own timestamp, ms since the epoch.
    pub client_ms: i64,
    /// When the collector received the batch, ms since the epoch.
    pub server_ms: i64,
    pub anonymous_id: String,
    pub user_id: Option<String>,
    pub session_id: String,
    pub seq: i64,
    pub url: String,
    pub path: String,
    pub title: String,
    pub referrer: String,
    pub screen: String,
    pub viewport: String,
    pub language: String,
    pub timezone: String,
    pub sdk: String,
    /// JSON object text.
    pub props: String,
    /// JSON object text, on identify and set events.
    pub traits: Option<String>,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub device: String,
    /// Why the event counts as a bot's, if it does.
    pub bot_reason: Option<String>,
    pub referrer_domain: String,
    pub utm_source: String,
    pub utm_medium: String,
    pub utm_campaign: String,
    pub utm_term: String,
    pub utm_content: String,
    pub country: String,
    pub region: String,
    pub city: String,
    /// The client's address, only with `--store-ip`.
    pub ip: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
    /// The disk is full: nothing of the write was kept; it may be tried again once there is
    /// room.
    #[error("the disk is full: {0}")]
    Full(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("write failed: {0}")]
    Write(String),
    #[error("{0}")]
    ClickHouse(#[from] clickhouse::ChError),
    /// ClickHouse is unreachable and the spool is full: the client should retry later.
    #[error("clickhouse is unreachable and the spool is full")]
    SpoolFull,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            StoreError::Full(e.to_string())
        } else {
            StoreError::Sqlite(e)
        }
    }
}

impl StoreError {
    /// A failed write's error, keeping what kind of failure it was.
    pub(crate) fn from_io(what: &str, e: std::io::Error) -> StoreError {
        if e.raw_os_error() == Some(28) {
            // ENOSPC
            StoreError::Full(format!("{what}: {e}"))
        } else {
            StoreError::Write(format!("{what}: {e}"))
        }
    }
}

/// For each event of an insert, in order: true if stored now, false if its `event_id` was
/// already there (a duplicate).
pub type InsertOutcome = Result<Vec<bool>, StoreError>;

/// What `/api/v1/insights` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Users,
    Sessions,
    Events,
}

/// Bucket width of a time series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Hour,
    Day,
    Week,
    Month,
}

/// What a query can split by or filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A column of the event: `browser`, `os`, `device`, `country`, `region`, `city`, `path`,
    /// `url`, `name` (the event name), `type`, `referrer_domain`, `utm_*`.
    Event(&'static str),
    /// `event.KEY` (or `props.KEY`): a property of the event.
    EventProp(String),
    /// `user.KEY`: a property of the person (set by identify and setUserProperties).
    UserProp(String),
}

const EVENT_COLUMNS: &[(&str, &str)] = &[
    ("browser", "browser"),
    ("browser_version", "browser_version"),
    ("os", "os"),
    ("device", "device"),
    ("country", "country"),
    ("region", "region"),
    ("city", "city"),
    ("path", "path"),
    ("page", "path"),
    ("url", "url"),
    ("title", "title"),
    ("name", "name"),
    ("event", "name"),
    ("type", "type"),
    ("referrer", "referrer_domain"),
    ("referrer_domain", "referrer_domain"),
    ("utm_source", "utm_source"),
    ("utm_medium", "utm_medium"),
    ("utm_campaign", "utm_campaign"),
    ("utm_term", "utm_term"),
    ("utm_content", "utm_content"),
    ("language", "language"),
    ("timezone", "timezone"),
    ("site", "site"),
];

impl Field {
    /// The name that [`Field::parse`] reads back.
    pub fn name(&self) -> String {
        match self {
            Field::Event(col) => (*col).to_owned(),
            Field::EventProp(k) => format!("event.{k}"),
            Field::UserProp(k) => format!("user.{k}"),
        }
    }

    pub fn parse(s: &str) -> Option<Field> {
        let key_ok = |k: &str| {
            !k.is_empty()
                && k.len() <= 100
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-$.".contains(&b))
        };
        if let Some(k) = s
            .strip_prefix("event.")
            .or_else(|| s.strip_prefix("props."))
        {
            return key_ok(k).then(|| Field::EventProp(k.to_owned()));
        }
        if let Some(k) = s.strip_prefix("user.") {
            return key_ok(k).then(|| Field::UserProp(k.to_owned()));
        }
        EVENT_COLUMNS
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, col)| Field::Event(col))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Neq,
    Contains,
    Gt,
    Lt,
    Exists,
}

/// `FIELD:OP[:VALUE]`, e.g. `browser:eq:Chrome`, `user.plan:neq:free`, `event.price:gt:50`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: Field,
    pub op: Op,
    pub value: String,
}

impl Filter {
    pub fn parse(s: &str) -> Result<Filter, String> {
        let mut parts = s.splitn(3, ':');
        let field = parts.next().unwrap_or_default();
        let op = parts.next().unwrap_or_default();
        let value = parts.next();
        let field = Field::parse(field).ok_or_else(|| format!("unknown field {field:?}"))?;
        let op = match op {
            "eq" => Op::Eq,
            "neq" => Op::Neq,
            "contains" => Op::Contains,
            "gt" => Op::Gt,
            "lt" => Op::Lt,
            "exists" => Op::Exists,
            _ => {
                return Err(format!(
                    "unknown operator {op:?} (eq, neq, contains, gt, lt, exists)"
                ))
            }
        };
        match (op, value) {
            (Op::Exists, _) => Ok(Filter {
                field,
                op,
                value: String::new(),
            }),
            (_, Some(v)) => Ok(Filter {
                field,
                op,
                value: v.to_owned(),
            }),
            (_, None) => Err(format!("{s:?} needs a value: FIELD:OP:VALUE")),
        }
    }
}

/// SQLite's `CAST(text AS REAL)`: the longest leading number, else 0. Filters decide as
/// SQLite's SQL does in both stores.
pub(crate) fn sqlite_real(s: &str) -> f64 {
    let s = s.trim_start();
    let b = s.as_bytes();
    let mut end = 0;
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    if end < b.len() && (b[end] == b'+' || b[end] == b'-') {
        end += 1;
    }
    let int_end = digits(end);
    let mut best = int_end;
    if int_end < b.len() && b[int_end] == b'.' {
        best = digits(int_end + 1);
    }
    end = best;
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut e = end + 1;
        if e < b.len() && (b[e] == b'+' || b[e] == b'-') {
            e += 1;
        }
        let e_end = digits(e);
        if e_end > e {
            end = e_end;
        }
    }
    s[..end].parse().unwrap_or(0.0)
}

/// Which events an answer counts: people's (the default), everyone's, or bots' only. An
/// event is a bot's when its `device` is `bot` (enrichment says why in `bot_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bots {
    #[default]
    Exclude,
    Include,
    Only,
}

impl Bots {
    /// `bots=exclude|include|only`.
    pub fn parse(s: &str) -> Option<Bots> {
        Some(match s {
            "exclude" => Bots::Exclude,
            "include" => Bots::Include,
            "only" => Bots::Only,
            _ => return None,
        })
    }

    /// The same as a filter on `device` (how insights apply it).
    pub fn filter(self) -> Option<Filter> {
        let op = match self {
            Bots::Include => return None,
            Bots::Exclude => Op::Neq,
            Bots::Only => Op::Eq,
        };
        Some(Filter {
            field: Field::Event("device"),
            op,
            value: "bot".into(),
        })
    }

    /// Whether an event of this device counts.
    pub fn keeps(self, device: &str) -> bool {
        match self {
            Bots::Include => true,
            Bots::Exclude => device != "bot",
            Bots::Only => device == "bot",
        }
    }

    /// The condition in SQL (SQLite and ClickHouse alike) on a `device` column.
    pub fn sql(self, device: &str) -> String {
        match self {
            Bots::Include => "1 = 1".into(),
            Bots::Exclude => format!("{device} != 'bot'"),
            Bots::Only => format!("{device} = 'bot'"),
        }
    }

    /// The condition in SQL on a column that is 1 for bots' events, 0 for others'.
    pub fn flag_sql(self, is_bot: &str) -> String {
        match self {
            Bots::Include => "1 = 1".into(),
            Bots::Exclude => format!("{is_bot} = 0"),
            Bots::Only => format!("{is_bot} = 1"),
        }
    }
}

/// Whose events an answer reads: those of some sites (none named: every site), and people's,
/// bots' or both. Every query endpoint takes it (`site=`, `bots=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub bots: Bots,
    /// Site keys; empty for every site.
    pub sites: Vec<String>,
}

impl From<Bots> for Scope {
    /// Every site's events, with bots as given.
    fn from(bots: Bots) -> Scope {
        Scope {
            bots,
            sites: Vec::new(),
        }
    }
}

impl Scope {
    /// Whether an event of this device and site counts.
    pub fn keeps(&self, device: &str, site: &str) -> bool {
        self.bots.keeps(device) && (self.sites.is_empty() || self.sites.iter().any(|s| s == site))
    }

    /// The condition in SQL on a `device` and a `site` column, with `lit` quoting a text as
    /// the database's string literal.
    pub fn sql(&self, device: &str, site: &str, lit: impl Fn(&str) -> String) -> String {
        self.with_bots(self.bots.sql(device), site, lit)
    }

    /// The same with bots told apart by a column that is 1 for theirs ([`Bots::flag_sql`]).
    pub fn flag_sql(&self, is_bot: &str, site: &str, lit: impl Fn(&str) -> String) -> String {
        self.with_bots(self.bots.flag_sql(is_bot), site, lit)
    }

    fn with_bots(&self, bots: String, site: &str, lit: impl Fn(&str) -> String) -> String {
        if self.sites.is_empty() {
            return bots;
        }
        let sites: Vec<String> = self.sites.iter().map(|s| lit(s)).collect();
        format!("{bots} AND {site} IN ({})", sites.join(", "))
    }
}

/// A time series query over `[from_ms, to_ms)`. Bots are left out by a filter on `device`
/// ([`Bots::filter`]), as any other.
#[derive(Debug, Clone)]
pub struct InsightsQuery {
    pub metric: Metric,
    pub from_ms: i64,
    pub to_ms: i64,
    pub interval: Interval,
    /// Only these event names (none: all).
    pub events: Vec<String>,
    /// One table row (and series) per value of this field instead of per bucket.
    pub by: Option<Field>,
    /// Each bucket (or `by` row) split again by this field.
    pub split: Option<Field>,
    pub filters: Vec<Filter>,
    /// Only these sites' events (none: every site).
    pub sites: Vec<String>,
    /// Where days, weeks and months begin.
    pub tz: chrono_tz::Tz,
}

/// One bucket of a series: its start and its count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub start_ms: i64,
    pub value: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// The split value; `None` without a split (or for events without the field).
    pub key: Option<String>,
    pub buckets: Vec<Bucket>,
}

/// Series from counts laid out key by key: `counts[rank * starts.len() + bucket]`.
pub fn series_from_grid(keys: Vec<Option<String>>, starts: &[i64], counts: &[u64]) -> Vec<Series> {
    keys.into_iter()
        .enumerate()
        .map(|(r, key)| Series {
            key,
            buckets: starts
                .iter()
                .enumerate()
                .map(|(b, &start_ms)| Bucket {
                    start_ms,
                    value: counts[r * starts.len() + b],
                })
                .collect(),
        })
        .collect()
}

/// A row of an insights table: the `by` value (or bucket start), the `split` value if split,
/// and the count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRow {
    pub key: Option<String>,
    pub split: Option<String>,
    pub value: u64,
}

/// Puts table rows in answer order and keeps the first 1,000: largest first (ties by key,
/// then split); rows keyed by bucket (`by_time`) in time order first.
pub fn sort_table(table: &mut Vec<TableRow>, by_time: bool) {
    table.sort_by(|a, b| {
        let time = if by_time {
            a.key.cmp(&b.key)
        } else {
            std::cmp::Ordering::Equal
        };
        time.then_with(|| b.value.cmp(&a.value))
            .then_with(|| a.key.cmp(&b.key))
            .then_with(|| a.split.cmp(&b.split))
    });
    table.truncate(1000);
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insights {
    pub total: u64,
    /// One series without a split; with one, the largest values' series (at most 20).
    pub series: Vec<Series>,
    /// With `by`: a row per value (per pair of values with `split` too) over the whole
    /// range; with `split` alone: a row per bucket (its start as `key`) and value. Empty
    /// without either. At most 1,000 rows, in [`sort_table`]'s order.
    pub table: Vec<TableRow>,
    /// A few users the query matched, by answer id.
    pub sample_users: Vec<String>,
}

/// A person: their answer id, user ID if known, and every anonymous ID.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSummary {
    pub id: String,
    pub user_id: Option<String>,
    pub anonymous_ids: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub properties: serde_json::Value,
    pub session_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub timestamp: String,
    pub client_timestamp: String,
    pub seq: i64,
    pub url: String,
    pub path: String,
    pub props: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    pub session_id: String,
    /// The site the session was on.
    pub site: String,
    pub anonymous_id: String,
    pub started_at: String,
    pub ended_at: String,
    pub duration_seconds: f64,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub device: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserDetail {
    pub user: UserSummary,
    pub sessions: Vec<SessionView>,
}

/// User properties of one person, in the order their events set them (later keys win).
pub type Traits = Vec<serde_json::Map<String, serde_json::Value>>;

impl UserDetail {
    /// A person from their sessions (oldest first) and the traits their events set; `None`
    /// without sessions.
    pub fn assemble(
        person: String,
        user_id: Option<String>,
        anonymous_ids: Vec<String>,
        sessions: Vec<SessionView>,
        traits: Traits,
    ) -> Option<UserDetail> {
        let first_seen = sessions.first()?.started_at.clone();
        let last_seen = sessions
            .iter()
            .map(|s| s.ended_at.clone())
            .max()
            .unwrap_or_default();
        let mut properties = serde_json::Map::new();
        for t in traits {
            properties.extend(t);
        }
        let user = UserSummary {
            id: person,
            user_id,
            anonymous_ids,
            first_seen,
            last_seen,
            properties: serde_json::Value::Object(properties),
            session_count: sessions.len() as u64,
        };
        Some(UserDetail { user, sessions })
    }
}

/// Where a page of `/api/v1/users` ends: the last user's last activity and ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersCursor {
    pub last_ms: i64,
    pub id: String,
}

impl UsersCursor {
    /// `<last_ms>.<id as hex>`: opaque to clients, safe in a URL.
    pub fn encode(&self) -> String {
        let hex: String = self.id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{}.{hex}", self.last_ms)
    }

    pub fn decode(s: &str) -> Option<UsersCursor> {
        let (ms, hex) = s.split_once('.')?;
        if hex.len() % 2 != 0 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        Some(UsersCursor {
            last_ms: ms.parse().ok()?,
            id: String::from_utf8(bytes?).ok()?,
        })
    }
}

/// `GET /api/v1/users`: people active in `[from_ms, to_ms)`, newest activity first.
#[derive(Debug, Clone)]
pub struct UsersQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub limit: usize,
    pub cursor: Option<UsersCursor>,
    /// Part of the user ID or of an anonymous ID.
    pub contains: Option<String>,
    /// Whose events count: a person is listed when their counted events reach into the
    /// range, with first and last seen and sessions from those events.
    pub scope: Scope,
    /// Only people who did one of these events in the range (none: any event).
    pub events: Vec<String>,
    /// Only people with an event in the range (one of `events`, if named) that passes every
    /// filter: event columns and properties of that event, user properties of the person.
    pub filters: Vec<Filter>,
    /// Only these people (by answer id), if given.
    pub ids: Option<Vec<String>>,
}

impl UsersQuery {
    /// The first page of everyone seen in `[from_ms, to_ms)`, `limit` people long, bots left
    /// out: no cursor, search, event or filter.
    pub fn new(from_ms: i64, to_ms: i64, limit: usize) -> UsersQuery {
        UsersQuery {
            from_ms,
            to_ms,
            limit,
            cursor: None,
            contains: None,
            scope: Scope::default(),
            events: Vec::new(),
            filters: Vec::new(),
            ids: None,
        }
    }

    /// Whether the people table alone answers it (no event of the range needs a look).
    pub fn plain(&self) -> bool {
        self.scope.sites.is_empty() && self.events.is_empty() && self.filters.is_empty()
    }

    /// The filters a matching event passes: the query's, and the scope's bot filter.
    pub fn event_filters(&self) -> Vec<Filter> {
        self.filters
            .iter()
            .cloned()
            .chain(self.scope.bots.filter())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsersPage {
    pub users: Vec<UserSummary>,
    pub next: Option<UsersCursor>,
}

/// What session statistics can be split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionField {
    Browser,
    Os,
    Device,
    Country,
    EntryPath,
    User,
    Site,
}

impl SessionField {
    pub fn parse(s: &str) -> Option<SessionField> {
        Some(match s {
            "browser" => SessionField::Browser,
            "os" => SessionField::Os,
            "device" => SessionField::Device,
            "country" => SessionField::Country,
            "entry_path" | "path" => SessionField::EntryPath,
            "user" => SessionField::User,
            "site" => SessionField::Site,
            _ => return None,
        })
    }
}

/// `GET /api/v1/sessions`: sessions that started in `[from_ms, to_ms)`, newest first, a page
/// at a time.
#[derive(Debug, Clone)]
pub struct SessionListQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Only this person's sessions (user ID or anonymous ID).
    pub user: Option<String>,
    pub scope: Scope,
    pub limit: usize,
    /// The last row of the previous page: its start and session ID.
    pub after: Option<(i64, String)>,
}

/// One row of the session list: a session as [`SessionStatsQuery`] counts it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    pub session_id: String,
    pub site: String,
    /// The person: the user ID the anonymous ID joined, else the anonymous ID.
    pub user: String,
    pub anonymous_id: String,
    pub started_at: String,
    pub ended_at: String,
    pub duration_seconds: f64,
    pub events: u64,
    pub pageviews: u64,
    /// One page view and no other event but its `$pageleave`.
    pub bounce: bool,
    /// Path, browser, OS, device and country of the session's first event.
    pub entry_path: Option<String>,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub device: Option<String>,
    pub country: Option<String>,
    /// Unix ms of the start, for the cursor.
    #[serde(skip)]
    pub started_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    pub sessions: Vec<SessionRow>,
    /// More sessions follow this page.
    pub more: bool,
}

/// `GET /api/v1/sessions/stats`: sessions that started in `[from_ms, to_ms)`.
#[derive(Debug, Clone)]
pub struct SessionStatsQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Only this person's sessions (user ID or anonymous ID).
    pub user: Option<String>,
    pub split: Option<SessionField>,
    /// Whose events make up the sessions.
    pub scope: Scope,
}

/// Totals of a set of sessions. Session time runs from the first to the last event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionTotals {
    pub total_sessions: u64,
    pub avg_session_seconds: f64,
    pub total_session_seconds: f64,
    /// Fraction of sessions with one page view and no other event but its `$pageleave`.
    pub bounce_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSplitRow {
    pub key: Option<String>,
    #[serde(flatten)]
    pub totals: SessionTotals,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionStats {
    #[serde(flatten)]
    pub totals: SessionTotals,
    /// One row per value of `split`, largest first (empty without `split`).
    pub table: Vec<SessionSplitRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyCount {
    pub key: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertyKeys {
    /// Columns every event has (browser, os, path, ...): usable as `by`, `split`, `filter`.
    pub columns: Vec<String>,
    /// `event.KEY` keys, from the 5,000 most recent events of the range.
    pub event: Vec<KeyCount>,
    /// `user.KEY` keys, from the people active in the range.
    pub user: Vec<KeyCount>,
}

/// Names usable as columns in `by`, `split` and `filter`.
pub fn column_names() -> Vec<String> {
    EVENT_COLUMNS.iter().map(|(n, _)| (*n).to_owned()).collect()
}

/// What erasing a person removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub events: u64,
    pub anonymous_ids: Vec<String>,
}

/// A saved report: a dashboard view and its query string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Report {
    pub id: String,
    pub name: String,
    /// `insights`, `users` or `sessions`.
    pub view: String,
    /// The query string of the view's API call, e.g. `metric=users&last=30d&by=browser`.
    pub query: String,
    pub created_at: String,
    /// Who saved it: `admin` (the collector's admin token) or an API token's name and ID;
    /// empty for reports saved before owners were recorded.
    pub created_by: String,
    /// Set while the report is shared: anyone with the link can see its aggregates.
    pub share: Option<Share>,
}

/// A report's shared link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Share {
    /// The secret in the link, `/#shared/{token}`.
    pub token: String,
    /// Who shared it, as [`Report::created_by`].
    pub by: String,
    /// When the link was made (Unix ms).
    pub at_ms: i64,
    /// After this (Unix ms) the link answers `410 expired`; `None` for never.
    pub expires_ms: Option<i64>,
}

/// An API token as stored: never its secret, only the secret's SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub hash: String,
    /// Site keys a `read` token is limited to.
    pub sites: Vec<String>,
    /// `read` or `admin`.
    pub scope: String,
    pub created_ms: i64,
    /// When it last opened a request, at most a minute stale; `None` if never.
    pub last_used_ms: Option<i64>,
}

/// The storage behind the collector.
pub trait Store: Send + Sync {
    /// Queues events for a durable write; the answer comes once they are committed.
    fn insert(&self, events: Vec<StoredEvent>) -> oneshot::Receiver<InsertOutcome>;
    /// Events handed to `insert` and not yet committed.
    fn queue_depth(&self) -> usize;
    /// Counts for `/api/v1/insights`. Blocking: call it off the async runtime.
    fn insights(&self, q: &InsightsQuery) -> Result<Insights, StoreError>;
    /// One person with all their sessions (of the events `scope` counts), by user ID or
    /// anonymous ID; `None` without such sessions. Blocking.
    fn user(&self, id: &str, scope: &Scope) -> Result<Option<UserDetail>, StoreError>;
    /// A page of people, newest activity first. Blocking.
    fn users(&self, q: &UsersQuery) -> Result<UsersPage, StoreError>;
    /// The events that are steps of a funnel or of retention, for [`journeys`]. Blocking.
    fn step_events(&self, q: &journeys::StepQuery) -> Result<journeys::StepEvents, StoreError>;
    /// The events that user paths walk, with their labels, for [`journeys::paths`]. Blocking.
    fn path_events(
        &self,
        q: &journeys::PathQuery,
    ) -> Result<(Vec<journeys::PathEvent>, Vec<journeys::Label>), StoreError>;
    /// A funnel of the steps of `q` begun in `[q.from_ms, to_ms)` within `window_ms`
    /// ([`journeys::funnel`] over [`Store::step_events`]; a store may work it out where its
    /// events are, to the same answer, and then give [`journeys::Funnel::reached`] only
    /// with [`journeys::StepQuery::people`]). Blocking.
    fn funnel(
        &self,
        q: &journeys::StepQuery,
        to_ms: i64,
        window_ms: i64,
    ) -> Result<journeys::Funnel, StoreError> {
        let hits = self.step_events(q)?;
        Ok(journeys::funnel(
            hits,
            q.steps.len(),
            q.from_ms,
            to_ms,
            window_ms,
        ))
    }
    /// Retention's cohorts in the periods that begin at `starts` ([`journeys::retention`]
    /// over [`Store::step_events`], or worked out by the store to the same answer). Blocking.
    fn retention(
        &self,
        q: &journeys::StepQuery,
        starts: &[i64],
    ) -> Result<Vec<journeys::Cohort>, StoreError> {
        Ok(journeys::retention(self.step_events(q)?, starts))
    }
    /// User paths ([`journeys::paths`] over [`Store::path_events`], or worked out by the
    /// store to the same answer). Blocking.
    fn paths(
        &self,
        q: &journeys::PathQuery,
        start: &journeys::Step,
        direction: journeys::Direction,
        depth: usize,
    ) -> Result<journeys::Paths, StoreError> {
        let (events, labels) = self.path_events(q)?;
        Ok(journeys::paths(events, &labels, start, direction, depth))
    }
    /// Session count, time and bounce rate. Blocking.
    fn session_stats(&self, q: &SessionStatsQuery) -> Result<SessionStats, StoreError>;
    /// Sessions one page at a time, newest first (ties by session ID).
    fn sessions(&self, q: &SessionListQuery) -> Result<SessionPage, StoreError>;
    /// One session with its events (those `scope` counts). Blocking.
    fn session(&self, id: &str, scope: &Scope) -> Result<Option<SessionView>, StoreError>;
    /// Deletes every row of a person (all their anonymous IDs), for privacy requests.
    fn erase(&self, person: &str) -> oneshot::Receiver<Result<Erased, StoreError>>;
    /// Event names with their counts in `[from_ms, to_ms)`, most frequent first. Blocking.
    fn event_names(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: &Scope,
    ) -> Result<Vec<(String, u64)>, StoreError>;
    /// Keys of event properties (from recent events) and of user properties, with counts.
    /// Blocking.
    fn property_keys(
        &self,
        from_ms: i64,
        to_ms: i64,
        scope: &Scope,
    ) -> Result<PropertyKeys, StoreError>;
    fn save_report(&self, r: Report) -> oneshot::Receiver<Result<(), StoreError>>;
    fn delete_report(&self, id: &str) -> oneshot::Receiver<Result<bool, StoreError>>;
    /// Blocking.
    fn reports(&self) -> Result<Vec<Report>, StoreError>;
    /// By ID, or by share token with `shared`. Blocking.
    fn report(&self, id: &str, shared: bool) -> Result<Option<Report>, StoreError>;
    fn save_token(&self, t: ApiToken) -> oneshot::Receiver<Result<(), StoreError>>;
    /// Revokes a token: from the answer on, no collector sharing this store accepts it. False
    /// if there was no such live token.
    fn revoke_token(&self, id: &str) -> oneshot::Receiver<Result<bool, StoreError>>;
    /// Records that the token `t` was used at `at_ms` (never reviving a revoked one).
    fn touch_token(&self, t: ApiToken, at_ms: i64) -> oneshot::Receiver<Result<(), StoreError>>;
    /// Live tokens, oldest first. Blocking.
    fn tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    /// The disk spool, for stores that have one (ClickHouse).
    fn spool(&self) -> Option<&SpoolGauges> {
        None
    }
}

/// RFC 3339 in UTC with milliseconds, for answers.
pub fn rfc3339(ms: i64) -> String {
    footfall_wire::time::rfc3339_millis(ms)
}

#[cfg(test)]
mod layout {
    //! The stores' boundary as a test: neither store's folder names the other's modules or
    //! type; what both need lives beside them in `store/` (buckets, journeys, SQLite's cast).

    use std::path::Path;

    /// The code lines (not comments) of every file in `store/NAME/`.
    fn code_of(name: &str) -> Vec<(String, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/store")
            .join(name);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let code = line.split("//").next().unwrap_or_default();
                out.push((path.display().to_string(), code.to_owned()));
            }
        }
        assert!(out.len() > 100, "no code found in {}", dir.display());
        out
    }

    /// Whether `code` names `word` as a path segment or type (`rusqlite` is not `sqlite`).
    fn names(code: &str, word: &str) -> bool {
        code.match_indices(word).any(|(i, _)| {
            let before = code[..i].chars().next_back();
            let after = code[i + word.len()..].chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    }

    #[test]
    fn neither_store_uses_the_other() {
        for (file, code) in code_of("sqlite") {
            for word in ["clickhouse", "ClickHouse"] {
                assert!(
                    !names(&code, word),
                    "{file} uses the ClickHouse store: {code}"
                );
            }
        }
        for (file, code) in code_of("clickhouse") {
            for word in ["sqlite", "Sqlite"] {
                assert!(!names(&code, word), "{file} uses the SQLite store: {code}");
            }
        }
    }

    #[test]
    fn a_use_is_seen() {
        assert!(names("use super::super::clickhouse::query;", "clickhouse"));
        assert!(names("crate::store::Sqlite::open(p)", "Sqlite"));
        assert!(!names("rusqlite::Connection::open_in_memory()", "sqlite"));
        assert!(!names("super::sqlite_real(&text)", "sqlite"));
    }
}
