//! Access (issue #19): every route of `app::ROUTES` called by every role, API tokens created,
//! listed and revoked, a read token's answers limited to its sites (equal to the admin's with
//! `site=`), wrong tokens rate limited, and shared links that show no person.

use actix_web::{test, web, App};
use footfall_collector::app::{self, Access, ROUTES};
use footfall_collector::config::{Args, Config};
use footfall_collector::state::AppState;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

const DAY: i64 = 86_400_000;
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";

fn state(dir: &std::path::Path) -> web::Data<AppState> {
    let config = Config::load(Args {
        data_dir: Some(dir.into()),
        admin_token: Some("t".into()),
        rate_limit: Some(0),
        sites: vec!["a=https://a.example".into(), "b=https://b.example".into()],
        ..Args::default()
    })
    .unwrap();
    let store = footfall_collector::store::open(&config).unwrap();
    web::Data::new(AppState::new(config, store).unwrap())
}

macro_rules! app {
    ($state:expr) => {
        test::init_service(App::new().configure(app::configure($state.clone()))).await
    };
}

/// A new client address per call, so wrong tokens of one check do not rate limit the next.
fn next_peer() -> std::net::SocketAddr {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("10.{}.{}.{}:4000", n >> 16 & 255, n >> 8 & 255, n & 255)
        .parse()
        .unwrap()
}

/// Status, headers and the JSON body (`null` if not JSON).
async fn call<S>(
    app: &S,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
    peer: std::net::SocketAddr,
) -> (u16, Headers, Value)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let mut req = match method {
        "get" => test::TestRequest::get(),
        "post" => test::TestRequest::post(),
        "delete" => test::TestRequest::delete(),
        "patch" => test::TestRequest::patch(),
        other => panic!("no test request for {other}"),
    }
    .uri(uri)
    .peer_addr(peer);
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    let r = test::call_service(app, req.to_request()).await;
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let body = serde_json::from_slice(&test::read_body(r).await).unwrap_or(Value::Null);
    (status, Headers(headers), body)
}

/// An answer's headers.
#[derive(Debug)]
struct Headers(actix_web::http::header::HeaderMap);

impl Headers {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_str().unwrap().to_owned())
    }
}

/// Visitors on both sites over the past day: `a-N` on a (`ann@a.example` identified), `b-N`
/// on b (`bob@b.example`).
async fn send_visits<S>(app: &S)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let now = chrono::Utc::now().timestamp_millis();
    let mut n = 0;
    for (site, visitors, user) in [("a", 3, "ann@a.example"), ("b", 2, "bob@b.example")] {
        for v in 0..visitors {
            let anon = format!("{site}-{v}");
            let events: Vec<Value> = (0..3)
                .map(|i| {
                    n += 1;
                    let t = now - DAY / 2 + (v * 600_000 + i * 10_000) as i64;
                    let identify = i == 1 && v == 0;
                    let mut e = json!({
                        "event_id": format!("019ab0b4-0000-7000-8000-{n:012x}"),
                        "type": if identify { "identify" } else { "page" },
                        "name": if identify { "$identify" } else { "$pageview" },
                        "timestamp": chrono::DateTime::from_timestamp_millis(t).unwrap().to_rfc3339(),
                        "anonymous_id": anon, "session_id": format!("s-{anon}"), "seq": i + 1,
                        "page": {"url": format!("https://{site}.example/p{i}"), "path": format!("/p{i}")},
                        "props": {"n": i},
                    });
                    if i >= 1 && v == 0 {
                        e["user_id"] = json!(user);
                    }
                    if identify {
                        e["traits"] = json!({"email": user, "plan": "pro"});
                    }
                    e
                })
                .collect();
            let req = test::TestRequest::post()
                .uri("/v1/batch")
                .insert_header(("user-agent", FIREFOX))
                .set_payload(json!({"key": site, "events": events}).to_string())
                .to_request();
            let r = test::call_service(app, req).await;
            assert_eq!(r.status(), 200);
            let body: Value = serde_json::from_slice(&test::read_body(r).await).unwrap();
            assert_eq!(body["accepted"], 3, "{body}");
        }
    }
}

/// Creates a token as the admin; its secret and ID.
async fn create_token<S>(app: &S, name: &str, scope: &str, sites: &[&str]) -> (String, String)
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
{
    let (status, _, body) = call(
        app,
        "post",
        "/api/v1/tokens",
        Some("t"),
        Some(json!({"name": name, "scope": scope, "sites": sites})),
        next_peer(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["token"].as_str().unwrap().to_owned(),
        body["id"].as_str().unwrap().to_owned(),
    )
}

/// A body each POST or PATCH route takes; a new one fails the matrix until it has one here.
fn body_for(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("post", "/api/v1/reports") => {
            Some(json!({"name": "r", "view": "insights", "query": "metric=users"}))
        }
        ("patch", "/api/v1/reports/{id}") => Some(json!({"name": "renamed"})),
        ("post", "/api/v1/tokens") => Some(json!({"name": "n", "scope": "read", "sites": ["a"]})),
        ("post", "/api/v1/session") => Some(json!({"token": "t"})),
        _ => None,
    }
}

#[actix_web::test]
async fn every_route_answers_every_role_as_its_access_says() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let app = app!(state);
    send_visits(&app).await;
    let (read_a, _) = create_token(&app, "read a", "read", &["a"]).await;
    let (read_b, _) = create_token(&app, "read b", "read", &["b"]).await;
    let (api_admin, _) = create_token(&app, "automation", "admin", &[]).await;
    let (revoked, revoked_id) = create_token(&app, "gone", "read", &["a", "b"]).await;
    let (s, _, _) = call(
        &app,
        "delete",
        &format!("/api/v1/tokens/{revoked_id}"),
        Some("t"),
        None,
        next_peer(),
    )
    .await;
    assert_eq!(s, 204);
    let wrong = format!("ff_{}", "0".repeat(64));

    #[derive(PartialEq)]
    enum Role {
        Admin,
        Reader,
        Nobody,
    }
    let roles: [(&str, Option<&str>, Role); 7] = [
        ("admin token", Some("t"), Role::Admin),
        (
            "admin-scope API token",
            Some(api_admin.as_str()),
            Role::Admin,
        ),
        ("read token for a", Some(read_a.as_str()), Role::Reader),
        ("read token for b", Some(read_b.as_str()), Role::Reader),
        ("no token", None, Role::Nobody),
        ("wrong token", Some(wrong.as_str()), Role::Nobody),
        ("revoked token", Some(revoked.as_str()), Role::Nobody),
    ];
    let mut checked = 0;
    for route in ROUTES {
        let uri = route
            .path
            .replace("{id}", "no-such-id")
            .replace("{token}", "no-such-token");
        for (role, token, kind) in &roles {
            let (status, headers, body) = call(
                &app,
                route.method,
                &uri,
                *token,
                body_for(route.method, route.path),
                next_peer(),
            )
            .await;
            let what = format!("{} {} by {role}: {status} {body}", route.method, route.path);
            let cache = headers.get("cache-control");
            assert_eq!(cache.as_deref(), Some("no-store"), "{what}");
            assert!(status < 500, "{what}");
            if status >= 400 {
                assert!(body["error"]["code"].is_string(), "{what}");
            }
            let code = body["error"]["code"].as_str().unwrap_or_default();
            match (route.access, kind) {
                (Access::Public, _) => assert!(![401, 403].contains(&status), "{what}"),
                (_, Role::Nobody) => assert_eq!((status, code), (401, "unauthorized"), "{what}"),
                (_, Role::Admin) | (Access::Read, Role::Reader) => {
                    assert!(![401, 403].contains(&status), "{what}")
                }
                (Access::Admin, Role::Reader) => {
                    assert_eq!((status, code), (403, "forbidden"), "{what}")
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, ROUTES.len() * roles.len());
}

#[actix_web::test]
async fn the_openapi_document_and_the_route_table_name_the_same_routes() {
    let doc: Value = serde_json::from_str(app::OPENAPI).unwrap();
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .filter(|(_, path)| path != "/v1/batch")
        .collect();
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    assert_eq!(documented, routed);
    // Every route behind a token documents the 403 of a read token.
    for r in ROUTES.iter().filter(|r| r.access != Access::Public) {
        assert!(
            doc["paths"][r.path][r.method]["responses"]["403"].is_object(),
            "{} {} does not document 403",
            r.method,
            r.path
        );
    }
}

#[actix_web::test]
async fn a_read_token_sees_its_sites_only() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let app = app!(state);
    send_visits(&app).await;
    let (read_a, _) = create_token(&app, "read a", "read", &["a"]).await;
    let now = chrono::Utc::now().timestamp_millis();
    let range = format!(
        "from={}&to={}",
        footfall_collector::store::rfc3339(now - 2 * DAY).replace('+', "%2B"),
        footfall_collector::store::rfc3339(now + DAY).replace('+', "%2B")
    );
    let get = |uri: String, token: &'static str| {
        let app = &app;
        async move { call(app, "get", &uri, Some(token), None, next_peer()).await }
    };
    let token_a: &'static str = Box::leak(read_a.into_boxed_str());
    for q in [
        "/api/v1/insights?metric=users",
        "/api/v1/insights?metric=events&by=site",
        "/api/v1/insights?metric=sessions&by=user.plan",
        "/api/v1/users?limit=100",
        "/api/v1/sessions/stats?split=entry_path",
        "/api/v1/events?",
        "/api/v1/properties?",
        "/api/v1/properties/values?field=path",
        "/api/v1/users/ann@a.example?",
        "/api/v1/sessions/s-a-1?",
    ] {
        // One person or session takes no range.
        let one = q.contains("/users/") || q.contains("/sessions/s-");
        let range = if one { "bots=exclude" } else { range.as_str() };
        let (s, _, by_token) = get(format!("{q}&{range}"), token_a).await;
        let (_, _, by_admin) = get(format!("{q}&{range}&site=a"), "t").await;
        let (_, _, everyone) = get(format!("{q}&{range}"), "t").await;
        assert_eq!(s, 200, "{q}: {by_token}");
        assert_eq!(
            by_token, by_admin,
            "{q}: the read token's answer is site a's"
        );
        assert_eq!(
            get(format!("{q}&{range}&site=a"), token_a).await.2,
            by_admin,
            "{q} naming its site"
        );
        if !one {
            assert_ne!(by_token, everyone, "{q}: both sites differ from a alone");
        }
        for other in ["site=b", "site=a,b", "site=a&site=b"] {
            let (s, _, v) = get(format!("{q}&{range}&{other}"), token_a).await;
            assert_eq!(
                (s, v["error"]["code"].as_str()),
                (403, Some("forbidden")),
                "{q}&{other}"
            );
        }
    }
    // b's people and sessions are not found through a's token.
    for uri in ["/api/v1/users/bob@b.example", "/api/v1/sessions/s-b-0"] {
        assert_eq!(get(uri.into(), token_a).await.0, 404, "{uri}");
        assert_eq!(get(uri.into(), "t").await.0, 200, "{uri}");
    }
    let (_, _, users) = get(format!("/api/v1/users?{range}"), token_a).await;
    assert!(!users.to_string().contains("bob@b.example"));

    // Reports: one on b is neither listed nor opened by a's token; one on no site opens with
    // a's numbers.
    let mut ids = Vec::new();
    for query in ["metric=users&site=b", "metric=users&last=7d"] {
        let (s, _, r) = call(
            &app,
            "post",
            "/api/v1/reports",
            Some("t"),
            Some(json!({"name": query, "view": "insights", "query": query})),
            next_peer(),
        )
        .await;
        assert_eq!(s, 201, "{r}");
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    let (_, _, listed) = get("/api/v1/reports".into(), token_a).await;
    let listed: Vec<&str> = listed["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[1].as_str()]);
    assert_eq!(
        get(format!("/api/v1/reports/{}", ids[0]), token_a).await.0,
        403
    );
    let (s, _, opened) = get(format!("/api/v1/reports/{}", ids[1]), token_a).await;
    assert_eq!(s, 200);
    assert_eq!(opened["result"]["sites"], json!(["a"]));
    let (_, _, admin_a) = get("/api/v1/insights?metric=users&last=7d&site=a".into(), "t").await;
    assert_eq!(opened["result"]["total"], admin_a["total"]);
}

#[actix_web::test]
async fn tokens_are_shown_once_listed_without_secrets_used_and_revoked_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let app = app!(state);
    let peer = next_peer();
    let (secret, id) = create_token(&app, "ci", "read", &["a", "b", "a"]).await;
    assert!(secret.starts_with("ff_") && secret.len() == 67, "{secret}");

    let (s, _, listed) = call(&app, "get", "/api/v1/tokens", Some("t"), None, peer).await;
    assert_eq!(s, 200);
    let t = &listed["tokens"][0];
    assert_eq!(
        (
            &t["id"],
            &t["name"],
            &t["scope"],
            &t["sites"],
            &t["last_used"]
        ),
        (
            &json!(id),
            &json!("ci"),
            &json!("read"),
            &json!(["a", "b"]),
            &Value::Null
        )
    );
    assert!(t["created_at"].is_string());
    assert!(t.get("token").is_none() && t.get("hash").is_none());
    assert!(!listed.to_string().contains(&secret[3..]));
    for file in ["footfall.sqlite", "footfall.sqlite-wal"] {
        let stored = std::fs::read(dir.path().join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&stored);
        assert!(
            !text.contains(&secret[3..]),
            "the secret is not stored in {file}"
        );
    }

    // Used: listed with the time of use (recorded in the background).
    let (s, _, _) = call(
        &app,
        "get",
        "/api/v1/events",
        Some(secret.as_str()),
        None,
        peer,
    )
    .await;
    assert_eq!(s, 200);
    let mut used = Value::Null;
    for _ in 0..100 {
        let (_, _, l) = call(&app, "get", "/api/v1/tokens", Some("t"), None, peer).await;
        used = l["tokens"][0]["last_used"].clone();
        if used.is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(used.is_string(), "last_used is listed after a use");

    // A read token manages no tokens, not even itself.
    for (method, uri, body) in [
        ("get", "/api/v1/tokens".to_owned(), None),
        ("delete", format!("/api/v1/tokens/{id}"), None),
        (
            "post",
            "/api/v1/tokens".to_owned(),
            Some(json!({"name": "x", "scope": "admin"})),
        ),
    ] {
        let (s, _, v) = call(&app, method, &uri, Some(secret.as_str()), body, peer).await;
        assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")));
    }

    // Revoked: refused from the next request on; a second revoke finds nothing.
    let (s, _, _) = call(
        &app,
        "delete",
        &format!("/api/v1/tokens/{id}"),
        Some("t"),
        None,
        peer,
    )
    .await;
    assert_eq!(s, 204);
    let (s, _, v) = call(
        &app,
        "get",
        "/api/v1/events",
        Some(secret.as_str()),
        None,
        peer,
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (s, _, _) = call(
        &app,
        "delete",
        &format!("/api/v1/tokens/{id}"),
        Some("t"),
        None,
        peer,
    )
    .await;
    assert_eq!(s, 404);
    let (_, _, listed) = call(&app, "get", "/api/v1/tokens", Some("t"), None, peer).await;
    assert_eq!(listed["tokens"], json!([]));

    // What a token may be.
    for body in [
        json!({"name": "x", "scope": "write", "sites": ["a"]}),
        json!({"name": "x", "scope": "read", "sites": []}),
        json!({"name": "x", "scope": "read", "sites": ["zz"]}),
        json!({"name": " ", "scope": "read", "sites": ["a"]}),
        json!({"name": "x", "scope": "read", "sites": ["a"], "extra": 1}),
    ] {
        let (s, _, v) = call(
            &app,
            "post",
            "/api/v1/tokens",
            Some("t"),
            Some(body.clone()),
            peer,
        )
        .await;
        assert_eq!(s, 400, "{body}: {v}");
    }
}

#[actix_web::test]
async fn repeated_wrong_tokens_from_one_address_are_429() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let app = app!(state);
    let (peer, other) = (next_peer(), next_peer());
    let n = footfall_collector::access::FAILURES_PER_MINUTE;
    for i in 0..n {
        let (s, _, _) = call(
            &app,
            "get",
            "/api/v1/events",
            Some(format!("guess{i}").as_str()),
            None,
            peer,
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, retry, v) = call(&app, "get", "/api/v1/events", Some("guess"), None, peer).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (429, Some("rate-limited"))
    );
    let secs: u64 = retry
        .get("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    // Even the right token waits from that address: guessing must not go on.
    assert_eq!(
        call(&app, "get", "/api/v1/events", Some("t"), None, peer)
            .await
            .0,
        429
    );
    assert_eq!(
        call(&app, "get", "/api/v1/events", Some("t"), None, other)
            .await
            .0,
        200
    );
}

#[actix_web::test]
async fn a_shared_link_shows_aggregates_and_no_person() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let app = app!(state);
    send_visits(&app).await;
    let peer = next_peer();
    let share = |name: &'static str, view: &'static str, query: &'static str| {
        let app = &app;
        async move {
            let (s, _, r) = call(
                app,
                "post",
                "/api/v1/reports",
                Some("t"),
                Some(json!({"name": name, "view": view, "query": query, "shared": true})),
                peer,
            )
            .await;
            assert_eq!(s, 201, "{r}");
            let url = r["share_url"].as_str().unwrap().to_owned();
            url.trim_start_matches("/#shared/").to_owned()
        }
    };
    let insights = share("i", "insights", "metric=users&last=7d").await;
    let users = share("u", "users", "last=7d").await;
    let by_person = share("p", "insights", "metric=events&last=7d&by=user.email").await;
    let (s, _, v) = call(
        &app,
        "get",
        &format!("/api/v1/shared/{insights}"),
        None,
        None,
        peer,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["total"], json!(5));
    assert!(v["result"].get("sample_users").is_none(), "{v}");
    assert!(!v.to_string().contains("@"), "no person's ID or email: {v}");
    for token in [users, by_person] {
        let (s, _, v) = call(
            &app,
            "get",
            &format!("/api/v1/shared/{token}"),
            None,
            None,
            peer,
        )
        .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{v}"
        );
    }
}

#[actix_web::test]
async fn the_dashboard_allows_no_inline_script_and_no_framing() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let app = app!(state);
    for uri in ["/", "/dashboard/app.js"] {
        let r = test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(r.status(), 200, "{uri}");
        let header = |name: &str| {
            r.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let csp = header("content-security-policy");
        assert!(csp.contains("script-src 'self'"), "{uri}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{uri}: {csp}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{uri}");
    }
    // The page has no inline script for the policy to block.
    let r = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
    let page = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
    assert!(
        !page.contains("<script>") && !page.contains(" on"),
        "{page}"
    );
}

#[actix_web::test]
async fn the_dashboard_signs_in_with_an_http_only_cookie_that_writes_only_from_its_own_origin() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let app = app!(state);
    let peer = next_peer();
    let (reader, reader_id) = create_token(&app, "wall screen", "read", &["a"]).await;

    // Signing in answers who, and sets a cookie no script can read, sent to the API only.
    let sign_in = |token: &str| {
        test::TestRequest::post()
            .uri("/api/v1/session")
            .peer_addr(peer)
            .set_json(json!({ "token": token }))
            .to_request()
    };
    let r = test::call_service(&app, sign_in(&reader)).await;
    assert_eq!(r.status(), 200);
    let set = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/",
        "Max-Age=2592000",
    ] {
        assert!(set.contains(part), "{part} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP here: {set}");
    assert!(
        !set.contains(&reader),
        "the cookie does not hold the secret as text: {set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let body: Value = test::read_body_json(r).await;
    assert_eq!(
        body,
        json!({"caller": format!("wall screen (token {reader_id})"), "scope": "read", "sites": ["a"]})
    );

    // The cookie reads as the token would, limited to the token's sites.
    let with_cookie = |req: test::TestRequest| {
        req.peer_addr(peer)
            .insert_header(("cookie", cookie.clone()))
    };
    let get = |uri: &str| with_cookie(test::TestRequest::get().uri(uri)).to_request();
    assert_eq!(
        test::call_service(&app, get("/api/v1/session"))
            .await
            .status(),
        200
    );
    assert_eq!(
        test::call_service(&app, get("/api/v1/insights?metric=users&last=7d"))
            .await
            .status(),
        200
    );
    assert_eq!(
        test::call_service(&app, get("/api/v1/insights?metric=users&last=7d&site=b"))
            .await
            .status(),
        403
    );

    // Over HTTPS (as the proxy says) the cookie is Secure.
    let r = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/api/v1/session")
            .peer_addr(peer)
            .insert_header(("x-forwarded-proto", "https"))
            .set_json(json!({ "token": "t" }))
            .to_request(),
    )
    .await;
    let admin_set = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(admin_set.contains("Secure"), "{admin_set}");
    let admin_cookie = admin_set.split(';').next().unwrap().to_owned();

    // A write carried by the cookie goes through from the dashboard's own origin only.
    let save = |site: Option<&str>, origin: Option<&str>| {
        let mut req = test::TestRequest::post()
            .uri("/api/v1/reports")
            .peer_addr(peer)
            .insert_header(("host", "collector.test"))
            .insert_header(("cookie", admin_cookie.clone()))
            .set_json(json!({"name": "r", "view": "insights", "query": "metric=users"}));
        if let Some(s) = site {
            req = req.insert_header(("sec-fetch-site", s));
        }
        if let Some(o) = origin {
            req = req.insert_header(("origin", o));
        }
        req.to_request()
    };
    for (site, origin, status) in [
        (Some("same-origin"), Some("https://collector.test"), 201),
        (Some("same-site"), Some("https://blog.collector.test"), 403),
        (Some("cross-site"), Some("https://evil.example"), 403),
        (None, Some("https://evil.example"), 403),
        (None, Some("https://collector.test"), 201),
    ] {
        let got = test::call_service(&app, save(site, origin)).await.status();
        assert_eq!(got, status, "Sec-Fetch-Site {site:?}, Origin {origin:?}");
    }

    // Wrong tokens are refused and counted; a revoked token's cookie stops at once; signing out
    // clears the cookie; with nothing at all the session says "not signed in".
    let r = test::call_service(&app, sign_in("ff_wrong")).await;
    assert_eq!(r.status(), 401);
    test::call_service(
        &app,
        test::TestRequest::delete()
            .uri(&format!("/api/v1/tokens/{reader_id}"))
            .insert_header(("Authorization", "Bearer t"))
            .to_request(),
    )
    .await;
    let r = test::call_service(&app, get("/api/v1/session")).await;
    assert_eq!(r.status(), 401);
    let out = test::call_service(
        &app,
        test::TestRequest::delete()
            .uri("/api/v1/session")
            .to_request(),
    )
    .await;
    assert_eq!(out.status(), 204);
    let cleared = out.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cleared.starts_with("footfall_token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let r = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/api/v1/session")
            .peer_addr(peer)
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 401);
    let body: Value = test::read_body_json(r).await;
    assert_eq!(body["error"]["message"], "not signed in");
}

#[actix_web::test]
async fn a_shared_link_names_who_made_it_and_when_and_stops_at_its_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let app = app!(state);
    let peer = next_peer();
    let (_, _, dana) = call(
        &app,
        "post",
        "/api/v1/tokens",
        Some("t"),
        Some(json!({"name": "Dana's laptop", "scope": "admin"})),
        peer,
    )
    .await;
    let (dana_id, dana) = (
        dana["id"].as_str().unwrap(),
        dana["token"].as_str().unwrap(),
    );
    let now = || chrono::Utc::now().timestamp_millis();
    let ms = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{v}")))
            .unwrap()
            .timestamp_millis()
    };
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let report = |body: Value, token: &str| {
        let token = token.to_owned();
        let mut b = json!({"name": "Weekly", "view": "insights", "query": "metric=users"});
        b.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let app = &app;
        async move { call(app, "post", "/api/v1/reports", Some(&token), Some(b), peer).await }
    };
    let by_link = |r: &Value| {
        let link = r["share_url"].as_str().unwrap();
        format!("/api/v1/shared/{}", link.trim_start_matches("/#shared/"))
    };

    // Saved and shared by an admin-scope token: both name it; the link's time is now.
    let before = now();
    let (s, _, r) = report(json!({"shared": true}), dana).await;
    assert_eq!(s, 201, "{r}");
    let label = format!("Dana's laptop (token {dana_id})");
    assert_eq!(
        (&r["created_by"], &r["shared_by"]),
        (&json!(label), &json!(label))
    );
    assert!((before..=now()).contains(&ms(&r["shared_at"])), "{r}");
    assert_eq!(r["share_expires_at"], Value::Null, "no expiry unless asked");
    let (_, _, listed) = call(&app, "get", "/api/v1/reports", Some("t"), None, peer).await;
    assert_eq!(listed["reports"][0]["shared_by"], json!(label), "{listed}");

    // A link that expires: open before, `410 expired` after, open again once the expiry is
    // lifted; by token the report stays open throughout.
    let expires = now() + 1_500;
    let (s, _, r) = report(
        json!({"shared": true, "share_expires_at": iso(expires)}),
        "t",
    )
    .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["created_by"], json!("admin"));
    assert_eq!(ms(&r["share_expires_at"]), expires);
    assert_eq!(
        call(&app, "get", &by_link(&r), None, None, peer).await.0,
        200
    );
    std::thread::sleep(std::time::Duration::from_millis(
        (expires - now()).max(0) as u64 + 50,
    ));
    let (s, _, e) = call(&app, "get", &by_link(&r), None, None, peer).await;
    assert_eq!((s, &e["error"]["code"]), (410, &json!("expired")), "{e}");
    let id = r["id"].as_str().unwrap();
    let uri = format!("/api/v1/reports/{id}");
    assert_eq!(call(&app, "get", &uri, Some("t"), None, peer).await.0, 200);
    let (s, _, lifted) = call(
        &app,
        "patch",
        &uri,
        Some("t"),
        Some(json!({"share_expires_at": null})),
        peer,
    )
    .await;
    assert_eq!(
        (s, &lifted["share_expires_at"]),
        (200, &Value::Null),
        "{lifted}"
    );
    assert_eq!(lifted["share_url"], r["share_url"], "the same link");
    assert_eq!(
        call(&app, "get", &by_link(&r), None, None, peer).await.0,
        200
    );
    let later = now() + 86_400_000;
    let (s, _, set) = call(
        &app,
        "patch",
        &uri,
        Some("t"),
        Some(json!({"share_expires_at": iso(later)})),
        peer,
    )
    .await;
    assert_eq!((s, ms(&set["share_expires_at"])), (200, later));
    assert_eq!(
        call(&app, "get", &by_link(&r), None, None, peer).await.0,
        200
    );

    // Expiries in the past, of a report not shared, or unreadable are refused by name.
    for (body, status) in [
        (
            json!({"shared": true, "share_expires_at": "2020-01-01"}),
            400,
        ),
        (json!({"share_expires_at": iso(later)}), 400),
        (json!({"shared": true, "share_expires_at": "soon"}), 400),
    ] {
        let (s, _, e) = report(body.clone(), "t").await;
        assert_eq!(s, status, "{body}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains("share_expires_at"), "{e}");
    }
    let (s, _, _) = call(
        &app,
        "patch",
        &uri,
        Some("t"),
        Some(json!({"shared": false})),
        peer,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _, e) = call(
        &app,
        "patch",
        &uri,
        Some("t"),
        Some(json!({"share_expires_at": iso(later)})),
        peer,
    )
    .await;
    assert_eq!(s, 400, "not shared: {e}");
}

#[actix_web::test]
async fn a_report_is_renamed_and_its_link_withdrawn_and_made_anew() {
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path());
    let app = app!(state);
    let peer = next_peer();
    let (_, _, r) = call(
        &app,
        "post",
        "/api/v1/reports",
        Some("t"),
        Some(json!({"name": "a", "view": "insights", "query": "metric=users", "shared": true})),
        peer,
    )
    .await;
    let (id, link) = (r["id"].as_str().unwrap(), r["share_url"].as_str().unwrap());
    let shared = |url: &str| format!("/api/v1/shared/{}", url.trim_start_matches("/#shared/"));
    assert_eq!(
        call(&app, "get", &shared(link), None, None, peer).await.0,
        200
    );

    let uri = format!("/api/v1/reports/{id}");
    let change = |body: Value| call(&app, "patch", &uri, Some("t"), Some(body), peer);
    let (s, _, renamed) = change(json!({"name": " Weekly users "})).await;
    assert_eq!((s, &renamed["name"]), (200, &json!("Weekly users")));
    assert_eq!(renamed["share_url"], json!(link), "renaming keeps the link");
    let (_, _, withdrawn) = change(json!({"shared": false})).await;
    assert_eq!(withdrawn["shared"], json!(false));
    assert_eq!(
        call(&app, "get", &shared(link), None, None, peer).await.0,
        404
    );
    let (_, _, again) = change(json!({"shared": true})).await;
    let new_link = again["share_url"].as_str().unwrap();
    assert_ne!(new_link, link, "a new link, not the withdrawn one");
    assert_eq!(
        call(&app, "get", &shared(new_link), None, None, peer)
            .await
            .0,
        200
    );
    assert_eq!(
        call(&app, "get", &shared(link), None, None, peer).await.0,
        404
    );
    assert_eq!(change(json!({"name": ""})).await.0, 400);
    let (s, _, _) = call(
        &app,
        "patch",
        "/api/v1/reports/nope",
        Some("t"),
        Some(json!({})),
        peer,
    )
    .await;
    assert_eq!(s, 404);
}

#[actix_web::test]
async fn the_query_api_is_rate_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(Args {
        data_dir: Some(dir.path().into()),
        admin_token: Some("t".into()),
        rate_limit: Some(0),
        query_rate_limit: Some(60),
        ..Args::default()
    })
    .unwrap();
    let store = footfall_collector::store::open(&config).unwrap();
    let state = web::Data::new(AppState::new(config, store).unwrap());
    let app = app!(state);
    // 60 a minute with a burst of 20: the 21st call at once from one address waits.
    let (busy, quiet) = (next_peer(), next_peer());
    let mut answers = Vec::new();
    for _ in 0..25 {
        answers.push(call(&app, "get", "/api/v1/events", Some("t"), None, busy).await);
    }
    assert!(
        answers[..20].iter().all(|(s, _, _)| *s == 200),
        "the burst is answered"
    );
    let (status, retry, body) = &answers[24];
    assert_eq!(*status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate-limited");
    assert!(retry
        .get("retry-after")
        .and_then(|r| r.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));
    // Another address is not held back, and neither are shared links (no token, no limit).
    let (status, _, _) = call(&app, "get", "/api/v1/events", Some("t"), None, quiet).await;
    assert_eq!(status, 200);
}
