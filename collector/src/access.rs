//! Who may call the query API (issue #19, product.md "Access"): the admin token, or an API
//! token with a scope (`read` or `admin`) and the sites a `read` token is limited to.
//!
//! An API token is `ff_` and 64 hex digits of a random 32-byte secret; the store keeps only
//! its SHA-256, and every request compares that hash with every live token's in constant time.
//! Tokens are read from the store on each request, so a revocation holds at once on every
//! collector sharing the store. Use is recorded at most once a minute per token and collector.
//! Wrong tokens are counted per client address: after [`FAILURES_PER_MINUTE`] in a minute, the
//! address gets `429` on the query API until the minute is over.

use crate::client::client_ip;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::ApiToken;
use actix_web::{http::header, web, HttpRequest};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Wrong tokens one client address may send in a minute before it gets `429`.
pub const FAILURES_PER_MINUTE: u32 = 10;
const MINUTE_MS: i64 = 60_000;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The collector's admin token.
    Admin,
    /// An API token.
    Token(ApiToken),
}

impl Caller {
    /// The sites this caller may read; `None` for every site (the admin token and
    /// `admin`-scope tokens).
    pub fn sites(&self) -> Option<&[String]> {
        match self {
            Caller::Token(t) if t.scope != "admin" => Some(&t.sites),
            _ => None,
        }
    }

    /// Who, for the audit log: `admin` or `token:ID`.
    pub fn name(&self) -> String {
        match self {
            Caller::Admin => "admin".into(),
            Caller::Token(t) => format!("token:{}", t.id),
        }
    }

    /// Who, for people to read: `admin`, or an API token's name and ID.
    pub fn label(&self) -> String {
        match self {
            Caller::Admin => "admin".into(),
            Caller::Token(t) => format!("{} (token {})", t.name, t.id),
        }
    }

    /// Only the admin token and `admin`-scope tokens may change anything or manage tokens.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.sites() {
            None => Ok(()),
            Some(_) => Err(ApiError::Forbidden(
                "a read token may only call GET endpoints of its sites".into(),
            )),
        }
    }

    /// Limits query parameters to the caller's sites: naming a site outside them is
    /// `forbidden`; naming none reads them all (and only them).
    pub fn limit(
        &self,
        mut pairs: Vec<(String, String)>,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let Some(allowed) = self.sites() else {
            return Ok(pairs);
        };
        let mut named = false;
        for (_, v) in pairs.iter().filter(|(k, _)| k == "site") {
            for key in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                named = true;
                if !allowed.iter().any(|s| s == key) {
                    return Err(ApiError::Forbidden(format!(
                        "this token may read sites {}, not {key:?}",
                        allowed.join(", ")
                    )));
                }
            }
        }
        if !named {
            pairs.push(("site".into(), allowed.join(",")));
        }
        Ok(pairs)
    }
}

/// Failed token attempts per client address in the current minute.
#[derive(Default)]
pub struct Failures {
    by_client: Mutex<HashMap<Option<IpAddr>, (i64, u32)>>,
}

impl Failures {
    /// `Err(seconds to wait)` if this client sent too many wrong tokens this minute.
    fn check(&self, ip: Option<IpAddr>, now_ms: i64) -> Result<(), u64> {
        let map = self.by_client.lock().expect("failures");
        match map.get(&ip) {
            Some(&(start, n)) if now_ms - start < MINUTE_MS && n >= FAILURES_PER_MINUTE => {
                // Whole seconds, rounded up: 1 to 60.
                Err((start + MINUTE_MS - now_ms + 999) as u64 / 1000)
            }
            _ => Ok(()),
        }
    }

    fn record(&self, ip: Option<IpAddr>, now_ms: i64) {
        let mut map = self.by_client.lock().expect("failures");
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| now_ms - *start < MINUTE_MS);
        }
        let entry = map.entry(ip).or_insert((now_ms, 0));
        if now_ms - entry.0 >= MINUTE_MS {
            *entry = (now_ms, 0);
        }
        entry.1 += 1;
    }
}

/// When each token's use was last recorded by this collector.
#[derive(Default)]
pub struct Uses(Mutex<HashMap<String, i64>>);

/// A new token's secret: `ff_` and 64 hex digits from the system's random source.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source");
    format!("ff_{}", hex(&bytes))
}

/// The SHA-256 of a secret, in hex: what the store keeps.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The dashboard's sign-in cookie: the token, hex-encoded, `HttpOnly` so that no script in the
/// page can read it (see [`crate::session`]).
pub const COOKIE: &str = "footfall_token";

/// The token a request carries: its `Authorization: Bearer` header's, else the dashboard's
/// sign-in cookie's (and whether it came from the cookie); `None` if neither.
pub fn credential(req: &HttpRequest) -> Option<(String, bool)> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| (v.trim().to_owned(), false));
    bearer.or_else(|| Some((unhex(req.cookie(COOKIE)?.value())?, true)))
}

/// Who sent `Authorization: Bearer <token>` (or, from the dashboard, the sign-in cookie): the
/// admin, a live API token, or `401` (`429` once the address sent too many wrong tokens).
pub async fn caller(req: &HttpRequest, state: &AppState) -> Result<Caller, ApiError> {
    let given = match credential(req) {
        Some((token, from_cookie)) => {
            if from_cookie {
                same_origin(req)?;
            }
            token
        }
        None => String::new(),
    };
    identify(req, state, &given).await
}

/// A request that carries the sign-in cookie and changes something must come from the
/// collector's own pages. `SameSite=Strict` keeps other sites' requests from carrying it; this
/// also turns away other origins of the same site (a sibling subdomain), by the browser's
/// `Sec-Fetch-Site`, or where a browser does not send that, by `Origin` against `Host`.
fn same_origin(req: &HttpRequest) -> Result<(), ApiError> {
    if matches!(
        *req.method(),
        actix_web::http::Method::GET | actix_web::http::Method::HEAD
    ) {
        return Ok(());
    }
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let ok = match (h("sec-fetch-site"), h("origin")) {
        (Some(site), _) => site == "same-origin",
        (None, Some(origin)) => {
            let host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            Some(host) == h("host")
        }
        (None, None) => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "a signed-in dashboard may only change things from its own pages".into(),
        ))
    }
}

/// Text as hex digits, for a cookie value that holds any token.
pub fn to_hex(text: &str) -> String {
    hex(text.as_bytes())
}

fn unhex(v: &str) -> Option<String> {
    if !v.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..v.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(v.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// The caller that `given` names (empty for none), counted against the client's address.
pub async fn identify(
    req: &HttpRequest,
    state: &AppState,
    given: &str,
) -> Result<Caller, ApiError> {
    let now = chrono::Utc::now().timestamp_millis();
    let ip = client_ip(req, &state.config.trusted_proxies);
    state
        .auth_failures
        .check(ip, now)
        .map_err(ApiError::RateLimited)?;
    // Every call of the query API counts against its address (requests without one, made in
    // process by tests, do not).
    if ip.is_some() {
        state
            .query_rate
            .check("api", ip)
            .map_err(ApiError::RateLimited)?;
    }
    let given = given.trim();
    let admin = state.config.admin_token.as_deref().unwrap_or_default();
    if !admin.is_empty() && constant_time_eq(given.as_bytes(), admin.as_bytes()) {
        return Ok(Caller::Admin);
    }
    let found = if given.starts_with("ff_") {
        let store = state.store.clone();
        let tokens = web::block(move || store.tokens()).await??;
        let wanted = hash(given);
        // Every hash is compared, all the way, whichever matches.
        tokens.into_iter().fold(None, |found, t| {
            if constant_time_eq(t.hash.as_bytes(), wanted.as_bytes()) {
                Some(t)
            } else {
                found
            }
        })
    } else {
        None
    };
    let Some(token) = found else {
        if !given.is_empty() {
            state.auth_failures.record(ip, now);
        }
        return Err(ApiError::Unauthorized);
    };
    let due = {
        let mut uses = state.token_uses.0.lock().expect("token uses");
        let last = uses.get(&token.id).copied().unwrap_or(i64::MIN);
        let due = now.saturating_sub(last) >= MINUTE_MS;
        if due {
            uses.insert(token.id.clone(), now);
        }
        due
    };
    if due {
        // Not awaited: the request does not wait for the write.
        drop(state.store.touch_token(token.clone(), now));
    }
    Ok(Caller::Token(token))
}

/// One JSON line on stderr (where the collector logs, with the keys of its JSON log format)
/// for what an auditor looks for: tokens created and revoked, people erased. Always JSON,
/// whatever `FOOTFALL_LOG_FORMAT` says, so it can be picked out of the log.
pub fn audit(event: &str, fields: serde_json::Value) {
    let mut line = serde_json::json!({
        "ts": crate::store::rfc3339(chrono::Utc::now().timestamp_millis()),
        "level": "INFO",
        "target": "footfall::audit",
        "audit": event,
    });
    if let (Some(o), serde_json::Value::Object(f)) = (line.as_object_mut(), fields) {
        o.extend(f);
    }
    eprintln!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_token_is_limited_to_its_sites() {
        let t = Caller::Token(ApiToken {
            id: "i".into(),
            name: "n".into(),
            hash: String::new(),
            sites: vec!["a".into(), "c".into()],
            scope: "read".into(),
            created_ms: 0,
            last_used_ms: None,
        });
        let p = |s: &str| serde_urlencoded::from_str::<Vec<(String, String)>>(s).unwrap();
        assert_eq!(
            t.limit(p("metric=users")).unwrap(),
            p("metric=users&site=a%2Cc")
        );
        assert_eq!(t.limit(p("site=a")).unwrap(), p("site=a"));
        assert_eq!(t.limit(p("site=a,b")).unwrap_err().code(), "forbidden");
        assert_eq!(t.limit(p("site=c&site=b")).unwrap_err().code(), "forbidden");
        assert!(t.require_admin().is_err());
        assert_eq!(Caller::Admin.limit(p("x=1")).unwrap(), p("x=1"));
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 67);
        assert_eq!(hash("abc").len(), 64);
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn too_many_failures_wait_out_the_minute() {
        let f = Failures::default();
        let ip = Some("1.2.3.4".parse().unwrap());
        for _ in 0..FAILURES_PER_MINUTE {
            assert!(f.check(ip, 1_000).is_ok());
            f.record(ip, 1_000);
        }
        assert_eq!(f.check(ip, 31_000), Err(30));
        assert_eq!(f.check(ip, 31_001), Err(30));
        // At the minute's first millisecond a whole minute is left; at its last, one second.
        assert_eq!(f.check(ip, 1_000), Err(60));
        assert_eq!(f.check(ip, 60_999), Err(1));
        assert!(f.check(Some("5.6.7.8".parse().unwrap()), 31_000).is_ok());
        assert!(f.check(ip, 61_000).is_ok());
    }
}
