//! `POST /v1/batch`: the SDK's batches in, per-event results out (product.md §2 Ingest).
//!
//! The body is read with a cap (also after gzip, so a bomb is a 413), the envelope parsed, the
//! key and origin checked, then every event validated on its own: one bad event is reported by
//! its index and never sinks its neighbours. The answer goes out only after the store committed.

use crate::client::client_ip;
use crate::enrich::{referrer_domain, user_agent_text, Agent, BotKind, Utm};
use crate::error::ApiError;
use crate::geo::Place;
use crate::state::AppState;
use crate::store::StoredEvent;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use footfall_wire::{BatchResponse, Event, EventType, Rejected};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::io::Read;

/// How far the skew-corrected time may lie before the server's receive time (events kept in
/// an outbox for a while are old, but not older than this).
const MAX_EVENT_AGE_MS: i64 = 30 * 86_400_000;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    sent_at: Option<String>,
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
pub struct KeyParam {
    key: Option<String>,
}

/// Reads the whole body, at most `limit` bytes after decompression.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("the batch is larger than {limit} bytes"));
    let mut raw = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest("bad-body", e.to_string()))?;
        if raw.len() + chunk.len() > limit {
            return Err(too_large());
        }
        raw.extend_from_slice(&chunk);
    }
    let encoding = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(raw),
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::BadRequest("bad-gzip", format!("gzip body: {e}")))?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out)
        }
        other => Err(ApiError::BadRequest(
            "unsupported-encoding",
            format!("Content-Encoding {other:?} is not supported; use gzip or none"),
        )),
    }
}

fn parse_time(t: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// Deepest nesting of arrays and objects allowed in `props` and `traits`.
const MAX_DEPTH: usize = 16;

/// How deeply the JSON text nests (brackets outside strings).
fn depth(json: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for b in json.bytes() {
        if in_str {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

fn check_len(what: &str, v: &str, max: usize) -> Result<(), String> {
    if v.is_empty() {
        Err(format!("`{what}` is empty"))
    } else if v.len() > max {
        Err(format!("`{what}` is longer than {max} bytes"))
    } else {
        Ok(())
    }
}

/// Validates one event and turns it into what the store keeps.
/// What is the same for every event of one request.
struct Received<'a> {
    site: &'a str,
    server_ms: i64,
    sent_at_ms: Option<i64>,
    agent: &'a Agent,
    place: &'a Place,
    ip: Option<String>,
    max_event_bytes: usize,
}

/// Why an event was refused: a metric label and a message for the client.
struct Refusal(&'static str, String);

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal("invalid", message)
    }
}

impl From<&str> for Refusal {
    fn from(message: &str) -> Refusal {
        Refusal("invalid", message.to_owned())
    }
}

fn accept_event(raw: &RawValue, r: &Received) -> Result<StoredEvent, Refusal> {
    let Received {
        site,
        server_ms,
        sent_at_ms,
        agent,
        place,
        max_event_bytes,
        ..
    } = *r;
    if raw.get().len() > max_event_bytes {
        return Err(Refusal(
            "too-large",
            format!("event larger than {max_event_bytes} bytes"),
        ));
    }
    let e: Event = serde_json::from_str(raw.get()).map_err(|e| e.to_string())?;
    uuid::Uuid::parse_str(&e.event_id).map_err(|_| "`event_id` is not a UUID")?;
    check_len("anonymous_id", &e.anonymous_id, 128)?;
    check_len("session_id", &e.session_id, 128)?;
    if e.kind == EventType::Track {
        check_len("name", &e.name, 200)?;
    }
    if let Some(u) = &e.user_id {
        check_len("user_id", u, 200)?;
    }
    if e.kind == EventType::Identify && e.user_id.is_none() {
        return Err("an `identify` event needs a `user_id`".into());
    }
    if !e.props.is_object() {
        return Err("`props` must be an object".into());
    }
    if e.traits.as_ref().is_some_and(|t| !t.is_object()) {
        return Err("`traits` must be an object".into());
    }
    for (what, v) in [("props", Some(&e.props)), ("traits", e.traits.as_ref())] {
        if v.is_some_and(|v| depth(v.as_str()) > MAX_DEPTH) {
            return Err(Refusal(
                "too-deep",
                format!("`{what}` nests deeper than {MAX_DEPTH} levels"),
            ));
        }
    }
    let client_ms =
        parse_time(&e.timestamp).ok_or_else(|| "`timestamp` is not an RFC 3339 time".to_owned())?;
    // The client's clock may be off: shift by how far its `sent_at` was from our receive time.
    let skew = sent_at_ms.map_or(0, |sent| server_ms - sent);
    let time_ms = (client_ms + skew).clamp(server_ms - MAX_EVENT_AGE_MS, server_ms);
    let utm = Utm::parse(&e.page.url);
    Ok(StoredEvent {
        referrer_domain: referrer_domain(&e.page.referrer),
        utm_source: utm.source,
        utm_medium: utm.medium,
        utm_campaign: utm.campaign,
        utm_term: utm.term,
        utm_content: utm.content,
        browser: agent.browser.clone(),
        browser_version: agent.browser_version.clone(),
        os: agent.os.clone(),
        device: agent.device.clone(),
        bot_reason: agent.bot_reason.clone(),
        country: place.country.clone(),
        region: place.region.clone(),
        city: place.city.clone(),
        ip: r.ip.clone(),
        event_id: e.event_id.to_ascii_lowercase(),
        site: site.to_owned(),
        kind: e.kind.as_str(),
        name: match e.kind {
            EventType::Page => "$pageview".into(),
            EventType::Identify => "$identify".into(),
            EventType::Set => "$set".into(),
            EventType::Track => e.name,
        },
        time_ms,
        client_ms,
        server_ms,
        anonymous_id: e.anonymous_id,
        user_id: e.user_id,
        session_id: e.session_id,
        seq: e.seq.min(i64::MAX as u64) as i64,
        url: e.page.url,
        path: e.page.path,
        title: e.page.title,
        referrer: e.page.referrer,
        screen: e.context.screen,
        viewport: e.context.viewport,
        language: e.context.language,
        timezone: e.context.timezone,
        sdk: e.context.sdk,
        props: e.props.0,
        traits: e.traits.map(|t| t.0),
    })
}

/// The request's `Origin`, if it sent one.
fn origin(req: &HttpRequest) -> Option<&str> {
    req.headers().get(header::ORIGIN)?.to_str().ok()
}

/// Whether `origin` is the collector's own (the demo site and dashboard are served from it).
fn is_own_origin(req: &HttpRequest, origin: &str) -> bool {
    let info = req.connection_info();
    origin == format!("{}://{}", info.scheme(), info.host())
}

fn cors(r: &mut actix_web::HttpResponseBuilder, origin: Option<&str>) {
    if let Some(o) = origin {
        r.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, o));
        r.insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"));
        r.insert_header((header::ACCESS_CONTROL_EXPOSE_HEADERS, "Retry-After"));
        r.insert_header((header::VARY, "Origin"));
    }
}

/// Whether some site (or the collector itself) allows `origin`: its pages may read our answers.
fn allowed_anywhere(req: &HttpRequest, state: &AppState, origin: &str) -> bool {
    is_own_origin(req, origin) || state.config.sites.iter().any(|s| s.allows(origin))
}

/// `POST /v1/batch`. Refusals carry the CORS headers too (for origins some site allows): a page
/// of another origin reads a 4xx, a 429 and its `Retry-After` only with them; without them its
/// SDK sees a network failure, retries what it should drop, and cannot wait out a 429.
pub async fn batch(
    req: HttpRequest,
    query: web::Query<KeyParam>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    match batch_or_error(&req, query, payload, &state).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = actix_web::ResponseError::error_response(&e);
            let allowed = origin(&req).filter(|o| allowed_anywhere(&req, &state, o));
            if let Some(o) = allowed.and_then(|o| header::HeaderValue::from_str(o).ok()) {
                use header::HeaderValue as V;
                let h = r.headers_mut();
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    V::from_static("true"),
                );
                h.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    V::from_static("Retry-After"),
                );
                h.insert(header::VARY, V::from_static("Origin"));
            }
            r
        }
    }
}

async fn batch_or_error(
    req: &HttpRequest,
    query: web::Query<KeyParam>,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let result = receive(req, &query, payload, state).await;
    let status = match &result {
        Ok(_) => "200".to_owned(),
        Err(e) => {
            state.metrics.rejected.with_label_values(&[e.code()]).inc();
            actix_web::ResponseError::status_code(e).as_str().to_owned()
        }
    };
    state
        .metrics
        .batch_seconds
        .with_label_values(&[status.as_str()])
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn receive(
    req: &HttpRequest,
    query: &KeyParam,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let server_ms = chrono::Utc::now().timestamp_millis();
    let limits = state.config.limits();
    let body = read_body(req, payload, limits.max_batch_bytes).await?;
    let envelope: Envelope = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest("invalid-json", format!("the body is not a batch: {e}"))
    })?;
    let key = envelope
        .key
        .clone()
        .or_else(|| query.key.clone())
        .ok_or_else(|| {
            ApiError::BadRequest("missing-key", "no `key` in the batch or the URL".into())
        })?;
    let site = state
        .config
        .site(&key)
        .ok_or_else(|| ApiError::UnknownKey(key.clone()))?;
    let origin = origin(req);
    if let Some(o) = origin {
        if !site.allows(o) && !is_own_origin(req, o) {
            return Err(ApiError::OriginNotAllowed(o.to_owned()));
        }
    }
    let ip = client_ip(req, &state.config.trusted_proxies);
    state
        .rate
        .check(&site.key, ip)
        .map_err(ApiError::RateLimited)?;
    let agent = Agent::parse(&user_agent_text(
        req.headers()
            .get(header::USER_AGENT)
            .map_or(&b""[..], |v| v.as_bytes()),
    ));
    let place = match (&state.geo, ip) {
        (Some(geo), Some(ip)) => geo.locate(ip),
        _ => Place::default(),
    };
    let received = Received {
        site: &site.key,
        server_ms,
        sent_at_ms: envelope.sent_at.as_deref().and_then(parse_time),
        agent: &agent,
        place: &place,
        ip: ip
            .filter(|_| state.config.store_ip)
            .map(|ip| ip.to_string()),
        max_event_bytes: limits.max_event_bytes,
    };

    let mut answer = BatchResponse::default();
    let mut good = Vec::with_capacity(envelope.events.len());
    for (index, raw) in envelope.events.iter().enumerate() {
        match accept_event(raw, &received) {
            Ok(e) => good.push(e),
            Err(Refusal(reason, error)) => {
                state.metrics.rejected.with_label_values(&[reason]).inc();
                answer.rejected.push(Rejected { index, error })
            }
        }
    }
    if !good.is_empty() {
        let stored = state.store.insert(good).await??;
        answer.accepted = stored.iter().filter(|&&new| new).count();
        answer.duplicates = stored.len() - answer.accepted;
        if let Some(kind) = agent.bot_reason.as_deref().and_then(BotKind::of_reason) {
            state
                .metrics
                .bots
                .with_label_values(&[kind.label()])
                .inc_by(answer.accepted as u64);
        }
        state.metrics.accepted.inc_by(answer.accepted as u64);
        state.metrics.duplicates.inc_by(answer.duplicates as u64);
    }
    let mut r = HttpResponse::Ok();
    cors(&mut r, origin);
    Ok(r.json(answer))
}

/// CORS preflight: allowed when some site allows the origin (the key is in the body, which a
/// preflight does not carry; the POST itself checks the pair).
pub async fn preflight(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let origin = origin(&req);
    let allowed = origin.is_some_and(|o| allowed_anywhere(&req, &state, o));
    if !allowed {
        return HttpResponse::Forbidden().json(serde_json::json!({
            "error": { "code": "origin-not-allowed", "message": "no site allows this origin" }
        }));
    }
    let mut r = HttpResponse::NoContent();
    cors(&mut r, origin);
    r.insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "POST, OPTIONS"))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            "content-type, content-encoding",
        ))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"))
        .finish()
}
