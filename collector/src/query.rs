//! The query API under `/api/v1` (product.md §2 "Query API"): bearer-token auth, parameter
//! parsing with errors that name the parameter, and the answer shapes of the contract.

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::{rfc3339, InsightsQuery, Interval, Metric};
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

fn parse_insights(pairs: &[(String, String)]) -> Result<InsightsQuery, ApiError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut metric = None;
    let (mut from, mut to, mut last) = (None, None, None);
    let mut interval = Interval::Day;
    let mut events = Vec::new();
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
            "from" => from = Some(parse_instant("from", v)?),
            "to" => to = Some(parse_instant("to", v)?),
            "last" => last = Some(parse_duration("last", v)?),
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
            "by" | "split" | "tz" | "filter" => {
                return Err(ApiError::param(k, "is not supported by this version yet"))
            }
            _ => return Err(ApiError::param(k, "is not a parameter of /api/v1/insights")),
        }
    }
    let metric = metric
        .ok_or_else(|| ApiError::param("metric", "is required (users, sessions or events)"))?;
    let (from_ms, to_ms) = match (from, to, last) {
        (_, _, Some(_)) if from.is_some() => {
            return Err(ApiError::param("last", "cannot be combined with `from`"))
        }
        (None, to, Some(d)) => {
            let to = to.unwrap_or(now);
            (to - d, to)
        }
        (Some(f), to, None) => (f, to.unwrap_or(now)),
        (None, _, None) => (now - 7 * 86_400_000, now),
        _ => unreachable!("every combination is matched above"),
    };
    if from_ms >= to_ms {
        return Err(ApiError::param("from", "must be before `to`"));
    }
    Ok(InsightsQuery {
        metric,
        from_ms,
        to_ms,
        interval,
        events,
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
    let answer = web::block(move || store.insights(&q2))
        .await
        .map_err(|e| ApiError::Storage(e.to_string()))?
        .map_err(|e| ApiError::Storage(e.to_string()))?;
    let points: Vec<_> = answer
        .buckets
        .iter()
        .map(|b| json!({ "t": rfc3339(b.start_ms), "value": b.value }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "metric": q.metric,
        "from": rfc3339(q.from_ms),
        "to": rfc3339(q.to_ms),
        "interval": q.interval,
        "total": answer.total,
        "series": [{ "key": null, "points": points }],
        "table": answer.buckets.iter().map(|b| json!({ "key": rfc3339(b.start_ms), "value": b.value })).collect::<Vec<_>>(),
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
