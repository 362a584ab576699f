//! The query API under `/api/v1` (product.md §2 "Query API"): bearer-token auth, parameter
//! parsing with errors that name the parameter, and the answer shapes of the contract.

use crate::access::{self, Caller};
use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::journeys::{self, Direction, PathQuery, Step, StepQuery};
use crate::store::{
    rfc3339, Bots, Field, Filter, InsightsQuery, Interval, Metric, Scope, SessionField,
    SessionListQuery, SessionStatsQuery, UsersCursor, UsersQuery,
};
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::json;

/// The caller of a request that changes something: the admin token or an `admin`-scope API
/// token; a `read` token is `403` (see [`access`]).
pub async fn authorize(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    let caller = access::caller(req, state).await?;
    caller.require_admin()?;
    Ok(caller)
}

/// The query parameters of a read, limited to the sites its caller may read: every GET
/// endpoint reads them here, so a `read` token sees its sites only.
async fn read_params(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Vec<(String, String)>, ApiError> {
    access::caller(req, state).await?.limit(params(req)?)
}

fn params(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest("invalid-query", format!("query string: {e}")))
}

/// `bots=exclude|include|only` (product.md: bots are left out unless asked for).
fn parse_bots(v: &str) -> Result<Bots, ApiError> {
    Bots::parse(v).ok_or_else(|| ApiError::param("bots", "must be exclude, include or only"))
}

/// Reads `bots=` and `site=` (repeatable) into `scope` if `k` is one of them. A site must be
/// one the collector is configured with.
fn take_scope(scope: &mut Scope, k: &str, v: &str, config: &Config) -> Result<bool, ApiError> {
    match k {
        "bots" => scope.bots = parse_bots(v)?,
        "site" => {
            for key in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if config.site(key).is_none() {
                    let known: Vec<&str> = config.sites.iter().map(|s| s.key.as_str()).collect();
                    return Err(ApiError::param(
                        "site",
                        format!(
                            "{key:?} is not a site of this collector ({})",
                            known.join(", ")
                        ),
                    ));
                }
                if !scope.sites.iter().any(|s| s == key) {
                    scope.sites.push(key.to_owned());
                }
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The `bots=` and `site=` of parameters that take nothing else but those of `rest`, which
/// `rest` reads (returning whether it took the parameter).
fn scope_and(
    pairs: &[(String, String)],
    config: &Config,
    endpoint: &str,
    mut rest: impl FnMut(&str, &str) -> Result<bool, ApiError>,
) -> Result<Scope, ApiError> {
    let mut scope = Scope::default();
    for (k, v) in pairs {
        if !take_scope(&mut scope, k, v, config)? && !rest(k, v)? {
            return Err(ApiError::param(
                k,
                format!("is not a parameter of {endpoint}"),
            ));
        }
    }
    Ok(scope)
}

/// `7d`, `24h`, `30m`, `2w` as milliseconds.
fn parse_duration(name: &str, v: &str) -> Result<i64, ApiError> {
    let (num, unit) = v.split_at(v.len().saturating_sub(1));
    let n: i64 = num
        .parse()
        .ok()
        .filter(|n| *n > 0 && *n <= 3660)
        .ok_or_else(|| ApiError::param(name, format!("{v:?} is not like 7d, 24h, 30m or 2w")))?;
    let unit_ms = match unit {
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => {
            return Err(ApiError::param(
                name,
                format!("{v:?} is not like 7d, 24h, 30m or 2w"),
            ))
        }
    };
    Ok(n * unit_ms)
}

/// An RFC 3339 time or a `YYYY-MM-DD` date (midnight UTC).
fn parse_instant(name: &str, v: &str) -> Result<i64, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
        .ok_or_else(|| {
            ApiError::param(
                name,
                format!("{v:?} is neither an RFC 3339 time nor a YYYY-MM-DD date"),
            )
        })
}

/// `from`, `to` and `last`, gathered from the query string and resolved together.
#[derive(Default)]
struct Range {
    from: Option<i64>,
    to: Option<i64>,
    last: Option<i64>,
}

impl Range {
    /// Takes `k=v` if it is a range parameter.
    fn take(&mut self, k: &str, v: &str) -> Result<bool, ApiError> {
        match k {
            "from" => self.from = Some(parse_instant("from", v)?),
            "to" => self.to = Some(parse_instant("to", v)?),
            "last" => self.last = Some(parse_duration("last", v)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `[from, to)` in ms; without either, the `default_ms` before now.
    fn resolve(&self, default_ms: i64) -> Result<(i64, i64), ApiError> {
        let now = chrono::Utc::now().timestamp_millis();
        let (from, to) = match (self.from, self.to, self.last) {
            (Some(_), _, Some(_)) => {
                return Err(ApiError::param("last", "cannot be combined with `from`"))
            }
            (None, to, Some(d)) => {
                let to = to.unwrap_or(now);
                (to - d, to)
            }
            (Some(f), to, None) => (f, to.unwrap_or(now)),
            (None, to, None) => {
                let to = to.unwrap_or(now);
                (to - default_ms, to)
            }
        };
        if from >= to {
            return Err(ApiError::param("from", "must be before `to`"));
        }
        Ok((from, to))
    }
}

const WEEK_MS: i64 = 7 * 86_400_000;

/// A field named by `by`, `split` or `field`, or an error that lists what may be named.
fn parse_field(k: &str, v: &str) -> Result<Field, ApiError> {
    Field::parse(v).ok_or_else(|| {
        ApiError::param(
            k,
            format!("unknown field {v:?}: a column (browser, os, device, country, region, city, path, url, name, type, referrer, utm_*, site), event.KEY or user.KEY"),
        )
    })
}

/// `tz=`: an IANA time zone.
fn parse_tz(v: &str) -> Result<chrono_tz::Tz, ApiError> {
    v.parse().map_err(|_| {
        ApiError::param(
            "tz",
            format!("{v:?} is not an IANA time zone like Europe/Paris"),
        )
    })
}

/// `event=` (repeatable, or comma-separated) into `events`.
fn take_events(events: &mut Vec<String>, v: &str) {
    events.extend(
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from),
    )
}

fn parse_insights(pairs: &[(String, String)], config: &Config) -> Result<InsightsQuery, ApiError> {
    let mut metric = None;
    let mut range = Range::default();
    let mut interval = None;
    let mut events = Vec::new();
    // With `by`, the series are per value, over `interval` buckets.
    let mut by = None;
    let mut split = None;
    let mut filters = Vec::new();
    let mut tz = chrono_tz::Tz::UTC;
    let mut scope = Scope::default();
    for (k, v) in pairs {
        match k.as_str() {
            _ if take_scope(&mut scope, k, v, config)? => {}
            "metric" => {
                metric = Some(match v.as_str() {
                    "users" => Metric::Users,
                    "sessions" => Metric::Sessions,
                    "events" => Metric::Events,
                    _ => {
                        return Err(ApiError::param(
                            "metric",
                            "must be users, sessions or events",
                        ))
                    }
                })
            }
            _ if range.take(k, v)? => {}
            "interval" => {
                interval = Some(match v.as_str() {
                    "hour" => Interval::Hour,
                    "day" => Interval::Day,
                    "week" => Interval::Week,
                    "month" => Interval::Month,
                    _ => {
                        return Err(ApiError::param(
                            "interval",
                            "must be hour, day, week or month",
                        ))
                    }
                })
            }
            "event" => take_events(&mut events, v),
            "by" => by = Some(parse_field(k, v)?),
            "split" => split = Some(parse_field(k, v)?),
            "filter" => filters.push(Filter::parse(v).map_err(|e| ApiError::param("filter", e))?),
            "tz" => tz = parse_tz(v)?,
            _ => return Err(ApiError::param(k, "is not a parameter of /api/v1/insights")),
        }
    }
    let metric = metric
        .ok_or_else(|| ApiError::param("metric", "is required (users, sessions or events)"))?;
    let (from_ms, to_ms) = range.resolve(WEEK_MS)?;
    filters.extend(scope.bots.filter());
    Ok(InsightsQuery {
        metric,
        from_ms,
        to_ms,
        interval: interval.unwrap_or(Interval::Day),
        events,
        by,
        split,
        filters,
        sites: scope.sites,
        tz,
    })
}

pub async fn insights(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (pairs, csv) = format_param(read_params(&req, &state).await?)?;
    let answer = run_view(&state, View::Insights, &pairs).await?;
    respond(answer, csv.then_some(View::Insights))
}

/// The three views of the dashboard, each one endpoint's answer (saved reports name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Insights,
    Users,
    Sessions,
}

impl View {
    pub fn parse(s: &str) -> Option<View> {
        Some(match s {
            "insights" => View::Insights,
            "users" => View::Users,
            "sessions" => View::Sessions,
            _ => return None,
        })
    }
}

/// Takes `format=csv|json` out of the parameters.
fn format_param(pairs: Vec<(String, String)>) -> Result<(Vec<(String, String)>, bool), ApiError> {
    let mut csv = false;
    let mut rest = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        if k == "format" {
            csv = match v.as_str() {
                "csv" => true,
                "json" => false,
                _ => return Err(ApiError::param("format", "must be json or csv")),
            };
        } else {
            rest.push((k, v));
        }
    }
    Ok((rest, csv))
}

/// The JSON answer of a view for these parameters.
pub async fn run_view(
    state: &AppState,
    view: View,
    pairs: &[(String, String)],
) -> Result<serde_json::Value, ApiError> {
    match view {
        View::Insights => insights_answer(state, parse_insights(pairs, &state.config)?).await,
        View::Users => {
            let (pairs, dropped) = take_funnel(pairs)?;
            let (mut q, ranking) = parse_users(&pairs, &state.config)?;
            if let Some(dropped) = dropped {
                q.ids = Some(funnel_people(state, &q, dropped).await?);
            }
            if let Some(ranking) = ranking {
                return ranked_users(state, q, ranking).await;
            }
            let store = state.store.clone();
            let page = blocking(move || store.users(&q)).await?;
            Ok(json!({
                "users": page.users,
                "next_cursor": page.next.map(|c| c.encode()),
            }))
        }
        View::Sessions => {
            let q = parse_session_stats(pairs, &state.config)?;
            let store = state.store.clone();
            let stats = blocking(move || store.session_stats(&q)).await?;
            Ok(serde_json::to_value(stats).expect("plain data"))
        }
    }
}

fn respond(answer: serde_json::Value, csv: Option<View>) -> Result<HttpResponse, ApiError> {
    match csv {
        None => Ok(HttpResponse::Ok().json(answer)),
        Some(view) => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"footfall.csv\"",
            ))
            .body(to_csv(view, &answer))),
    }
}

fn csv_field(v: &serde_json::Value) -> String {
    let text = match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The table of a view's answer as CSV, with a header row.
fn to_csv(view: View, answer: &serde_json::Value) -> String {
    let (rows, columns): (Vec<&serde_json::Value>, &[&str]) = match view {
        View::Insights => (
            answer["table"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            if answer["split"].is_null() {
                &["key", "value"]
            } else {
                &["key", "split", "value"]
            },
        ),
        View::Users => (
            answer["users"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            &[
                "id",
                "user_id",
                "anonymous_ids",
                "first_seen",
                "last_seen",
                "session_count",
                "properties",
            ],
        ),
        View::Sessions => {
            let mut rows = vec![answer];
            rows.extend(answer["table"].as_array().into_iter().flatten());
            (
                rows,
                &[
                    "key",
                    "total_sessions",
                    "avg_session_seconds",
                    "total_session_seconds",
                    "bounce_rate",
                ],
            )
        }
    };
    let mut out = columns.join(",");
    out.push_str("\r\n");
    for row in rows {
        let line: Vec<String> = columns.iter().map(|c| csv_field(&row[*c])).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

async fn insights_answer(
    state: &AppState,
    q: InsightsQuery,
) -> Result<serde_json::Value, ApiError> {
    let store = state.store.clone();
    let q2 = q.clone();
    let answer = blocking(move || store.insights(&q2)).await?;
    let series: Vec<_> = answer
        .series
        .iter()
        .map(|s| {
            let points: Vec<_> = s
                .buckets
                .iter()
                .map(|b| json!({ "t": rfc3339(b.start_ms), "value": b.value }))
                .collect();
            json!({ "key": s.key, "points": points })
        })
        .collect();
    // Without `by` or `split`, the table has one row per interval, keyed by its start.
    let table: Vec<_> = if q.by.is_some() || q.split.is_some() {
        answer
            .table
            .iter()
            .map(|r| match q.split {
                Some(_) => json!({ "key": r.key, "split": r.split, "value": r.value }),
                None => json!({ "key": r.key, "value": r.value }),
            })
            .collect()
    } else {
        answer.series[0]
            .buckets
            .iter()
            .map(|b| json!({ "key": rfc3339(b.start_ms), "value": b.value }))
            .collect()
    };
    Ok(json!({
        "metric": q.metric,
        "from": rfc3339(q.from_ms),
        "to": rfc3339(q.to_ms),
        "interval": q.interval,
        "by": q.by.as_ref().map(Field::name),
        "split": q.split.as_ref().map(Field::name),
        "sites": q.sites,
        "tz": q.tz.name(),
        "total": answer.total,
        "series": series,
        "table": table,
        "sample_users": answer.sample_users.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
    }))
}

pub async fn user(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = scope_and(
        &read_params(&req, &state).await?,
        &state.config,
        "/api/v1/users/{id}",
        |_, _| Ok(false),
    )?;
    let id = id.into_inner();
    let store = state.store.clone();
    let lookup = id.clone();
    let detail = web::block(move || store.user(&lookup, &scope))
        .await??
        .ok_or_else(|| ApiError::NotFound(format!("no user {id:?}")))?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Runs a blocking store call off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(web::block(f).await??)
}

fn parse_limit(v: &str, max: usize) -> Result<usize, ApiError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| ApiError::param("limit", format!("must be a number from 1 to {max}")))
}

/// The people of the users feed who stopped at one step of a funnel: `step=` (2 to 10),
/// `window=`, and `dropped_after=K` (did steps 1..K and not K+1; K = the last step: did every
/// step).
struct Dropped {
    steps: Vec<Step>,
    window_ms: i64,
    after: usize,
}

/// A query string's pairs, in order.
type Params = Vec<(String, String)>;

/// Takes the funnel parameters of `/api/v1/users` out of the others.
fn take_funnel(pairs: &[(String, String)]) -> Result<(Params, Option<Dropped>), ApiError> {
    let mut steps = Vec::new();
    let mut window_ms = 14 * 86_400_000;
    let mut after = None;
    let mut rest = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        match k.as_str() {
            "step" => steps.push(Step::parse(v).map_err(|e| ApiError::param(k, e))?),
            "window" => window_ms = parse_duration(k, v)?,
            "dropped_after" => {
                after = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| ApiError::param(k, "must be a step number from 1"))?,
                )
            }
            _ => rest.push((k.clone(), v.clone())),
        }
    }
    match after {
        None if steps.is_empty() => Ok((rest, None)),
        None => Err(ApiError::param(
            "dropped_after",
            "is needed with `step`: the step after which people stopped",
        )),
        Some(_) if !(2..=10).contains(&steps.len()) => Err(ApiError::param(
            "step",
            "must be given 2 to 10 times with `dropped_after`",
        )),
        Some(k) if k > steps.len() => Err(ApiError::param(
            "dropped_after",
            format!("must be a step number from 1 to {}", steps.len()),
        )),
        Some(after) => Ok((
            rest,
            Some(Dropped {
                steps,
                window_ms,
                after,
            }),
        )),
    }
}

/// Who of the feed's range, sites and filters stopped where `dropped` says (at most 10,000).
async fn funnel_people(
    state: &AppState,
    q: &UsersQuery,
    dropped: Dropped,
) -> Result<Vec<String>, ApiError> {
    let steps = dropped.steps.len();
    let sq = StepQuery {
        from_ms: q.from_ms,
        to_ms: q.to_ms.saturating_add(dropped.window_ms),
        steps: dropped.steps,
        filters: q.event_filters(),
        sites: q.scope.sites.clone(),
        breakdown: None,
        people: true,
        periods: None,
    };
    let store = state.store.clone();
    let mut events = blocking(move || store.step_events(&sq)).await?;
    let people = std::mem::take(&mut events.people);
    let found = journeys::funnel(events, steps, q.from_ms, q.to_ms, dropped.window_ms);
    let mut ids: Vec<String> = found
        .reached
        .into_iter()
        .filter(|&(_, reached)| reached == dropped.after)
        .filter_map(|(p, _)| people.get(&p).cloned())
        .collect();
    ids.sort();
    ids.truncate(10_000);
    Ok(ids)
}

/// How `/api/v1/users` ranks people when not by last activity: by their sessions that began
/// in the range.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranking {
    sort: Sort,
    min_sessions: u64,
    max_avg_seconds: f64,
    /// Where the page starts in the ranking (the cursor `r<offset>`).
    offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    /// Most sessions first, then the shortest average ("many short sessions").
    Struggling,
    /// Most sessions first.
    Sessions,
    /// Shortest average session first.
    AvgSession,
}

fn parse_users(
    pairs: &[(String, String)],
    config: &Config,
) -> Result<(UsersQuery, Option<Ranking>), ApiError> {
    let mut ranking = Ranking {
        sort: Sort::Struggling,
        min_sessions: 0,
        max_avg_seconds: f64::INFINITY,
        offset: 0,
    };
    let mut ranked = false;
    let mut cursor = None;
    let mut rest = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        match k.as_str() {
            "sort" => {
                ranking.sort = match v.as_str() {
                    "struggling" => Sort::Struggling,
                    "sessions" => Sort::Sessions,
                    "avg_session" => Sort::AvgSession,
                    "last_seen" => continue,
                    _ => {
                        return Err(ApiError::param(
                            "sort",
                            "must be last_seen, struggling, sessions or avg_session",
                        ))
                    }
                };
                ranked = true;
            }
            "min_sessions" => {
                ranking.min_sessions = v
                    .parse()
                    .map_err(|_| ApiError::param(k, "must be a whole number"))?;
                ranked = true;
            }
            "max_avg_session" => {
                ranking.max_avg_seconds = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| *s >= 0.0)
                    .ok_or_else(|| ApiError::param(k, "must be a number of seconds"))?;
                ranked = true;
            }
            "cursor" => cursor = Some(v.clone()),
            _ => rest.push((k.clone(), v.clone())),
        }
    }
    let mut q = users_query(&rest, config)?;
    if !ranked {
        if let Some(v) = cursor {
            q.cursor = Some(
                UsersCursor::decode(&v)
                    .ok_or_else(|| ApiError::param("cursor", "is not a cursor of this API"))?,
            );
        }
        return Ok((q, None));
    }
    // Ranked pages go by position: `r<offset>`.
    if let Some(v) = cursor {
        ranking.offset = v
            .strip_prefix('r')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ApiError::param("cursor", "is not a cursor of this API"))?;
    }
    Ok((q, Some(ranking)))
}

/// A page of people ranked by their sessions in the range (the 1,000 with the most), each
/// with `sessions_in_range` and `avg_session_seconds`; filters and the search narrow it.
async fn ranked_users(
    state: &AppState,
    q: UsersQuery,
    ranking: Ranking,
) -> Result<serde_json::Value, ApiError> {
    let store = state.store.clone();
    let stats_q = SessionStatsQuery {
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        user: None,
        split: Some(SessionField::User),
        scope: q.scope.clone(),
    };
    let stats = blocking(move || store.session_stats(&stats_q)).await?;
    let mut rows: Vec<(String, u64, f64)> = stats
        .table
        .into_iter()
        .filter_map(|r| {
            Some((
                r.key?,
                r.totals.total_sessions,
                r.totals.avg_session_seconds,
            ))
        })
        .filter(|r| r.1 >= ranking.min_sessions && r.2 <= ranking.max_avg_seconds)
        .filter(|r| q.ids.as_ref().is_none_or(|ids| ids.contains(&r.0)))
        .collect();
    rows.sort_by(|a, b| {
        let order = match ranking.sort {
            Sort::Struggling => b.1.cmp(&a.1).then(a.2.total_cmp(&b.2)),
            Sort::Sessions => b.1.cmp(&a.1),
            Sort::AvgSession => a.2.total_cmp(&b.2),
        };
        order.then_with(|| a.0.cmp(&b.0))
    });
    let mut at = ranking.offset;
    let mut page = Vec::new();
    while page.len() < q.limit && at < rows.len() {
        let chunk = &rows[at..rows.len().min(at + q.limit - page.len())];
        at += chunk.len();
        let mut part = q.clone();
        part.cursor = None;
        part.limit = chunk.len();
        part.ids = Some(chunk.iter().map(|r| r.0.clone()).collect());
        let store = state.store.clone();
        let found = blocking(move || store.users(&part)).await?;
        for (id, sessions, avg) in chunk {
            if let Some(u) = found.users.iter().find(|u| &u.id == id) {
                let mut user = serde_json::to_value(u).expect("plain data");
                user["sessions_in_range"] = json!(sessions);
                user["avg_session_seconds"] = json!(avg);
                page.push(user);
            }
        }
    }
    Ok(json!({
        "users": page,
        "next_cursor": (at < rows.len()).then(|| format!("r{at}")),
    }))
}

fn users_query(pairs: &[(String, String)], config: &Config) -> Result<UsersQuery, ApiError> {
    let mut range = Range::default();
    let mut q = UsersQuery::new(0, 0, 50);
    for (k, v) in pairs {
        match k.as_str() {
            _ if range.take(k, v)? => {}
            _ if take_scope(&mut q.scope, k, v, config)? => {}
            "limit" => q.limit = parse_limit(v, 1000)?,
            "contains" => q.contains = Some(v.clone()).filter(|v| !v.is_empty()),
            "event" => take_events(&mut q.events, v),
            "filter" => q
                .filters
                .push(Filter::parse(v).map_err(|e| ApiError::param("filter", e))?),
            _ => return Err(ApiError::param(k, "is not a parameter of /api/v1/users")),
        }
    }
    (q.from_ms, q.to_ms) = range.resolve(WEEK_MS)?;
    Ok(q)
}

/// `GET /api/v1/funnel`: how many people went through the steps in order.
pub async fn funnel(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut range = Range::default();
    let mut steps: Vec<(String, Step)> = Vec::new();
    let mut window_ms = 14 * 86_400_000;
    let mut filters = Vec::new();
    let mut by = None;
    let scope = scope_and(
        &read_params(&req, &state).await?,
        &state.config,
        "/api/v1/funnel",
        |k, v| {
            match k {
                "by" => by = Some(parse_field(k, v)?),
                "step" => steps.push((
                    v.trim().to_owned(),
                    Step::parse(v).map_err(|e| ApiError::param("step", e))?,
                )),
                "window" => window_ms = parse_duration("window", v)?,
                "filter" => {
                    filters.push(Filter::parse(v).map_err(|e| ApiError::param("filter", e))?)
                }
                _ => return range.take(k, v),
            }
            Ok(true)
        },
    )?;
    if !(2..=10).contains(&steps.len()) {
        return Err(ApiError::param(
            "step",
            format!(
                "is given {} times: a funnel has 2 to 10 steps, in order",
                steps.len()
            ),
        ));
    }
    let (from_ms, to_ms) = range.resolve(30 * 86_400_000)?;
    filters.extend(scope.bots.filter());
    let q = StepQuery {
        from_ms,
        to_ms: to_ms.saturating_add(window_ms),
        steps: steps.iter().map(|(_, s)| s.clone()).collect(),
        filters,
        sites: scope.sites,
        breakdown: by.clone(),
        people: false,
        periods: None,
    };
    let store = state.store.clone();
    let found = blocking(move || store.funnel(&q, to_ms, window_ms)).await?;
    let counted = &found.steps;
    let first = counted.first().map_or(0, |s| s.count).max(1) as f64;
    let answer: Vec<_> = steps
        .iter()
        .zip(counted)
        .enumerate()
        .map(|(k, ((name, _), s))| {
            let before = if k == 0 {
                s.count
            } else {
                counted[k - 1].count
            };
            json!({
                "name": name,
                "count": s.count,
                "conversion": s.count as f64 / first,
                "from_previous": if before == 0 { 0.0 } else { s.count as f64 / before as f64 },
                "median_seconds_from_previous": s.median_seconds,
            })
        })
        .collect();
    // With `by`: each value's steps, the people counted under the value of the step 1 event
    // their counted attempt began with.
    let breakdown: Option<Vec<_>> = by.as_ref().map(|_| {
        found
            .breakdown
            .iter()
            .map(|(key, counts)| {
                let first = counts[0].max(1) as f64;
                let steps: Vec<_> = counts
                    .iter()
                    .map(|&n| json!({"count": n, "conversion": n as f64 / first}))
                    .collect();
                json!({"key": key, "steps": steps})
            })
            .collect()
    });
    Ok(HttpResponse::Ok().json(json!({
        "from": rfc3339(from_ms),
        "to": rfc3339(to_ms),
        "window_seconds": window_ms / 1000,
        "by": by.as_ref().map(Field::name),
        "breakdown": breakdown,
        "steps": answer,
    })))
}

/// `GET /api/v1/retention`: cohorts by the period of their first start event, and who of
/// each came back in each later period.
pub async fn retention(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut range = Range::default();
    let mut start = Step::Any;
    let mut back = Step::Any;
    let mut interval = Interval::Day;
    let mut tz = chrono_tz::Tz::UTC;
    let mut filters = Vec::new();
    let scope = scope_and(
        &read_params(&req, &state).await?,
        &state.config,
        "/api/v1/retention",
        |k, v| {
            match k {
                "start_event" => start = Step::parse(v).map_err(|e| ApiError::param(k, e))?,
                "return_event" => back = Step::parse(v).map_err(|e| ApiError::param(k, e))?,
                "interval" => {
                    interval = match v {
                        "day" => Interval::Day,
                        "week" => Interval::Week,
                        _ => return Err(ApiError::param("interval", "must be day or week")),
                    }
                }
                "tz" => tz = parse_tz(v)?,
                "filter" => {
                    filters.push(Filter::parse(v).map_err(|e| ApiError::param("filter", e))?)
                }
                _ => return range.take(k, v),
            }
            Ok(true)
        },
    )?;
    let (from_ms, to_ms) = range.resolve(30 * 86_400_000)?;
    let starts = crate::store::bucket_starts(from_ms, to_ms, interval, tz);
    filters.extend(scope.bots.filter());
    let q = StepQuery {
        from_ms,
        to_ms,
        steps: vec![start.clone(), back.clone()],
        filters,
        sites: scope.sites,
        breakdown: None,
        people: false,
        periods: Some(journeys::Periods {
            starts: starts.clone(),
            interval,
            tz,
        }),
    };
    let store = state.store.clone();
    let cohorts: Vec<_> = blocking(move || store.retention(&q, &starts))
        .await?
        .into_iter()
        .map(|c| {
            json!({
                "start": rfc3339(c.start_ms.max(from_ms)),
                "size": c.values[0],
                "values": c.values,
            })
        })
        .collect();
    let name = |s: &Step| match s {
        Step::Any => None,
        Step::Event(n) => Some(n.clone()),
        Step::Page(p) => Some(format!("$pageview:{p}")),
    };
    Ok(HttpResponse::Ok().json(json!({
        "from": rfc3339(from_ms),
        "to": rfc3339(to_ms),
        "interval": interval,
        "tz": tz.name(),
        "start_event": name(&start),
        "return_event": name(&back),
        "cohorts": cohorts,
    })))
}

/// `GET /api/v1/paths`: the most common ways through sessions after (or before) a start.
pub async fn paths(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut range = Range::default();
    let mut start = Step::Event("$pageview".into());
    let mut direction = Direction::After;
    let mut depth = 4;
    let mut pages_only = true;
    let mut filters = Vec::new();
    let scope = scope_and(
        &read_params(&req, &state).await?,
        &state.config,
        "/api/v1/paths",
        |k, v| {
            match k {
                "start" => start = Step::parse(v).map_err(|e| ApiError::param(k, e))?,
                "direction" => {
                    direction = match v {
                        "after" => Direction::After,
                        "before" => Direction::Before,
                        _ => return Err(ApiError::param(k, "must be after or before")),
                    }
                }
                "depth" => {
                    depth = v
                        .parse()
                        .ok()
                        .filter(|d| (1..=10).contains(d))
                        .ok_or_else(|| ApiError::param(k, "must be a number from 1 to 10"))?
                }
                "type" => {
                    pages_only = match v {
                        "pages" => true,
                        "events" => false,
                        _ => return Err(ApiError::param(k, "must be pages or events")),
                    }
                }
                "filter" => {
                    filters.push(Filter::parse(v).map_err(|e| ApiError::param("filter", e))?)
                }
                _ => return range.take(k, v),
            }
            Ok(true)
        },
    )?;
    if pages_only
        && !matches!(&start, Step::Page(_) | Step::Any)
        && start != Step::Event("$pageview".into())
    {
        return Err(ApiError::param(
            "start",
            "must be $pageview or $pageview:/path with type=pages (type=events walks every event)",
        ));
    }
    let (from_ms, to_ms) = range.resolve(WEEK_MS)?;
    filters.extend(scope.bots.filter());
    let q = PathQuery {
        from_ms,
        to_ms,
        pages_only,
        filters,
        sites: scope.sites,
    };
    let store = state.store.clone();
    let found = blocking(move || store.paths(&q, &start, direction, depth)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "from": rfc3339(from_ms),
        "to": rfc3339(to_ms),
        "sessions": found.sessions,
        "paths": found.paths.iter().map(|(steps, count)| json!({"steps": steps, "count": count})).collect::<Vec<_>>(),
        "nodes": found.nodes.iter().map(|level| level.iter().map(|(label, count)| json!({"label": label, "count": count})).collect::<Vec<_>>()).collect::<Vec<_>>(),
        "links": found.links.iter().map(|(depth, from, to, count)| json!({"depth": depth, "from": from, "to": to, "count": count})).collect::<Vec<_>>(),
    })))
}

/// `GET /api/v1/users`: people in reverse order of last activity.
pub async fn users(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (pairs, csv) = format_param(read_params(&req, &state).await?)?;
    let answer = run_view(&state, View::Users, &pairs).await?;
    respond(answer, csv.then_some(View::Users))
}

fn parse_session_stats(
    pairs: &[(String, String)],
    config: &Config,
) -> Result<SessionStatsQuery, ApiError> {
    let mut range = Range::default();
    let mut q = SessionStatsQuery {
        from_ms: 0,
        to_ms: 0,
        user: None,
        split: None,
        scope: Scope::default(),
    };
    for (k, v) in pairs {
        match k.as_str() {
            _ if range.take(k, v)? => {}
            _ if take_scope(&mut q.scope, k, v, config)? => {}
            "user" => q.user = Some(v.clone()),
            "split" | "by" => {
                q.split = Some(SessionField::parse(v).ok_or_else(|| {
                    ApiError::param(
                        k,
                        "must be one of browser, os, device, country, entry_path, user, site",
                    )
                })?)
            }
            _ => {
                return Err(ApiError::param(
                    k,
                    "is not a parameter of /api/v1/sessions/stats",
                ))
            }
        }
    }
    (q.from_ms, q.to_ms) = range.resolve(WEEK_MS)?;
    Ok(q)
}

/// `GET /api/v1/sessions/stats`: session count, time and bounce rate, overall and split.
pub async fn session_stats(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (pairs, csv) = format_param(read_params(&req, &state).await?)?;
    let answer = run_view(&state, View::Sessions, &pairs).await?;
    respond(answer, csv.then_some(View::Sessions))
}

fn parse_session_list(
    pairs: &[(String, String)],
    config: &Config,
) -> Result<SessionListQuery, ApiError> {
    let mut range = Range::default();
    let mut q = SessionListQuery {
        from_ms: 0,
        to_ms: 0,
        user: None,
        scope: Scope::default(),
        limit: 50,
        after: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            _ if range.take(k, v)? => {}
            _ if take_scope(&mut q.scope, k, v, config)? => {}
            "user" => q.user = Some(v.clone()),
            "limit" => q.limit = parse_limit(v, 1000)?,
            "cursor" => {
                q.after = Some(
                    v.split_once(':')
                        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_owned())))
                        .ok_or_else(|| ApiError::param("cursor", "is not a cursor of this API"))?,
                )
            }
            _ => return Err(ApiError::param(k, "is not a parameter of /api/v1/sessions")),
        }
    }
    (q.from_ms, q.to_ms) = range.resolve(WEEK_MS)?;
    Ok(q)
}

/// `GET /api/v1/sessions`: the sessions that started in the range, newest first, a page at a
/// time (`next_cursor`).
pub async fn sessions(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let q = parse_session_list(&read_params(&req, &state).await?, &state.config)?;
    let store = state.store.clone();
    let page = blocking(move || store.sessions(&q)).await?;
    let next = page
        .more
        .then(|| page.sessions.last())
        .flatten()
        .map(|r| format!("{}:{}", r.started_ms, r.session_id));
    Ok(HttpResponse::Ok().json(json!({ "sessions": page.sessions, "next_cursor": next })))
}

/// `GET /api/v1/sessions/{id}`: one session with its events.
pub async fn session(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let scope = scope_and(
        &read_params(&req, &state).await?,
        &state.config,
        "/api/v1/sessions/{id}",
        |_, _| Ok(false),
    )?;
    let id = id.into_inner();
    let store = state.store.clone();
    let lookup = id.clone();
    let found = blocking(move || store.session(&lookup, &scope))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no session {id:?}")))?;
    Ok(HttpResponse::Ok().json(json!({ "session": found })))
}

/// `DELETE /api/v1/users/{id}`: erases every row of the person, all anonymous IDs included.
pub async fn erase_user(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, &state).await?;
    let id = id.into_inner();
    let erased = state.store.erase(&id).await??;
    if erased.events == 0 {
        return Err(ApiError::NotFound(format!("no user {id:?}")));
    }
    access::audit(
        "erase",
        json!({ "by": caller.name(), "user": id, "events": erased.events }),
    );
    Ok(HttpResponse::Ok().json(json!({ "erased": erased })))
}

/// The scope and range of the endpoints that take nothing else (default range: 30 days).
fn scope_and_range(
    pairs: &[(String, String)],
    config: &Config,
    endpoint: &str,
) -> Result<(Scope, i64, i64), ApiError> {
    let mut range = Range::default();
    let scope = scope_and(pairs, config, endpoint, |k, v| range.take(k, v))?;
    let (from, to) = range.resolve(30 * 86_400_000)?;
    Ok((scope, from, to))
}

/// `GET /api/v1/events`: event names and counts (default: the past 30 days).
pub async fn event_names(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (scope, from, to) = scope_and_range(
        &read_params(&req, &state).await?,
        &state.config,
        "/api/v1/events",
    )?;
    let store = state.store.clone();
    let names = blocking(move || store.event_names(from, to, &scope)).await?;
    let events: Vec<_> = names
        .into_iter()
        .map(|(name, count)| json!({"name": name, "count": count}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "events": events })))
}

/// `GET /api/v1/properties`: what `by`, `split` and `filter` can name.
pub async fn property_keys(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (scope, from, to) = scope_and_range(
        &read_params(&req, &state).await?,
        &state.config,
        "/api/v1/properties",
    )?;
    let store = state.store.clone();
    let keys = blocking(move || store.property_keys(from, to, &scope)).await?;
    Ok(HttpResponse::Ok().json(keys))
}

/// `GET /api/v1/properties/values?field=F`: the field's most frequent values in events.
pub async fn property_values(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut pairs = read_params(&req, &state).await?;
    let at = pairs
        .iter()
        .position(|(k, _)| k == "field")
        .ok_or_else(|| ApiError::param("field", "is required"))?;
    let (_, field) = pairs.remove(at);
    let (scope, from_ms, to_ms) =
        scope_and_range(&pairs, &state.config, "/api/v1/properties/values")?;
    let by = parse_field("field", &field)?;
    let q = InsightsQuery {
        metric: Metric::Events,
        from_ms,
        to_ms,
        interval: Interval::Month,
        events: Vec::new(),
        by: Some(by),
        split: None,
        filters: scope.bots.filter().into_iter().collect(),
        sites: scope.sites,
        tz: chrono_tz::Tz::UTC,
    };
    let store = state.store.clone();
    let answer = blocking(move || store.insights(&q)).await?;
    let values: Vec<_> = answer
        .table
        .into_iter()
        .take(100)
        .map(|r| json!({"value": r.key, "count": r.value}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "field": field, "values": values })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    name: String,
    view: String,
    query: String,
    #[serde(default)]
    shared: bool,
    /// When a shared link stops working; never if absent.
    share_expires_at: Option<String>,
}

fn report_json(r: &crate::store::Report) -> serde_json::Value {
    let share = r.share.as_ref();
    json!({
        "id": r.id, "name": r.name, "view": r.view, "query": r.query,
        "url": format!("/#report/{}", r.id),
        "created_at": r.created_at,
        "created_by": Some(&r.created_by).filter(|b| !b.is_empty()),
        "shared": share.is_some(),
        "share_url": share.map(|s| format!("/#shared/{}", s.token)),
        "shared_by": share.map(|s| &s.by).filter(|b| !b.is_empty()),
        "shared_at": share.map(|s| rfc3339(s.at_ms)),
        "share_expires_at": share.and_then(|s| s.expires_ms).map(rfc3339),
    })
}

/// A new link for `report`, made by `caller`, open until `expires_ms`.
fn new_share(caller: &Caller, expires_ms: Option<i64>) -> crate::store::Share {
    crate::store::Share {
        token: uuid::Uuid::new_v4().simple().to_string(),
        by: caller.label(),
        at_ms: chrono::Utc::now().timestamp_millis(),
        expires_ms,
    }
}

/// `share_expires_at` of a request body: an RFC 3339 time or a date, in the future.
fn share_expiry(v: &str) -> Result<i64, ApiError> {
    let ms = parse_instant("share_expires_at", v)?;
    if ms <= chrono::Utc::now().timestamp_millis() {
        return Err(ApiError::param("share_expires_at", "must be in the future"));
    }
    Ok(ms)
}

/// `POST /api/v1/reports`: saves a view and its query, private or shared by link.
pub async fn save_report(
    req: HttpRequest,
    body: web::Json<NewReport>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, &state).await?;
    let NewReport {
        name,
        view,
        query,
        shared,
        share_expires_at,
    } = body.into_inner();
    let v = View::parse(&view)
        .ok_or_else(|| ApiError::param("view", "must be insights, users or sessions"))?;
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::param("name", "must be 1 to 200 characters"));
    }
    // The query must be one the view accepts.
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(&query).map_err(|e| ApiError::param("query", e))?;
    match v {
        View::Insights => parse_insights(&pairs, &state.config).map(|_| ())?,
        View::Users => parse_users(&pairs, &state.config).map(|_| ())?,
        View::Sessions => parse_session_stats(&pairs, &state.config).map(|_| ())?,
    }
    let expires_ms = share_expires_at.as_deref().map(share_expiry).transpose()?;
    if expires_ms.is_some() && !shared {
        return Err(ApiError::param(
            "share_expires_at",
            "is for a shared report (set `shared` too)",
        ));
    }
    let report = crate::store::Report {
        id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        name: name.trim().to_owned(),
        view,
        query,
        created_at: rfc3339(chrono::Utc::now().timestamp_millis()),
        created_by: caller.label(),
        share: shared.then(|| new_share(&caller, expires_ms)),
    };
    state.store.save_report(report.clone()).await??;
    Ok(HttpResponse::Created().json(report_json(&report)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportChange {
    name: Option<String>,
    shared: Option<bool>,
    /// A time or date sets when the link stops working; `null` keeps it open.
    #[serde(default, deserialize_with = "present")]
    share_expires_at: Option<Option<String>>,
}

/// A field that is present (maybe `null`) is `Some`, one that is absent `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// `PATCH /api/v1/reports/{id}`: renames a report, shares it (a new link) or withdraws its link
/// (the old link is a 404 from the answer on; sharing again makes a new one).
pub async fn change_report(
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Json<ReportChange>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, &state).await?;
    let id = id.into_inner();
    let ReportChange {
        name,
        shared,
        share_expires_at,
    } = body.into_inner();
    let expiry = match share_expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(v)) => Some(Some(share_expiry(&v)?)),
    };
    let store = state.store.clone();
    let lookup = id.clone();
    let mut report = blocking(move || store.report(&lookup, false))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no report {id:?}")))?;
    if let Some(name) = name {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(ApiError::param("name", "must be 1 to 200 characters"));
        }
        report.name = name.trim().to_owned();
    }
    match shared {
        Some(true) if report.share.is_none() => {
            report.share = Some(new_share(&caller, expiry.flatten()))
        }
        Some(false) => report.share = None,
        _ => {}
    }
    if let Some(expires_ms) = expiry {
        match report.share.as_mut() {
            Some(share) => share.expires_ms = expires_ms,
            None => {
                return Err(ApiError::param(
                    "share_expires_at",
                    "is for a shared report, and this one is not shared",
                ))
            }
        }
    }
    state.store.save_report(report.clone()).await??;
    Ok(HttpResponse::Ok().json(report_json(&report)))
}

pub async fn list_reports(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = access::caller(&req, &state).await?;
    let store = state.store.clone();
    let reports = blocking(move || store.reports()).await?;
    // A read token lists the reports of its sites only.
    let visible = reports
        .iter()
        .filter(|r| caller.limit(report_pairs(r)).is_ok())
        .map(report_json)
        .collect::<Vec<_>>();
    Ok(HttpResponse::Ok().json(json!({ "reports": visible })))
}

/// A shared link shows aggregates only: never the users feed, nor a table keyed by person or
/// by a person's property (issue #19); such a report is `403` by link, still open by token.
fn public_only(view: View, pairs: &[(String, String)]) -> Result<(), ApiError> {
    let personal = view == View::Users
        || pairs.iter().any(|(k, v)| {
            matches!(k.as_str(), "by" | "split") && (v == "user" || v.starts_with("user."))
        });
    if personal {
        return Err(ApiError::Forbidden(
            "a shared link shows aggregates only, and this report lists people".into(),
        ));
    }
    Ok(())
}

fn report_pairs(r: &crate::store::Report) -> Vec<(String, String)> {
    serde_urlencoded::from_str(&r.query).unwrap_or_default()
}

/// `GET /api/v1/reports/{id}` (token: `caller`, whose sites limit it) and
/// `GET /api/v1/shared/{token}` (no token, shared reports only): the report and its view's
/// answer now.
async fn open_report(
    state: &AppState,
    key: String,
    caller: Option<&Caller>,
) -> Result<HttpResponse, ApiError> {
    let shared = caller.is_none();
    let store = state.store.clone();
    let lookup = key.clone();
    let report = blocking(move || store.report(&lookup, shared))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no report {key:?}")))?;
    let expired = report
        .share
        .as_ref()
        .and_then(|s| s.expires_ms)
        .is_some_and(|ms| ms <= chrono::Utc::now().timestamp_millis());
    if shared && expired {
        return Err(ApiError::Gone("this shared link has expired".into()));
    }
    let view =
        View::parse(&report.view).ok_or_else(|| ApiError::NotFound("unknown view".into()))?;
    let pairs = match caller {
        Some(c) => c.limit(report_pairs(&report))?,
        None => report_pairs(&report),
    };
    if shared {
        public_only(view, &pairs)?;
    }
    let mut result = run_view(state, view, &pairs).await?;
    if shared {
        if let Some(o) = result.as_object_mut() {
            o.remove("sample_users");
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "report": report_json(&report), "result": result })))
}

pub async fn get_report(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let caller = access::caller(&req, &state).await?;
    open_report(&state, id.into_inner(), Some(&caller)).await
}

pub async fn shared_report(
    token: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    open_report(&state, token.into_inner(), None).await
}

pub async fn delete_report(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state).await?;
    let id = id.into_inner();
    let deleted = state.store.delete_report(&id).await??;
    if !deleted {
        return Err(ApiError::NotFound(format!("no report {id:?}")));
    }
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<InsightsQuery, ApiError> {
        let config = Config::default();
        parse_insights(
            &serde_urlencoded::from_str::<Vec<(String, String)>>(s).unwrap(),
            &config,
        )
    }

    #[test]
    fn ranges_parse_and_errors_name_the_parameter() {
        let a = q("metric=events&last=1d").unwrap();
        assert_eq!(a.to_ms - a.from_ms, 86_400_000);
        let b = q("metric=users&from=2026-11-01&to=2026-11-03T00:00:00Z&interval=hour").unwrap();
        assert_eq!(b.to_ms - b.from_ms, 2 * 86_400_000);
        assert_eq!(b.interval, Interval::Hour);
        for (query, param) in [
            ("metric=bogus", "metric"),
            ("last=1d", "metric"),
            ("metric=events&last=1y", "last"),
            ("metric=events&from=yesterday", "from"),
            ("metric=events&interval=minute", "interval"),
            ("metric=events&colour=red", "colour"),
        ] {
            let e = q(query).unwrap_err().to_string();
            assert!(e.contains(&format!("`{param}`")), "{query}: {e}");
        }
    }
}
