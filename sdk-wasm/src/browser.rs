//! The only module that touches `web_sys`: time, cookies, randomness, the page, and the calls
//! to the JavaScript host (`js-wrapper/src/host.js`: sending, and running work at the end of
//! the task). Everything here is a thin shim; decisions are made in the core.

use crate::options::Persistence;
use crate::platform::{Clock, Entropy, Storage};
use crate::tracker::OPT_OUT_KEY;
use footfall_wire::{Context, Page};
use js_sys::{Array, Object, Reflect};
use std::cell::RefCell;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::HtmlDocument;

/// The JavaScript host (`js-wrapper/src/host.js`), a global the wrapper sets before the wasm
/// runs. Only numbers and strings cross: what the host does with them, and its answers, come
/// back through the `_answered` and `_later` exports.
#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = footfall_host, js_name = post)]
    fn host_post(url: &str, body: &str);
    #[wasm_bindgen(js_namespace = footfall_host, js_name = later)]
    fn host_later(what: u32);
    #[wasm_bindgen(js_namespace = footfall_host, js_name = flushed)]
    fn host_flushed(count: u32);
    #[wasm_bindgen(js_namespace = footfall_host, js_name = timer)]
    fn host_timer(what: u32, ms: f64);
    #[wasm_bindgen(js_namespace = footfall_host, js_name = listen)]
    fn host_listen(history: bool);
    #[wasm_bindgen(js_namespace = footfall_host, js_name = lock)]
    fn host_lock(name: &str, hold: bool, id: u32) -> bool;
}

/// Work run through the `_later` export: at the end of the current task (a microtask), or
/// when a timer fires.
#[derive(Clone, Copy)]
pub enum Later {
    /// Write the outbox.
    Save = 0,
    /// Set the cookies written in this task.
    Cookies = 1,
    /// Start a drain of the outbox.
    Drain = 2,
    /// The flush interval passed.
    FlushTimer = 3,
    /// The backoff after a failed send passed.
    RetryTimer = 4,
}

/// Runs `what` after `ms` milliseconds (a `setTimeout`; never cancelled: what it starts checks
/// whether it is still due).
pub fn timer(what: Later, ms: i64) {
    host_timer(what as u32, ms.clamp(0, u32::MAX as i64) as f64);
}

/// Asks the host to call `_on` for each event of the page from now on: visibility, page hide
/// and show, online, user input, resize, and with `history`, History API navigations.
pub fn listen(history: bool) {
    host_listen(history);
}

pub fn later(what: Later) {
    host_later(what as u32);
}

/// Resolves the oldest `count` Promises of `flush()`.
pub fn flushed(count: u32) {
    host_flushed(count);
}

/// Concatenates without `[..].concat()`, whose generic join code costs a kilobyte of wasm.
pub fn cat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

thread_local! {
    /// `window` and `document`, found once: finding them asks JavaScript for the global and
    /// checks its type, a crossing each time.
    static GLOBALS: Option<(web_sys::Window, Option<HtmlDocument>)> = web_sys::window().map(|w| {
        let d = w.document().and_then(|d| d.dyn_into().ok());
        (w, d)
    });
}

pub fn window() -> Option<web_sys::Window> {
    GLOBALS.with(|g| g.as_ref().map(|(w, _)| w.clone()))
}

fn document() -> Option<HtmlDocument> {
    GLOBALS.with(|g| g.as_ref().and_then(|(_, d)| d.clone()))
}

/// Reads `o[key]`, `undefined` when absent or when `o` is not an object.
pub fn get(o: &JsValue, key: &str) -> JsValue {
    if !o.is_object() && !o.is_function() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `o[key]` as a string, empty when absent or not a string. Plain property reads go through
/// here rather than web-sys getters: each web-sys method is one more import and one more glue
/// function in footfall.js, while this one is shared.
fn text(o: &JsValue, key: &str) -> String {
    get(o, key).as_string().unwrap_or_default()
}

/// `location`, read by name (see [`text`]).
fn location() -> JsValue {
    window().map_or(JsValue::UNDEFINED, |w| get(&w, "location"))
}

/// One `console.warn`, prefixed so site owners know where it comes from.
pub fn warn(msg: &str) {
    web_sys::console::warn_1(&JsValue::from_str(&cat(&["footfall: ", msg])));
}

/// `Date.now()`.
pub struct BrowserClock;

impl Clock for BrowserClock {
    fn now_ms(&self) -> i64 {
        js_sys::Date::now() as i64
    }
}

/// `crypto.getRandomValues`, with `Math.random` when no crypto is available. Drawn 256 bytes
/// at a time: each call into the browser costs more than the bytes of several events.
pub struct BrowserEntropy;

thread_local! {
    static POOL: RefCell<([u8; 256], usize)> = const { RefCell::new(([0; 256], 256)) };
}

impl Entropy for BrowserEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        POOL.with(|p| {
            let Ok(mut p) = p.try_borrow_mut() else {
                return;
            };
            let (pool, used) = &mut *p;
            for b in buf {
                if *used >= pool.len() {
                    let done = window()
                        .and_then(|w| w.crypto().ok())
                        .is_some_and(|c| c.get_random_values_with_u8_array(pool).is_ok());
                    if !done {
                        for x in pool.iter_mut() {
                            *x = (js_sys::Math::random() * 256.0) as u8;
                        }
                    }
                    *used = 0;
                }
                // `get_mut`, not indexing: a bounds check would bring `core::fmt` into the wasm.
                if let Some(x) = pool.get_mut(*used) {
                    *b = *x;
                    // Never handed out twice.
                    *x = 0;
                }
                *used += 1;
            }
        });
    }
}

const YEAR_SECONDS: &str = "31536000";

/// First-party cookies: `ff_id` and friends, 365 days, `SameSite=Lax`, `Secure` on https.
pub struct CookieStorage {
    /// `; Domain=...` when the cookie goes on a parent domain.
    domain: String,
    secure: bool,
}

impl CookieStorage {
    /// Finds the widest domain that accepts a cookie (`auto`) or uses the one given.
    pub fn new(cookie_domain: Option<&str>) -> CookieStorage {
        let location = location();
        let secure = text(&location, "protocol") == "https:";
        let host = text(&location, "hostname");
        let mut store = CookieStorage {
            domain: String::new(),
            secure,
        };
        match cookie_domain {
            Some(d) if !d.is_empty() && d != "auto" => store.domain = cat(&["; Domain=", d]),
            _ => store.domain = widest_cookie_domain(&host, secure),
        }
        store
    }

    fn write(&self, key: &str, value: &str, max_age: &str) {
        // The SDK's own values (IDs, numbers, dots) need no encoding: no call into JavaScript.
        let value = if value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            value.to_owned()
        } else {
            String::from(js_sys::encode_uri_component(value))
        };
        let mut c = cat(&[
            key,
            "=",
            &value,
            "; Path=/; Max-Age=",
            max_age,
            "; SameSite=Lax",
            &self.domain,
        ]);
        if self.secure {
            c.push_str("; Secure");
        }
        JAR.with(|j| {
            let Ok(mut j) = j.try_borrow_mut() else {
                return;
            };
            j.pending.retain(|(k, _, _)| k != key);
            let value = (max_age != "0").then(|| value_of(&value));
            j.pending.push((key.into(), value, c));
        });
        end_of_task();
    }
}

fn value_of(encoded: &str) -> String {
    if !encoded.contains('%') {
        return encoded.to_owned();
    }
    js_sys::decode_uri_component(encoded).map_or_else(|_| String::new(), String::from)
}

/// `document.cookie` is slow: a read right after a write costs Chromium about a millisecond.
/// So within one task the cookies are read once and written once, at its end: every event of
/// a burst of `track` calls then costs microseconds. No other tab can run in between within
/// a task, so what other tabs see is the same.
#[derive(Default)]
struct Jar {
    /// `document.cookie` as read in this task.
    read: Option<String>,
    /// Writes of this task: name, value (`None`: removed) and the cookie to set.
    pending: Vec<(String, Option<String>, String)>,
    scheduled: bool,
}

thread_local! {
    static JAR: RefCell<Jar> = RefCell::default();
}

fn end_of_task() {
    let scheduled = JAR.with(|j| {
        let mut j = j.try_borrow_mut().ok()?;
        Some(std::mem::replace(&mut j.scheduled, true))
    });
    if scheduled != Some(false) {
        return;
    }
    later(Later::Cookies);
}

/// Sets the cookies written in this task and forgets what was read.
pub fn write_cookies() {
    let Some(jar) = JAR.with(|j| Some(std::mem::take(&mut *j.try_borrow_mut().ok()?))) else {
        return;
    };
    if let Some(d) = document() {
        for (_, _, cookie) in jar.pending {
            let _ = d.set_cookie(&cookie);
        }
    }
}

fn read_cookie(key: &str) -> Option<String> {
    let cached = JAR.with(|j| {
        let mut j = j.try_borrow_mut().ok()?;
        if let Some((_, v, _)) = j.pending.iter().find(|(k, _, _)| k == key) {
            return Some(v.clone());
        }
        if j.read.is_none() {
            j.read = document().and_then(|d| get(&d, "cookie").as_string());
        }
        None
    });
    if let Some(v) = cached {
        return v;
    }
    end_of_task();
    JAR.with(|j| find_cookie(j.try_borrow().ok()?.read.as_deref()?, key))
}

fn find_cookie(all: &str, key: &str) -> Option<String> {
    all.split([';']).find_map(|kv| {
        let v = kv.trim_start().strip_prefix(key)?.strip_prefix('=')?;
        Some(value_of(v))
    })
}

/// Reads one cookie from the document itself, past the task's cache (for probes).
fn read_cookie_now(key: &str) -> Option<String> {
    let d = document()?;
    find_cookie(&get(&d, "cookie").as_string()?, key)
}

/// Tries `example.com` before `a.example.com` (never the bare suffix) and keeps the first
/// domain on which a test cookie reads back. Host-only (empty) for IPs and single labels.
fn widest_cookie_domain(host: &str, secure: bool) -> String {
    let is_ip = host.bytes().all(|b| b.is_ascii_digit() || b == b'.') || host.contains(':');
    if is_ip || !host.contains('.') {
        return String::new();
    }
    let Some(doc) = document() else {
        return String::new();
    };
    let tail = if secure {
        "; SameSite=Lax; Secure"
    } else {
        "; SameSite=Lax"
    };
    // Each suffix of the host at a dot, shortest first, skipping the top-level label alone.
    let starts = host.rmatch_indices(['.']).skip(1).map(|(i, _)| i + 1);
    for start in starts.chain([0]) {
        let Some(suffix) = host.get(start..) else {
            continue;
        };
        let attr = cat(&["; Domain=", suffix]);
        let _ = doc.set_cookie(&cat(&["ff_probe=1; Path=/", &attr, tail]));
        if read_cookie_now("ff_probe").is_some() {
            let _ = doc.set_cookie(&cat(&["ff_probe=; Path=/; Max-Age=0", &attr, tail]));
            return attr;
        }
    }
    String::new()
}

impl Storage for CookieStorage {
    fn get(&self, key: &str) -> Option<String> {
        read_cookie(key)
    }
    fn set(&mut self, key: &str, value: &str) {
        self.write(key, value, YEAR_SECONDS);
    }
    fn remove(&mut self, key: &str) {
        self.write(key, "", "0");
    }
}

impl CookieStorage {
    /// Whether cookies can be written and read back here (they may be blocked).
    pub fn works(&mut self) -> bool {
        let Some(d) = document() else { return false };
        let _ = d.set_cookie("ff_probe=1; Path=/; SameSite=Lax");
        let ok = read_cookie_now("ff_probe").is_some();
        let _ = d.set_cookie("ff_probe=; Path=/; Max-Age=0; SameSite=Lax");
        ok
    }
}

thread_local! {
    /// localStorage and sessionStorage once probed (`None`: not yet).
    static WEB_STORAGE: RefCell<[Option<Option<web_sys::Storage>>; 2]> = const { RefCell::new([None, None]) };
}

/// `localStorage` or `sessionStorage`, when the browser lets the page use it (probed once a
/// page: each probe is a write and a removal).
pub fn web_storage(local: bool) -> Option<web_sys::Storage> {
    let i = usize::from(local);
    let known = WEB_STORAGE.with(|c| c.try_borrow().ok()?.get(i).cloned().flatten());
    if let Some(known) = known {
        return known;
    }
    let s = probe_web_storage(local);
    WEB_STORAGE.with(|c| {
        if let Some(slot) = c
            .try_borrow_mut()
            .ok()
            .as_deref_mut()
            .and_then(|c| c.get_mut(i))
        {
            *slot = Some(s.clone());
        }
    });
    s
}

fn probe_web_storage(local: bool) -> Option<web_sys::Storage> {
    let w = window()?;
    let s = if local {
        w.local_storage()
    } else {
        w.session_storage()
    };
    let s = s.ok()??;
    // Some browsers hand out a storage that throws on every write (full, or private mode).
    s.set_item("ff_probe", "1").ok()?;
    let _ = s.remove_item("ff_probe");
    Some(s)
}

/// Where the SDK keeps its state, per the `persistence` option.
pub enum BrowserStorage {
    Cookie(CookieStorage),
    Web(web_sys::Storage),
    /// Nothing survives the page, but the opt-out (kept in localStorage when it can be).
    Memory(Vec<(String, String)>),
}

impl Storage for BrowserStorage {
    fn get(&self, key: &str) -> Option<String> {
        match self {
            BrowserStorage::Cookie(c) => c.get(key),
            BrowserStorage::Web(s) => s.get_item(key).ok().flatten(),
            BrowserStorage::Memory(_) if key == OPT_OUT_KEY => {
                web_storage(true)?.get_item(key).ok()?
            }
            BrowserStorage::Memory(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()),
        }
    }
    fn set(&mut self, key: &str, value: &str) {
        match self {
            BrowserStorage::Cookie(c) => c.set(key, value),
            BrowserStorage::Web(s) => {
                let _ = s.set_item(key, value);
            }
            BrowserStorage::Memory(_) if key == OPT_OUT_KEY => {
                if let Some(s) = web_storage(true) {
                    let _ = s.set_item(key, value);
                }
            }
            BrowserStorage::Memory(m) => {
                m.retain(|(k, _)| k != key);
                m.push((key.into(), value.into()));
            }
        }
    }
    fn remove(&mut self, key: &str) {
        match self {
            BrowserStorage::Cookie(c) => c.remove(key),
            BrowserStorage::Web(s) => {
                let _ = s.remove_item(key);
            }
            BrowserStorage::Memory(_) if key == OPT_OUT_KEY => {
                if let Some(s) = web_storage(true) {
                    let _ = s.remove_item(key);
                }
            }
            BrowserStorage::Memory(m) => m.retain(|(k, _)| k != key),
        }
    }
}

fn memory() -> BrowserStorage {
    BrowserStorage::Memory(Default::default())
}

/// The storage every tab sees: cookies (localStorage when they are blocked), localStorage
/// (memory when it is blocked), or memory.
pub fn shared_storage(persistence: Persistence, cookie_domain: Option<&str>) -> BrowserStorage {
    if persistence == Persistence::Cookie {
        let mut c = CookieStorage::new(cookie_domain);
        if c.works() {
            return BrowserStorage::Cookie(c);
        }
    }
    match persistence {
        Persistence::Memory => memory(),
        _ => web_storage(true).map_or_else(memory, BrowserStorage::Web),
    }
}

/// This tab's own storage (sessionStorage), memory in `memory` persistence.
pub fn tab_storage(persistence: Persistence) -> BrowserStorage {
    match persistence {
        Persistence::Memory => memory(),
        _ => web_storage(false).map_or_else(memory, BrowserStorage::Web),
    }
}

/// `navigator.doNotTrack == "1"` or `navigator.globalPrivacyControl`.
pub fn do_not_track() -> bool {
    let Some(n) = window().map(|w| w.navigator()) else {
        return false;
    };
    // Read by name: `doNotTrack` is null when unset, which web-sys' String binding rejects.
    get(&n, "doNotTrack").as_string().as_deref() == Some("1")
        || get(&n, "globalPrivacyControl").as_bool() == Some(true)
}

/// The last page read, and what reading it again needs: `location`, `document` and the names
/// `href` and `title` as JavaScript strings (made once: each `Reflect::get` by a Rust `&str`
/// would decode the name into a new JavaScript string).
struct PageCache {
    page: Page,
    location: JsValue,
    document: JsValue,
    href: JsValue,
    title: JsValue,
}

thread_local! {
    static PAGE: RefCell<Option<PageCache>> = const { RefCell::new(None) };
}

/// The page an event happens on. Costs two reads from JavaScript (the URL, the title) when
/// the URL did not change since the last call: the path and referrer are kept while it stays.
pub fn page() -> Page {
    PAGE.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return Page::default();
        };
        let c = cache.get_or_insert_with(|| PageCache {
            page: Page::default(),
            location: location(),
            document: document().map_or(JsValue::UNDEFINED, Into::into),
            href: "href".into(),
            title: "title".into(),
        });
        let read = |o: &JsValue, k: &JsValue| {
            Reflect::get(o, k)
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default()
        };
        let href = read(&c.location, &c.href);
        let p = &mut c.page;
        if p.url != href || p.url.is_empty() {
            p.path = text(&c.location, "pathname");
            if p.url.is_empty() {
                p.referrer = text(&c.document, "referrer");
            }
            p.url = href;
        }
        p.title = read(&c.document, &c.title);
        p.clone()
    })
}

/// `o[w]` and `o[h]` as `"1280x720"` (whole pixels, 0 when unknown).
fn dims(o: &JsValue, w: &str, h: &str) -> String {
    let px = |k| get(o, k).as_f64().unwrap_or(0.0) as i32;
    let mut s = String::new();
    footfall_wire::json::write_u64(&mut s, px(w).max(0) as u64);
    s.push('x');
    footfall_wire::json::write_u64(&mut s, px(h).max(0) as u64);
    s
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Screen, viewport, language, time zone and SDK version, read once; the viewport again after
/// each `resize`.
pub fn context() -> Context {
    CONTEXT
        .with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            let c = c.get_or_insert_with(|| {
                let mut c = fixed_context();
                c.viewport = viewport();
                c
            });
            Some(c.clone())
        })
        .unwrap_or_else(fixed_context)
}

/// After a `resize`: the viewport of later events.
pub fn resized() {
    CONTEXT.with(|c| {
        if let Some(c) = c
            .try_borrow_mut()
            .ok()
            .as_deref_mut()
            .and_then(Option::as_mut)
        {
            c.viewport = viewport();
        }
    })
}

fn viewport() -> String {
    window()
        .map(|w| dims(&w, "innerWidth", "innerHeight"))
        .unwrap_or_default()
}

fn fixed_context() -> Context {
    let mut c = Context {
        sdk: crate::SDK_VERSION.into(),
        ..Context::default()
    };
    let Some(w) = window() else { return c };
    let screen = get(&w, "screen");
    if screen.is_object() {
        c.screen = dims(&screen, "width", "height");
    }
    c.language = text(&get(&w, "navigator"), "language");
    let options =
        js_sys::Intl::DateTimeFormat::new(&Array::new(), &Object::new()).resolved_options();
    c.timezone = get(&options, "timeZone").as_string().unwrap_or_default();
    c
}

/// `performance.timeOrigin`: when the page's navigation started, ms since the epoch.
pub fn page_load_ms() -> Option<i64> {
    let w = window()?;
    let performance = get(&w, "performance");
    let t = get(&performance, "timeOrigin").as_f64()?;
    (t > 0.0).then_some(t as i64)
}

/// `location.origin`, the default endpoint when the script tag gave none.
pub fn origin() -> String {
    text(&location(), "origin")
}

/// POSTs `body` as `text/plain` (no CORS preflight); the answer comes back through the
/// `_answered` export.
pub fn post(url: &str, body: &str) {
    host_post(url, body);
}

/// `navigator.onLine`.
pub fn online() -> bool {
    window().is_none_or(|w| get(&w.navigator(), "onLine").as_bool() == Some(true))
}

/// Asks the Web Locks API (through the host) for lock `name` if it is free; the host calls the
/// `_locked` export with `id` while it is held, or at once when it is not free. With `hold`, a
/// granted lock is kept for the life of the page (the browser frees it when the page goes,
/// even by a crash). False, with no call to come, when there are no Web Locks.
pub fn lock(name: &str, hold: bool, id: u32) -> bool {
    host_lock(name, hold, id)
}

/// The keys of localStorage that start with `prefix`.
pub fn local_keys(prefix: &str) -> Vec<String> {
    let Some(s) = web_storage(true) else {
        return Vec::new();
    };
    (0..s.length().unwrap_or(0))
        .filter_map(|i| s.key(i).ok().flatten())
        .filter(|k| k.starts_with(prefix))
        .collect()
}

/// `navigator.sendBeacon`: true when the browser queued it.
pub fn beacon(url: &str, body: &str) -> bool {
    window()
        .and_then(|w| w.navigator().send_beacon_with_opt_str(url, Some(body)).ok())
        .unwrap_or(false)
}

/// Whether the page is hidden now.
pub fn is_hidden() -> bool {
    // Read by name: web-sys' `VisibilityState` enum costs a conversion in Rust and in the glue.
    document().is_some_and(|d| get(&d, "visibilityState").as_string().as_deref() == Some("hidden"))
}

/// `JSON.stringify` of a plain object, `None` (with the reason) for anything else.
pub fn stringify_object(v: &JsValue) -> Result<Option<String>, &'static str> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    if !v.is_object() || Array::is_array(v) {
        return Err("properties must be a plain object; ignored them");
    }
    match js_sys::JSON::stringify(v) {
        Ok(s) => Ok(s.as_string()),
        Err(_) => Err("properties could not be serialised (a cycle or a BigInt?); ignored them"),
    }
}
