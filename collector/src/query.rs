//! The query API under `/api/v1` (product.md §2 "Query API"): bearer-token auth, parameter
//! parsing with errors that name the parameter, and the answer shapes of the contract.

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::{
    rfc3339, Field, Filter, InsightsQuery, Interval, Metric, SessionField, SessionStatsQuery,
    UsersCursor, UsersQuery,
};
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde_json::json;

/// Checks `Authorization: Bearer <admin token>`.
pub fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let expected = state.config.admin_token.as_deref().unwrap_or_default();
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim();
    if expected.is_empty() || !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn params(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest("invalid-query", format!("query string: {e}")))
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

fn parse_insights(pairs: &[(String, String)]) -> Result<InsightsQuery, ApiError> {
    let mut metric = None;
    let mut range = Range::default();
    let mut interval = Interval::Day;
    let mut events = Vec::new();
    let mut split = None;
    let mut filters = Vec::new();
    let mut tz = chrono_tz::Tz::UTC;
    for (k, v) in pairs {
        match k.as_str() {
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
                interval = match v.as_str() {
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
                }
            }
            "event" => events.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            ),
            "by" | "split" => {
                if split.is_some() {
                    return Err(ApiError::param(k, "only one of `by` and `split` at a time"));
                }
                split = Some(Field::parse(v).ok_or_else(|| {
                    ApiError::param(
                        k,
                        format!("unknown field {v:?}: a column (browser, os, device, country, region, city, path, url, name, type, referrer, utm_*), event.KEY or user.KEY"),
                    )
                })?)
            }
            "filter" => filters.push(Filter::parse(v).map_err(|e| ApiError::param("filter", e))?),
            "tz" => {
                tz = v.parse().map_err(|_| {
                    ApiError::param(
                        "tz",
                        format!("{v:?} is not an IANA time zone like Europe/Paris"),
                    )
                })?
            }
            _ => return Err(ApiError::param(k, "is not a parameter of /api/v1/insights")),
        }
    }
    let metric = metric
        .ok_or_else(|| ApiError::param("metric", "is required (users, sessions or events)"))?;
    let (from_ms, to_ms) = range.resolve(WEEK_MS)?;
    Ok(InsightsQuery {
        metric,
        from_ms,
        to_ms,
        interval,
        events,
        split,
        filters,
        tz,
    })
}

pub async fn insights(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let q = parse_insights(&params(&req)?)?;
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
    // Without a split, the table has one row per interval, keyed by its start.
    let table: Vec<_> = if q.split.is_some() {
        answer
            .table
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect()
    } else {
        answer.series[0]
            .buckets
            .iter()
            .map(|b| json!({ "key": rfc3339(b.start_ms), "value": b.value }))
            .collect()
    };
    Ok(HttpResponse::Ok().json(json!({
        "metric": q.metric,
        "from": rfc3339(q.from_ms),
        "to": rfc3339(q.to_ms),
        "interval": q.interval,
        "tz": q.tz.name(),
        "total": answer.total,
        "series": series,
        "table": table,
        "sample_users": answer.sample_users.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
    })))
}

pub async fn user(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = id.into_inner();
    let store = state.store.clone();
    let lookup = id.clone();
    let detail = web::block(move || store.user(&lookup))
        .await
        .map_err(|e| ApiError::Storage(e.to_string()))?
        .map_err(|e| ApiError::Storage(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("no user {id:?}")))?;
    Ok(HttpResponse::Ok().json(detail))
}

/// Runs a blocking store call off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    web::block(f)
        .await
        .map_err(|e| ApiError::Storage(e.to_string()))?
        .map_err(|e| ApiError::Storage(e.to_string()))
}

fn parse_limit(v: &str, max: usize) -> Result<usize, ApiError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| ApiError::param("limit", format!("must be a number from 1 to {max}")))
}

fn parse_users(pairs: &[(String, String)]) -> Result<UsersQuery, ApiError> {
    let mut range = Range::default();
    let mut q = UsersQuery {
        from_ms: 0,
        to_ms: 0,
        limit: 50,
        cursor: None,
        contains: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            _ if range.take(k, v)? => {}
            "limit" => q.limit = parse_limit(v, 1000)?,
            "cursor" => {
                q.cursor = Some(
                    UsersCursor::decode(v)
                        .ok_or_else(|| ApiError::param("cursor", "is not a cursor of this API"))?,
                )
            }
            "contains" => q.contains = Some(v.clone()).filter(|v| !v.is_empty()),
            _ => return Err(ApiError::param(k, "is not a parameter of /api/v1/users")),
        }
    }
    (q.from_ms, q.to_ms) = range.resolve(WEEK_MS)?;
    Ok(q)
}

/// `GET /api/v1/users`: people in reverse order of last activity.
pub async fn users(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let q = parse_users(&params(&req)?)?;
    let store = state.store.clone();
    let page = blocking(move || store.users(&q)).await?;
    Ok(HttpResponse::Ok().json(json!({
        "users": page.users,
        "next_cursor": page.next.map(|c| c.encode()),
    })))
}

fn parse_session_stats(pairs: &[(String, String)]) -> Result<SessionStatsQuery, ApiError> {
    let mut range = Range::default();
    let mut q = SessionStatsQuery {
        from_ms: 0,
        to_ms: 0,
        user: None,
        split: None,
    };
    for (k, v) in pairs {
        match k.as_str() {
            _ if range.take(k, v)? => {}
            "user" => q.user = Some(v.clone()),
            "split" | "by" => {
                q.split = Some(SessionField::parse(v).ok_or_else(|| {
                    ApiError::param(
                        k,
                        "must be one of browser, os, device, country, entry_path, user",
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
    authorize(&req, &state)?;
    let q = parse_session_stats(&params(&req)?)?;
    let store = state.store.clone();
    let stats = blocking(move || store.session_stats(&q)).await?;
    Ok(HttpResponse::Ok().json(stats))
}

/// `GET /api/v1/sessions/{id}`: one session with its events.
pub async fn session(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = id.into_inner();
    let store = state.store.clone();
    let lookup = id.clone();
    let found = blocking(move || store.session(&lookup))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no session {id:?}")))?;
    Ok(HttpResponse::Ok().json(json!({ "session": found })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<InsightsQuery, ApiError> {
        parse_insights(&serde_urlencoded::from_str::<Vec<(String, String)>>(s).unwrap())
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
