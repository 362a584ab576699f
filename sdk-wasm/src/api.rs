//! The JavaScript API of product.md §1, as `#[wasm_bindgen]` exports. Arguments arrive as
//! `JsValue` so that no call can throw on a wrong type: bad input is dropped with one
//! `console.warn` and the SDK keeps working.

use crate::browser::{self, BrowserClock, BrowserEntropy, BrowserStorage};
use crate::engagement::Engagement;
use crate::options::{Options, Persistence, SessionScope};
use crate::outbox::{self, Outbox};
use crate::platform::{uuid_v4, Clock, Entropy, Storage};
use crate::session;
use crate::tracker::{Occurrence, Tracker, MAX_SEND_BYTES};
use footfall_wire::{EventType, Page, RawJson, DEFAULT_MAX_EVENT_BYTES};
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

type BrowserTracker = Tracker<BrowserClock, BrowserStorage, BrowserEntropy>;

struct Sdk {
    tracker: BrowserTracker,
    url: String,
    /// The flush interval's timer is set.
    flush_timer: bool,
    sending: bool,
    /// Events waiting for the collector's answer, kept in localStorage.
    outbox: Outbox,
    /// IDs of events sent by beacon from this page: not sent again by it (the next page
    /// load sends them again, as a beacon's answer is never known).
    beaconed: Vec<String>,
    /// Sends that failed in a row, and when the next may go.
    failures: u32,
    retry_at: i64,
    /// A 429's `Retry-After`: not even `flush()` sends before it.
    not_before: i64,
    /// The chunk of the send in flight, and when it left.
    in_flight: Vec<String>,
    sent_at: i64,
    /// The drain running sends even while backing off (a `flush()`).
    drain_now: bool,
    /// `flush()` calls answered when the drain running ends, and those that wait for it to end
    /// and then drain again (the send in flight carries only part of their queue).
    flushes_now: u32,
    flushes_next: u32,
    /// Web Locks asked for and not yet answered (see [`locked`]), and the last ID given.
    locks: Vec<(u32, LockFor)>,
    lock_id: u32,
    /// Sends refused at once while online, in a row; at `BLOCKED_AFTER` the endpoint counts
    /// as blocked (an ad blocker) and this page stops sending.
    instant_failures: u32,
    blocked: bool,
    save_scheduled: bool,
    /// A drain is spawned and has not started yet.
    drain_queued: bool,
    /// When [`adopt_orphans`] last looked.
    orphans_checked: i64,
    /// The outbox-full warning was given (once a page).
    full_warned: bool,
    /// This tab's ID in `"tab"` scope (registered while the page is shown).
    tab_id: Option<String>,
    /// The properties of `register`, merged into every event's props.
    registered: js_sys::Object,
    /// The page of the last page view, until it is left.
    shown: Option<Page>,
    /// The page the next event happened on, when it is not this one (see [`replay_page`]).
    replayed_page: Option<Page>,
    engagement: Engagement,
}

thread_local! {
    static SDK: RefCell<Option<Sdk>> = const { RefCell::new(None) };
    /// When set, the next event happened at this time (a call queued before the SDK loaded).
    static REPLAY_AT: Cell<Option<i64>> = const { Cell::new(None) };
}

fn with_sdk<R>(f: impl FnOnce(&mut Sdk) -> R) -> Option<R> {
    SDK.with(|s| s.try_borrow_mut().ok()?.as_mut().map(f))
}

/// A whole number from a number or a numeric string (`data-` attributes are strings). Integer
/// parsing only: Rust's float parser would add kilobytes to the wasm.
fn num(v: &JsValue) -> Option<i64> {
    match v.as_f64() {
        Some(n) if n.is_finite() => Some(n as i64),
        Some(_) => None,
        None => footfall_wire::json::read_i64(v.as_string()?.trim()),
    }
}

fn flag(v: &JsValue) -> Option<bool> {
    v.as_bool().or_else(|| match v.as_string()?.as_str() {
        "true" | "" => Some(true),
        "false" => Some(false),
        _ => None,
    })
}

fn read_options(o: &JsValue) -> Options {
    let d = Options::default();
    let s = |k: &str| browser::get(o, k).as_string();
    let n = |k: &str, default: i64| num(&browser::get(o, k)).unwrap_or(default);
    let b = |k: &str, default: bool| flag(&browser::get(o, k)).unwrap_or(default);
    Options {
        key: s("key").unwrap_or_default(),
        endpoint: s("endpoint")
            .filter(|e| !e.is_empty())
            .unwrap_or_else(browser::origin),
        session_timeout_ms: n("sessionTimeout", d.session_timeout_ms),
        max_session_duration_ms: n("maxSessionDuration", d.max_session_duration_ms),
        session_scope: match s("sessionScope").as_deref() {
            Some("tab") => SessionScope::Tab,
            _ => SessionScope::Browser,
        },
        end_session_on_hidden: flag(&browser::get(o, "endSessionOnHidden")),
        hidden_grace_ms: n("hiddenGrace", d.hidden_grace_ms),
        auto_pageviews: b("autoPageviews", d.auto_pageviews),
        track_engagement: b("trackEngagement", d.track_engagement),
        batch_size: n("batchSize", d.batch_size as i64).max(1) as usize,
        flush_interval_ms: n("flushInterval", d.flush_interval_ms),
        persistence: match s("persistence").as_deref() {
            Some("localStorage") => Persistence::LocalStorage,
            Some("memory") => Persistence::Memory,
            _ => Persistence::Cookie,
        },
        cookie_domain: s("cookieDomain"),
        respect_dnt: b("respectDnt", d.respect_dnt),
    }
}

/// Starts the SDK. A second call is ignored with a warning.
#[wasm_bindgen]
pub fn init(options: JsValue) {
    if with_sdk(|_| ()).is_some() {
        browser::warn("init was called twice; kept the first");
        return;
    }
    let options = read_options(&options);
    if options.key.is_empty() {
        browser::warn("init needs a `key`; not started");
        return;
    }
    let shared = browser::shared_storage(options.persistence, options.cookie_domain.as_deref());
    let mut tab = browser::tab_storage(options.persistence);
    let tab_id = (options.session_scope == SessionScope::Tab).then(|| {
        let mut registry = browser::shared_storage(Persistence::LocalStorage, None);
        let now = BrowserClock.now_ms();
        session::claim_tab(&mut tab, &mut registry, &mut BrowserEntropy, now)
    });
    let dnt = browser::do_not_track();
    let tracker = Tracker::new(options, BrowserClock, shared, tab, BrowserEntropy, dnt);
    let registered = tracker
        .registered()
        .and_then(|r| js_sys::JSON::parse(&r).ok())
        .and_then(|r| r.dyn_into::<js_sys::Object>().ok())
        .unwrap_or_default();
    let url = browser::cat(&[&tracker.options.endpoint, "/v1/batch"]);
    let auto_pageviews = tracker.options.auto_pageviews;
    let durable = tracker.options.persistence != Persistence::Memory;
    SDK.with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        *s = Some(Sdk {
            tracker,
            url,
            flush_timer: false,
            sending: false,
            outbox: Outbox::default(),
            beaconed: Vec::new(),
            failures: 0,
            retry_at: 0,
            not_before: 0,
            in_flight: Vec::new(),
            sent_at: 0,
            drain_now: false,
            flushes_now: 0,
            flushes_next: 0,
            locks: Vec::new(),
            lock_id: 0,
            instant_failures: 0,
            blocked: false,
            save_scheduled: false,
            drain_queued: false,
            orphans_checked: 0,
            full_warned: false,
            tab_id,
            registered,
            shown: None,
            replayed_page: None,
            engagement: Engagement::default(),
        })
    });
    // The host calls `_on` for each event of the page from now on.
    browser::listen(auto_pageviews);
    if durable {
        own_outbox();
    }
    if auto_pageviews {
        // The first page view happened when the navigation started, before any call the page
        // made while the SDK loaded.
        if let Some(t) = browser::page_load_ms() {
            REPLAY_AT.with(|c| c.set(Some(t)));
        }
        view(JsValue::UNDEFINED);
    }
}

/// Most sends refused at once, in a row, while online, before the endpoint counts as blocked.
const BLOCKED_AFTER: u32 = 3;
/// A failure quicker than this is "at once" (an ad blocker answers without the network).
const INSTANT_MS: i64 = 250;
/// The longest base wait between retries (jitter adds up to as much again).
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;
/// How often a sending tab looks for outboxes of gone tabs.
const ORPHANS_EVERY_MS: i64 = 10_000;
/// Outboxes of tabs without Web Locks count as abandoned after this long unsaved.
const ABANDONED_MS: i64 = 10 * 60 * 1000;

fn local() -> Option<BrowserStorage> {
    browser::web_storage(true).map(BrowserStorage::Web)
}

/// Takes this tab's outbox key (from sessionStorage, so a reload keeps it), under a Web Lock
/// held for the page's life so that no other tab can take it; then adopts outboxes whose tab
/// is gone, and sends. A duplicated tab, which copied the key, finds the lock taken and gets
/// a key of its own.
fn own_outbox() {
    let Some(mut tab) = browser::web_storage(false).map(BrowserStorage::Web) else {
        return;
    };
    let id = tab
        .get("ff_ob")
        .unwrap_or_else(|| uuid_v4(&mut BrowserEntropy));
    tab.set("ff_ob", &id);
    let key = browser::cat(&[outbox::PREFIX, &id]);
    if !ask_lock(&key, true, LockFor::Own(key.clone())) {
        // No Web Locks: the key is ours by the sessionStorage ID alone; others' outboxes are
        // adopted once left unsaved for a long time.
        take_outbox(key);
    }
}

/// What a Web Lock asked for is for, once the host answers.
#[derive(Clone)]
enum LockFor {
    /// This tab's outbox key, held for the page's life.
    Own(String),
    /// The outbox of another tab, to adopt if that tab is gone.
    Adopt(String),
}

/// Asks the host for Web Lock `name` if it is free; the answer comes to [`locked`]. False
/// when there are no Web Locks (then nothing comes).
fn ask_lock(name: &str, hold: bool, what: LockFor) -> bool {
    let Some(id) = with_sdk(|s| {
        s.lock_id += 1;
        s.locks.push((s.lock_id, what));
        s.lock_id
    }) else {
        return false;
    };
    let asked = browser::lock(name, hold, id);
    if !asked {
        with_sdk(|s| s.locks.retain(|(k, _)| *k != id));
    }
    asked
}

/// The host's answer to lock request `id`, while the lock is held (`granted` 1) or at once
/// (0: another tab holds it).
#[wasm_bindgen(js_name = _locked)]
pub fn locked(id: u32, granted: u32) {
    let what = with_sdk(|s| {
        let mut found = None;
        s.locks.retain(|(k, w)| {
            if *k == id && found.is_none() {
                found = Some(w.clone());
                return false;
            }
            true
        });
        found
    })
    .flatten();
    match (what, granted == 1) {
        (Some(LockFor::Own(key)), true) => take_outbox(key),
        (Some(LockFor::Own(_)), false) => {
            // A duplicated tab, which copied the key: it gets one of its own.
            if let Some(mut tab) = browser::web_storage(false).map(BrowserStorage::Web) {
                tab.remove("ff_ob");
            }
            own_outbox();
        }
        (Some(LockFor::Adopt(other)), true) => {
            if let Some(mut store) = local() {
                with_sdk(|s| s.outbox.adopt(&mut store, &other));
                // Saved while the lock is held: the events are never in neither outbox.
                save_now();
                send_queue();
            }
        }
        _ => {}
    }
}

fn take_outbox(key: String) {
    let Some(store) = local() else { return };
    with_sdk(|s| {
        if !s.tracker.is_opted_out() {
            s.outbox.own(&store, key);
        }
    });
    adopt_orphans();
    save_soon();
    send_queue();
}

/// Adopts the outboxes of tabs that are gone: their Web Lock is free (the browser frees it
/// when a page goes, crashed or not, though not always at once: so this runs again before
/// later sends), or without Web Locks, they were left unsaved for [`ABANDONED_MS`].
fn adopt_orphans() {
    let Some(Some(own)) = with_sdk(|s| {
        s.orphans_checked = BrowserClock.now_ms();
        s.outbox.key().map(str::to_owned)
    }) else {
        return;
    };
    let Some(mut store) = local() else { return };
    let now = BrowserClock.now_ms();
    for other in browser::local_keys(outbox::PREFIX) {
        if other == own {
            continue;
        }
        let has_locks = ask_lock(&other, false, LockFor::Adopt(other.clone()));
        if !has_locks && now - outbox::load(&store, &other).1 > ABANDONED_MS {
            with_sdk(|s| s.outbox.adopt(&mut store, &other));
            save_now();
        }
    }
}

/// Writes the outbox at the end of this task (once for a burst of calls).
fn save_soon() {
    if with_sdk(|s| std::mem::replace(&mut s.save_scheduled, true)) != Some(false) {
        return;
    }
    browser::later(browser::Later::Save);
}

fn save_now() {
    with_sdk(|s| {
        s.save_scheduled = false;
        if let Some(mut store) = local() {
            s.outbox.save(&mut store, BrowserClock.now_ms());
        }
        if s.outbox.dropped > 0 && !std::mem::replace(&mut s.full_warned, true) {
            browser::warn(
                "the outbox is full (1,000 events or 512 KB); dropping the oldest unsent",
            );
        }
    });
}

/// The tab was hidden or shown again; hidden, what the page holds leaves by beacon.
fn visibility_changed() {
    let hidden = browser::is_hidden();
    with_sdk(|s| {
        s.engagement.set_hidden(hidden, BrowserClock.now_ms());
        if hidden {
            s.tracker.hidden();
        } else {
            s.tracker.visible();
        }
    });
    if hidden {
        send_all_by_beacon();
    }
}

/// The page goes (closed, navigated away, or into the back/forward cache): this tab's
/// registration ends, the page is left, and the outbox leaves by beacon.
fn page_hidden() {
    with_sdk(|s| {
        if let Some(id) = &s.tab_id {
            let mut registry = browser::shared_storage(Persistence::LocalStorage, None);
            session::release_tab(&mut registry, id, BrowserClock.now_ms());
        }
    });
    leave();
    send_all_by_beacon();
}

/// An event of the page, from the host (`listen` in host.js): `persisted` is 1 for a page
/// back from the back/forward cache.
#[wasm_bindgen(js_name = _on)]
pub fn on(event: u32, persisted: u32) {
    match event {
        0 => visibility_changed(),
        1 => {
            with_sdk(|s| s.retry_at = 0);
            send_queue();
        }
        2 => page_hidden(),
        // Back from the back/forward cache: this tab is open again.
        3 if persisted == 1 => {
            with_sdk(|s| {
                if s.tab_id.is_some() {
                    let mut registry = browser::shared_storage(Persistence::LocalStorage, None);
                    let mut tab = browser::tab_storage(s.tracker.options.persistence);
                    let now = BrowserClock.now_ms();
                    let id = session::claim_tab(&mut tab, &mut registry, &mut BrowserEntropy, now);
                    s.tab_id = Some(id);
                }
            });
            if with_sdk(|s| s.tracker.options.auto_pageviews) == Some(true) {
                view(JsValue::UNDEFINED);
            }
        }
        // User input: pointer, key, scroll, touch.
        4 => {
            with_sdk(|s| {
                s.engagement.input(BrowserClock.now_ms());
                s.tracker.input();
            });
        }
        // `popstate` and `pushState` (5), `replaceState` (6).
        5 => navigated(false),
        6 => navigated(true),
        7 => browser::resized(),
        _ => {}
    }
}

fn props(v: &JsValue) -> RawJson {
    match browser::stringify_object(v) {
        Ok(Some(s)) if s.len() <= DEFAULT_MAX_EVENT_BYTES / 2 => RawJson(s),
        Ok(Some(_)) => {
            browser::warn("properties larger than 16 KB; ignored them");
            RawJson::empty_object()
        }
        Ok(None) => RawJson::empty_object(),
        Err(why) => {
            browser::warn(why);
            RawJson::empty_object()
        }
    }
}

fn record(kind: EventType, name: String, props: RawJson, traits: Option<RawJson>) {
    record_on(kind, name, props, traits, current_page());
}

/// The page the event being recorded happened on: this one, or the one given by
/// [`replay_page`] for a call kept by an earlier page.
fn current_page() -> Page {
    with_sdk(|s| s.replayed_page.take())
        .flatten()
        .unwrap_or_else(browser::page)
}

fn record_on(kind: EventType, name: String, props: RawJson, traits: Option<RawJson>, page: Page) {
    let at_ms = REPLAY_AT.with(Cell::take);
    let full = with_sdk(|sdk| {
        let context = browser::context();
        let o = Occurrence {
            kind,
            name,
            props,
            traits,
            page,
            at_ms,
        };
        sdk.tracker.record(o, context);
        for e in sdk.tracker.take_chunk(usize::MAX) {
            sdk.outbox.push(e);
        }
        let full = sdk.outbox.len() >= sdk.tracker.options.batch_size + sdk.beaconed.len();
        if !full && !sdk.flush_timer {
            let wait = sdk.tracker.options.flush_interval_ms;
            sdk.flush_timer = true;
            browser::timer(browser::Later::FlushTimer, wait);
        }
        full
    });
    save_soon();
    match full {
        Some(true) => send_queue(),
        Some(false) => {}
        None => browser::warn("call init before recording events; dropped one"),
    }
}

/// Event properties: the registered ones, overridden by the call's own.
fn event_props(v: &JsValue) -> RawJson {
    let registered = with_sdk(|s| s.registered.clone()).unwrap_or_default();
    if js_sys::Object::keys(&registered).length() == 0 {
        return props(v);
    }
    if let Err(why) = browser::stringify_object(v) {
        browser::warn(why);
        return props(&registered);
    }
    let merged = js_sys::Object::assign(&js_sys::Object::new(), &registered);
    if v.is_object() {
        js_sys::Object::assign(&merged, &v.clone().unchecked_into());
    }
    props(&merged)
}

/// Records a page view.
#[wasm_bindgen]
pub fn page(props_: JsValue) {
    view(props_);
}

/// A page view: the page shown before is left, and the new one's engaged time starts.
fn view(props_: JsValue) {
    // A call replayed from before the SDK loaded: the leave happened when the view did.
    let at = REPLAY_AT.with(Cell::get);
    leave();
    REPLAY_AT.with(|c| c.set(at));
    let page = current_page();
    record_on(
        EventType::Page,
        String::new(),
        event_props(&props_),
        None,
        page.clone(),
    );
    with_sdk(|s| {
        s.engagement
            .start(BrowserClock.now_ms(), browser::is_hidden());
        s.shown = Some(page);
    });
}

/// With `trackEngagement`, a `$pageleave` for the page shown, carrying its engaged time.
fn leave() {
    let Some(Some((page, engaged))) = with_sdk(|s| {
        let page = s.shown.take()?;
        let on = s.tracker.options.track_engagement;
        on.then(|| (page, s.engagement.engaged_ms(BrowserClock.now_ms())))
    }) else {
        return;
    };
    let props = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&props, &"engaged_ms".into(), &(engaged as f64).into());
    record_on(
        EventType::Track,
        "$pageleave".into(),
        event_props(&props),
        None,
        page,
    );
}

/// After `history.pushState` (`replace` false), `replaceState` (true) or `popstate` (false):
/// a page view when the page changed. A push or a traversal changes it when the URL does (the
/// fragment aside); a replace only when the path does, as routers replace the state of the
/// page they show.
fn navigated(replace: bool) {
    let now = browser::page();
    let changed = with_sdk(|s| match &s.shown {
        None => true,
        Some(p) if replace => p.path != now.path,
        Some(p) => p.url.split(['#']).next() != now.url.split(['#']).next(),
    });
    if changed == Some(true) {
        view(JsValue::UNDEFINED);
    }
}

/// Records a custom event.
#[wasm_bindgen]
pub fn track(name: JsValue, props_: JsValue) {
    match name.as_string().map(|n| n.trim().to_owned()) {
        Some(n) if !n.is_empty() && n.len() <= 200 => {
            record(EventType::Track, n, event_props(&props_), None)
        }
        _ => browser::warn("track needs a name: a string of 1 to 200 characters; dropped it"),
    }
}

/// Attaches a known user ID to this visitor from now on; traits become user properties.
#[wasm_bindgen]
pub fn identify(user_id: JsValue, traits: JsValue) {
    match user_id.as_string().map(|n| n.trim().to_owned()) {
        Some(u) if !u.is_empty() && u.len() <= 200 => {
            let traits = props(&traits);
            record(
                EventType::Identify,
                u,
                RawJson::empty_object(),
                Some(traits),
            )
        }
        _ => browser::warn("identify needs a user ID: a string of 1 to 200 characters; ignored"),
    }
}

/// Sets user properties (last write wins per key).
#[wasm_bindgen(js_name = setUserProperties)]
pub fn set_user_properties(traits: JsValue) {
    let traits = props(&traits);
    record(
        EventType::Set,
        String::new(),
        RawJson::empty_object(),
        Some(traits),
    );
}

/// `flush()` (the host makes the Promise): sends what is queued now, and calls the host's
/// `flushed` once the collector answered for the events queued at the call (or a send failed:
/// they stay in the outbox for a retry). False when the SDK is not started: nothing to wait for.
#[wasm_bindgen(js_name = _flush)]
pub fn flush() -> bool {
    // A send in flight carries only part of the queue: wait for it, then send the rest (now,
    // even while backing off, but never before a 429's Retry-After).
    let Some(sending) = with_sdk(|s| {
        if s.sending {
            s.flushes_next += 1;
        } else {
            s.flushes_now += 1;
        }
        s.sending
    }) else {
        return false;
    };
    if !sending {
        drain(true);
    }
    true
}

/// What the host runs at the end of the task that asked, or when a timer fires (see
/// [`browser::Later`]).
#[wasm_bindgen(js_name = _later)]
pub fn later(what: u32) {
    match what {
        0 => save_now(),
        1 => browser::write_cookies(),
        2 => drain(false),
        3 => {
            with_sdk(|s| s.flush_timer = false);
            send_queue();
        }
        _ => send_queue(),
    }
}

/// Starts a drain after this task, unless one is running or about to (a burst of `track`
/// calls on a full queue would otherwise start one per call).
fn send_queue() {
    if with_sdk(|s| s.sending || std::mem::replace(&mut s.drain_queued, true)) == Some(false) {
        browser::later(browser::Later::Drain);
    }
}

/// Sends the outbox, oldest first, chunk by chunk, until it is empty or a send fails. One
/// drain at a time per tab; each chunk's answer comes back through [`answered`].
fn drain(now: bool) {
    if with_sdk(|s| {
        s.drain_queued = false;
        s.drain_now = now;
        std::mem::replace(&mut s.sending, true)
    }) != Some(false)
    {
        return;
    }
    if with_sdk(|s| BrowserClock.now_ms() - s.orphans_checked > ORPHANS_EVERY_MS) == Some(true) {
        adopt_orphans();
    }
    send_next();
}

fn send_next() {
    let next = with_sdk(|s| {
        let t = BrowserClock.now_ms();
        if s.blocked || t < s.not_before || (!s.drain_now && t < s.retry_at) || !browser::online() {
            return None;
        }
        let chunk = s.outbox.peek(MAX_SEND_BYTES, &s.beaconed);
        if chunk.is_empty() {
            return None;
        }
        let body = s.tracker.batch_body(&chunk);
        s.in_flight = chunk;
        s.sent_at = t;
        Some((s.url.clone(), body))
    })
    .flatten();
    match next {
        Some((url, body)) => browser::post(&url, &body),
        None => drained(),
    }
}

/// The host's answer to the send in flight: the status and `Retry-After` (seconds), or status
/// 0 when the request did not complete (offline, blocked, CORS refused).
#[wasm_bindgen(js_name = _answered)]
pub fn answered(status: u32, retry_after: f64) {
    let more = with_sdk(|s| {
        let chunk = std::mem::take(&mut s.in_flight);
        let took = BrowserClock.now_ms() - s.sent_at;
        let answer = match status {
            0 => Err(()),
            _ => Ok((status.min(999) as u16, retry_after as i64)),
        };
        s.answered(answer, &chunk, took)
    });
    if more == Some(true) {
        send_next();
    } else {
        drained();
    }
}

/// The drain ended: the flushes it answers resolve, the outbox is saved, and flushes that
/// waited for it drain again.
fn drained() {
    let Some((done, again)) = with_sdk(|s| {
        s.sending = false;
        let done = std::mem::take(&mut s.flushes_now);
        s.flushes_now = std::mem::take(&mut s.flushes_next);
        (done, s.flushes_now > 0)
    }) else {
        return;
    };
    if done > 0 {
        browser::flushed(done);
    }
    save_now();
    if again {
        drain(true);
    }
}

impl Sdk {
    /// Acts on the collector's answer to a chunk; true to send the next one.
    fn answered(&mut self, answer: Result<(u16, i64), ()>, chunk: &[String], took: i64) -> bool {
        let wait = match answer {
            Ok((status, _)) if (200..300).contains(&status) => {
                self.outbox.ack(chunk);
                self.failures = 0;
                self.instant_failures = 0;
                return true;
            }
            Ok((status, _)) if (400..500).contains(&status) && status != 429 => {
                browser::warn("the collector refused a batch (4xx); dropped it");
                self.outbox.ack(chunk);
                return true;
            }
            Ok((_, retry_after)) => {
                self.instant_failures = 0;
                let wait = retry_after.clamp(0, 86_400) * 1000;
                self.not_before = BrowserClock.now_ms() + wait;
                wait
            }
            Err(_) if browser::online() && took < INSTANT_MS => {
                self.instant_failures += 1;
                if self.instant_failures >= BLOCKED_AFTER {
                    self.blocked = true;
                    browser::warn(
                        "the collector cannot be reached (blocked?); events are kept for the next page",
                    );
                    return false;
                }
                0
            }
            Err(_) => 0,
        };
        // Exponential backoff with jitter: 1–2 s, then 2–4 s, ... up to 5–10 min; never
        // sooner than a 429's Retry-After.
        self.failures += 1;
        let base = (1000i64 << (self.failures - 1).min(20)).min(MAX_BACKOFF_MS);
        let mut r = [0u8; 2];
        BrowserEntropy.fill(&mut r);
        let jitter = base * i64::from(u16::from_le_bytes(r)) / 65_536;
        let wait = wait.max(base + jitter);
        self.retry_at = BrowserClock.now_ms() + wait;
        browser::timer(browser::Later::RetryTimer, wait);
        false
    }
}

/// On page hide: the outbox leaves by `sendBeacon`, in chunks under 64 KB. The events stay in
/// the outbox: a beacon's answer is never known, so the next page load sends them again (the
/// collector drops the copies by `event_id`).
///
/// The browser refuses beacons past 64 KB in flight; what they would have carried goes by a
/// normal send, which finishes if the page lives on (a hidden tab) and is sent again by the
/// next page load if not.
fn send_all_by_beacon() {
    save_now();
    let refused = with_sdk(|s| loop {
        let chunk = s.outbox.peek(MAX_SEND_BYTES, &s.beaconed);
        if chunk.is_empty() {
            break false;
        }
        if !browser::beacon(&s.url, &s.tracker.batch_body(&chunk)) {
            break true;
        }
        s.beaconed
            .extend(chunk.iter().map(|e| outbox::id_of(e).to_owned()));
    });
    if refused == Some(true) {
        send_queue();
    }
}

/// Adds properties to every later event, kept across page loads.
#[wasm_bindgen]
pub fn register(props_: JsValue) {
    match browser::stringify_object(&props_) {
        Ok(Some(_)) => {
            with_sdk(|s| {
                js_sys::Object::assign(&s.registered, &props_.unchecked_into());
                let json = props(&s.registered);
                s.tracker.set_registered(json.as_str());
            });
        }
        Ok(None) => {}
        Err(why) => browser::warn(why),
    }
}

/// Stops adding `key` to events.
#[wasm_bindgen]
pub fn unregister(key: JsValue) {
    let Some(key) = key.as_string() else {
        browser::warn("unregister needs a property name (a string); ignored");
        return;
    };
    with_sdk(|s| {
        let _ = js_sys::Reflect::delete_property(&s.registered, &JsValue::from_str(&key));
        let json = props(&s.registered);
        s.tracker.set_registered(json.as_str());
    });
}

/// Logout: new anonymous ID and session; user ID and registered properties cleared.
#[wasm_bindgen]
pub fn reset() {
    with_sdk(|s| {
        s.tracker.reset();
        s.registered = js_sys::Object::new();
    });
}

/// Withdraws consent: nothing is sent or stored from now on but the opt-out itself.
#[wasm_bindgen(js_name = optOut)]
pub fn opt_out() {
    with_sdk(|s| {
        s.tracker.opt_out();
        s.registered = js_sys::Object::new();
        s.outbox.clear();
    });
    save_now();
}

/// Gives consent again.
#[wasm_bindgen(js_name = optIn)]
pub fn opt_in() {
    with_sdk(|s| s.tracker.opt_in());
}

#[wasm_bindgen(js_name = isOptedOut)]
pub fn is_opted_out() -> bool {
    with_sdk(|s| s.tracker.is_opted_out()).unwrap_or(false)
}

#[wasm_bindgen(js_name = getAnonymousId)]
pub fn get_anonymous_id() -> Option<String> {
    with_sdk(|s| s.tracker.anonymous_id().map(str::to_owned)).flatten()
}

#[wasm_bindgen(js_name = getSessionId)]
pub fn get_session_id() -> Option<String> {
    with_sdk(|s| s.tracker.session_id()).flatten()
}

#[wasm_bindgen(js_name = getUserId)]
pub fn get_user_id() -> Option<String> {
    with_sdk(|s| s.tracker.user_id().map(str::to_owned)).flatten()
}

/// Used by the script tag when the page is hidden (`pagehide` false: `visibilitychange`) or goes
/// (`pagehide` true) before the SDK had started: it then starts the SDK at once, within that
/// event, too late for the listeners [`init`] adds to see it, so it calls this instead.
#[wasm_bindgen(js_name = _hide)]
pub fn hide(pagehide: bool) {
    if pagehide {
        page_hidden();
    } else {
        visibility_changed();
    }
}

/// Used by the script tag's replay of calls kept by a page that went before its SDK had
/// started: the next event happened on that page (`{u: url, p: path, t: title, r: referrer}`).
#[wasm_bindgen(js_name = _replayPage)]
pub fn replay_page(page: JsValue) {
    let text = |k| browser::get(&page, k).as_string().unwrap_or_default();
    let page = Page {
        url: text("u"),
        path: text("p"),
        title: text("t"),
        referrer: text("r"),
    };
    with_sdk(|s| s.replayed_page = Some(page));
}

/// Used by the loader's replay: the next event happened at `ms` (epoch milliseconds).
/// `NaN` ends a replayed call: the time and page of the next event are then its own.
#[wasm_bindgen(js_name = _replayAt)]
pub fn replay_at(ms: f64) {
    REPLAY_AT.with(|c| c.set(ms.is_finite().then_some(ms as i64)));
    if !ms.is_finite() {
        with_sdk(|s| s.replayed_page = None);
    }
}

/// Runs under `wasm-bindgen-test` (Node.js): the JS-facing parsing with real `JsValue`s.
#[cfg(test)]
mod tests {
    use super::*;
    use js_sys::{Object, Reflect};
    use wasm_bindgen_test::wasm_bindgen_test;

    fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
        let o = Object::new();
        for (k, v) in pairs {
            Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
        }
        o.into()
    }

    #[wasm_bindgen_test]
    fn options_come_from_numbers_strings_and_booleans() {
        // As the script tag gives them: every value a string.
        let o = read_options(&obj(&[
            ("key", "shop".into()),
            ("endpoint", "https://c.example".into()),
            ("sessionTimeout", "600000".into()),
            ("sessionScope", "tab".into()),
            ("autoPageviews", "false".into()),
            ("batchSize", JsValue::from_f64(5.0)),
        ]));
        assert_eq!(o.key, "shop");
        assert_eq!(o.endpoint, "https://c.example");
        assert_eq!(o.session_timeout_ms, 600_000);
        assert_eq!(o.session_scope, SessionScope::Tab);
        assert!(!o.auto_pageviews);
        assert_eq!(o.batch_size, 5);
        assert_eq!(
            o.max_session_duration_ms,
            Options::default().max_session_duration_ms
        );
    }

    #[wasm_bindgen_test]
    fn nonsense_options_fall_back_to_defaults() {
        let o = read_options(&obj(&[
            ("key", JsValue::from_f64(3.0)),
            ("sessionTimeout", "soon".into()),
            ("batchSize", JsValue::from_f64(f64::NAN)),
            ("autoPageviews", JsValue::from_f64(1.0)),
        ]));
        assert_eq!(o.key, "");
        assert_eq!(o.session_timeout_ms, Options::default().session_timeout_ms);
        assert_eq!(o.batch_size, Options::default().batch_size);
        assert!(o.auto_pageviews);
        // Not even an object.
        assert_eq!(read_options(&JsValue::from_str("x")).key, "");
    }

    #[wasm_bindgen_test]
    fn properties_must_be_plain_serialisable_objects() {
        assert_eq!(props(&JsValue::UNDEFINED).as_str(), "{}");
        assert_eq!(
            props(&obj(&[("plan", "pro".into())])).as_str(),
            r#"{"plan":"pro"}"#
        );
        assert_eq!(props(&JsValue::from_str("x")).as_str(), "{}");
        assert_eq!(props(&js_sys::Array::new().into()).as_str(), "{}");
        let cyclic = obj(&[]);
        Reflect::set(&cyclic, &"me".into(), &cyclic).unwrap();
        assert_eq!(props(&cyclic).as_str(), "{}");
        let huge = obj(&[("x", "y".repeat(40_000).into())]);
        assert_eq!(props(&huge).as_str(), "{}");
    }

    #[wasm_bindgen_test]
    fn calls_before_init_or_with_bad_arguments_do_not_throw() {
        track(JsValue::from_f64(1.0), JsValue::NULL);
        track("before_init".into(), JsValue::UNDEFINED);
        identify(JsValue::NULL, JsValue::NULL);
        assert_eq!(get_anonymous_id(), None);
        assert_eq!(get_session_id(), None);
        init(JsValue::UNDEFINED);
        assert_eq!(get_anonymous_id(), None, "no key, not started");
    }
}
