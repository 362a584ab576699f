//! The wasm's exports: the JavaScript API of product.md §1 behind the host's adapter
//! (`api` in host.js), which hands in only strings and numbers: the properties already as
//! JSON text, the options as one list. Bad input is dropped with one `console.warn` and the
//! SDK keeps working.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::browser::{self, BrowserClock, BrowserEntropy, BrowserStorage, Want};
use crate::engagement::Engagement;
use crate::options::{Options, Persistence, SessionScope};
use crate::outbox::{self, Outbox};
use crate::platform::{uuid_v4, Clock, Entropy, Storage};
use crate::session;
use crate::tracker::{Occurrence, Tracker, MAX_SEND_BYTES};
use core::cell::RefCell;
use footfall_wire::{EventType, Page, RawJson, DEFAULT_MAX_EVENT_BYTES};
use wasm_bindgen::prelude::*;

type BrowserTracker = Tracker<BrowserClock, BrowserStorage, BrowserEntropy>;

/// Everything the SDK holds while a page runs: one struct, one thread-local.
struct Sdk {
    tracker: BrowserTracker,
    url: String,
    /// localStorage (for the outboxes), sessionStorage (for this tab's outbox key), and the
    /// registry of open tabs (localStorage, memory without it).
    local: Option<BrowserStorage>,
    session: Option<BrowserStorage>,
    registry: BrowserStorage,
    /// This tab's own storage (the session in `"tab"` scope).
    tab: BrowserStorage,
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
    /// The properties of `register`, as JSON text (the host merges them into the page's
    /// calls; the SDK's own events carry them from here).
    registered: String,
    /// The page of the last page view, until it is left.
    shown: Option<Page>,
    /// The page the next event happened on, when it is not this one (see [`replay_page`]).
    replayed_page: Option<Page>,
    /// When set, the next event happened at this time (a call queued before the SDK loaded).
    replay_at: Option<i64>,
    engagement: Engagement,
}

/// The one place the SDK's state lives (no `thread_local!`: the wasm is built without `std`).
struct State(RefCell<Option<Sdk>>);

// SAFETY: the wasm runs on one thread (built without atomics): nothing shares it.
unsafe impl Sync for State {}

static SDK: State = State(RefCell::new(None));

fn with_sdk<R>(f: impl FnOnce(&mut Sdk) -> R) -> Option<R> {
    SDK.0.try_borrow_mut().ok()?.as_mut().map(f)
}

/// Starts the SDK from the host's list of options (see [`Options::parse`]). A second call is
/// ignored with a warning.
#[wasm_bindgen]
pub fn init(options: &str) {
    if with_sdk(|_| ()).is_some() {
        browser::warn("init was called twice; kept the first");
        return;
    }
    let options = Options::parse(options);
    if options.key.is_empty() {
        browser::warn("init needs a `key`; not started");
        return;
    }
    let (shared_want, tab_want) = match options.persistence {
        Persistence::Cookie => (Want::Cookie, Want::Session),
        Persistence::LocalStorage => (Want::Local, Want::Session),
        Persistence::Memory => (Want::Memory, Want::Memory),
    };
    let shared = BrowserStorage::open_any(shared_want, options.cookie_domain.as_deref());
    let mut tab = BrowserStorage::open_any(tab_want, None);
    let mut registry = BrowserStorage::open_any(Want::Local, None);
    let tab_id = (options.session_scope == SessionScope::Tab).then(|| {
        let now = BrowserClock.now_ms();
        session::claim_tab(&mut tab, &mut registry, &mut BrowserEntropy, now)
    });
    let dnt = browser::do_not_track();
    let tracker = Tracker::new(options, BrowserClock, shared, tab, BrowserEntropy, dnt);
    let registered = tracker
        .registered()
        .filter(|r| r.starts_with('{'))
        .unwrap_or_else(|| "{}".into());
    let url = browser::cat(&[&tracker.options.endpoint, "/v1/batch"]);
    let auto_pageviews = tracker.options.auto_pageviews;
    let durable = tracker.options.persistence != Persistence::Memory;
    let replay_at = if auto_pageviews {
        // The first page view happened when the navigation started, before any call the page
        // made while the SDK loaded.
        browser::page_load_ms()
    } else {
        None
    };
    {
        let Ok(mut s) = SDK.0.try_borrow_mut() else {
            return;
        };
        *s = Some(Sdk {
            tracker,
            url,
            local: BrowserStorage::open(Want::LocalOnly, None),
            session: BrowserStorage::open(Want::SessionOnly, None),
            registry,
            tab,
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
            replay_at,
            engagement: Engagement::default(),
        });
    }
    // The host calls `_on` for each event of the page from now on.
    browser::listen(auto_pageviews);
    if durable {
        own_outbox();
    }
    if auto_pageviews {
        view(None);
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
    with_sdk(|s| s.local).flatten()
}

fn session_store() -> Option<BrowserStorage> {
    with_sdk(|s| s.session).flatten()
}

/// Takes this tab's outbox key (from sessionStorage, so a reload keeps it), under a Web Lock
/// held for the page's life so that no other tab can take it; then adopts outboxes whose tab
/// is gone, and sends. A duplicated tab, which copied the key, finds the lock taken and gets
/// a key of its own.
fn own_outbox() {
    let Some(mut tab) = session_store() else {
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
            if let Some(mut tab) = session_store() {
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
    if with_sdk(|s| core::mem::replace(&mut s.save_scheduled, true)) != Some(false) {
        return;
    }
    browser::later(browser::Later::Save);
}

fn save_now() {
    with_sdk(|s| {
        s.save_scheduled = false;
        if let Some(mut store) = s.local {
            s.outbox.save(&mut store, BrowserClock.now_ms());
        }
        if s.outbox.dropped > 0 && !core::mem::replace(&mut s.full_warned, true) {
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
            session::release_tab(&mut s.registry, id, BrowserClock.now_ms());
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
                    let now = BrowserClock.now_ms();
                    let id =
                        session::claim_tab(&mut s.tab, &mut s.registry, &mut BrowserEntropy, now);
                    s.tab_id = Some(id);
                }
            });
            if with_sdk(|s| s.tracker.options.auto_pageviews) == Some(true) {
                view(None);
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
        _ => {}
    }
}

/// Properties as the host hands them: JSON text of an object, or empty for none.
fn props(text: &str) -> RawJson {
    if text.len() > DEFAULT_MAX_EVENT_BYTES / 2 {
        browser::warn("properties larger than 16 KB; ignored them");
        return RawJson::empty_object();
    }
    if text.starts_with('{') {
        RawJson(text.into())
    } else {
        RawJson::empty_object()
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
    let full = with_sdk(|sdk| {
        let o = Occurrence {
            kind,
            name,
            props,
            traits,
            page,
            at_ms: sdk.replay_at.take(),
        };
        if let Some(e) = sdk.tracker.record(o, browser::context()) {
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

/// The registered properties, for the SDK's own events.
fn registered() -> RawJson {
    RawJson(with_sdk(|s| s.registered.clone()).unwrap_or_else(|| "{}".into()))
}

/// Records a page view; `props` is JSON text with the registered properties merged in.
#[wasm_bindgen]
pub fn page(props_: &str) {
    view(Some(props(props_)));
}

/// A page view (with the registered properties when `props` is `None`): the page shown before
/// is left, and the new one's engaged time starts.
fn view(props: Option<RawJson>) {
    // A call replayed from before the SDK loaded: the leave happened when the view did.
    let at = with_sdk(|s| s.replay_at).flatten();
    leave();
    with_sdk(|s| s.replay_at = at);
    let page = current_page();
    record_on(
        EventType::Page,
        String::new(),
        props.unwrap_or_else(registered),
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
    // The registered properties with `engaged_ms` last (it wins over a registered one).
    let registered = registered().0;
    let mut props = String::from(
        registered
            .get(..registered.len().saturating_sub(1))
            .unwrap_or("{"),
    );
    if props.len() > 1 {
        props.push(',');
    }
    props.push_str("\"engaged_ms\":");
    footfall_wire::json::write_u64(&mut props, engaged.max(0) as u64);
    props.push('}');
    record_on(
        EventType::Track,
        "$pageleave".into(),
        RawJson(props),
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
        view(None);
    }
}

/// A name of 1 to 200 characters (the host trims it).
fn name_of(n: &str) -> Option<String> {
    (!n.is_empty() && n.len() <= 200).then(|| n.to_owned())
}

/// Records a custom event; `props` is JSON text with the registered properties merged in.
#[wasm_bindgen]
pub fn track(name: &str, props_: &str) {
    match name_of(name) {
        Some(n) => record(EventType::Track, n, props(props_), None),
        None => browser::warn("track needs a name: a string of 1 to 200 characters; dropped it"),
    }
}

/// Attaches a known user ID to this visitor from now on; traits become user properties.
#[wasm_bindgen]
pub fn identify(user_id: &str, traits: &str) {
    match name_of(user_id) {
        Some(u) => record(
            EventType::Identify,
            u,
            RawJson::empty_object(),
            Some(props(traits)),
        ),
        None => browser::warn("identify needs a user ID: a string of 1 to 200 characters; ignored"),
    }
}

/// Sets user properties (last write wins per key).
#[wasm_bindgen(js_name = setUserProperties)]
pub fn set_user_properties(traits: &str) {
    record(
        EventType::Set,
        String::new(),
        RawJson::empty_object(),
        Some(props(traits)),
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
    if with_sdk(|s| s.sending || core::mem::replace(&mut s.drain_queued, true)) == Some(false) {
        browser::later(browser::Later::Drain);
    }
}

/// Sends the outbox, oldest first, chunk by chunk, until it is empty or a send fails. One
/// drain at a time per tab; each chunk's answer comes back through [`answered`].
fn drain(now: bool) {
    if with_sdk(|s| {
        s.drain_queued = false;
        s.drain_now = now;
        core::mem::replace(&mut s.sending, true)
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
        let chunk = core::mem::take(&mut s.in_flight);
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
        let done = core::mem::take(&mut s.flushes_now);
        s.flushes_now = core::mem::take(&mut s.flushes_next);
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

/// The registered properties as JSON text (`{}` for none, or before `init`): the host keeps
/// them as an object to merge into the page's calls.
#[wasm_bindgen(js_name = _registered)]
pub fn get_registered() -> String {
    registered().0
}

/// `register`/`unregister` changed the registered properties (the host's object, as JSON
/// text): kept across page loads.
#[wasm_bindgen(js_name = _register)]
pub fn set_registered(json: &str) {
    let json = props(json);
    with_sdk(|s| {
        s.tracker.set_registered(json.as_str());
        s.registered = json.0;
    });
}

/// Logout: new anonymous ID and session; user ID and registered properties cleared.
#[wasm_bindgen]
pub fn reset() {
    with_sdk(|s| {
        s.tracker.reset();
        s.registered = "{}".into();
    });
}

/// Withdraws consent: nothing is sent or stored from now on but the opt-out itself.
#[wasm_bindgen(js_name = optOut)]
pub fn opt_out() {
    with_sdk(|s| {
        s.tracker.opt_out();
        s.registered = "{}".into();
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
/// started: the next event happened on that page (its URL, path, title and referrer, one a
/// line).
#[wasm_bindgen(js_name = _replayPage)]
pub fn replay_page(page: &str) {
    let page = browser::page_from(page);
    with_sdk(|s| s.replayed_page = Some(page));
}

/// Used by the loader's replay: the next event happened at `ms` (epoch milliseconds).
/// `NaN` ends a replayed call: the time and page of the next event are then its own.
#[wasm_bindgen(js_name = _replayAt)]
pub fn replay_at(ms: f64) {
    with_sdk(|s| {
        s.replay_at = ms.is_finite().then_some(ms as i64);
        if !ms.is_finite() {
            s.replayed_page = None;
        }
    });
}
