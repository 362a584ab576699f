//! The wasm's exports: the JavaScript API of product.md §1 behind the host's adapter (the
//! api room, `js-wrapper/src/host/api.js`), which hands in only strings and numbers: the
//! properties already as JSON text, the options as one list. Bad input is dropped with one
//! `console.warn` and the SDK keeps working.
//!
//! Each export borrows the one state ([`Sdk`]) once and runs a method of it; the host never
//! calls back into the wasm while an export runs (its answers come in later tasks), so no
//! borrow is ever refused in practice.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::browser::{self, BrowserClock, BrowserEntropy, BrowserNet, BrowserStorage, Want};
use crate::delivery::{Delivery, Later};
use crate::engagement::Engagement;
use crate::options::{Options, Persistence, SessionScope};
use crate::outbox;
use crate::platform::{fields, owned, uuid_v7, Clock, Storage};
use crate::session;
use crate::tracker::{Occurrence, Tracker};
use core::cell::RefCell;
use footfall_wire::json::write_u64;
use footfall_wire::{EventType, DEFAULT_MAX_EVENT_BYTES};
use wasm_bindgen::prelude::*;

type BrowserTracker = Tracker<BrowserClock, BrowserStorage, BrowserEntropy>;

/// How often a sending tab looks for outboxes of gone tabs.
const ORPHANS_EVERY_MS: i64 = 10_000;
/// Outboxes of tabs without Web Locks count as abandoned after this long unsaved.
const ABANDONED_MS: i64 = 10 * 60 * 1000;

/// Everything the SDK holds while a page runs.
struct Sdk {
    tracker: BrowserTracker,
    delivery: Delivery<BrowserStorage>,
    /// sessionStorage (for this tab's outbox key), and the registry of open tabs
    /// (localStorage, memory without it).
    session: Option<BrowserStorage>,
    registry: BrowserStorage,
    /// This tab's own storage (the session in `"tab"` scope).
    tab: BrowserStorage,
    /// The key this tab asked to own. The answer to a Web Lock of that name is about this
    /// tab's own outbox; any other name is the outbox of another tab, to adopt if that tab is
    /// gone (see [`Sdk::locked`]).
    own_key: String,
    /// When [`Sdk::adopt_orphans`] last looked.
    orphans_checked: i64,
    /// This tab's ID in `"tab"` scope (registered while the page is shown); empty in
    /// `"browser"` scope.
    tab_id: String,
    /// The properties of `register`, as JSON text (the host merges them into the page's
    /// calls; the SDK's own events carry them from here).
    registered: String,
    /// The page of the last page view, until it is left (the host's lines: URL, path, title,
    /// referrer); empty for none.
    shown: String,
    /// The page the next event happened on, when it is not this one (see [`replay_page`]).
    replayed_page: Option<String>,
    /// When not 0, the next event happened at this time (a call queued before the SDK loaded).
    replay_at: i64,
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

/// For the calls that record: before `init`, the event is dropped with a warning.
fn recording(f: impl FnOnce(&mut Sdk)) {
    if with_sdk(f).is_none() {
        browser::warn("call init first; event dropped");
    }
}

fn now() -> i64 {
    BrowserClock.now_ms()
}

/// Starts the SDK from the host's list of options (see [`Options::parse`]). A second call is
/// ignored with a warning.
fn init(options: &str) {
    let Ok(mut state) = SDK.0.try_borrow_mut() else {
        return;
    };
    if state.is_some() {
        return browser::warn("init called twice; the first kept");
    }
    let options = Options::parse(options);
    if options.key.is_empty() {
        return browser::warn("init needs a `key`; not started");
    }
    let (shared_want, tab_want) = match options.persistence {
        Persistence::Cookie => (Want::Cookie, Want::Session),
        Persistence::LocalStorage => (Want::Local, Want::Session),
        Persistence::Memory => (Want::Memory, Want::Memory),
    };
    let shared = BrowserStorage::open_any(shared_want, &options.cookie_domain);
    let mut tab = BrowserStorage::open_any(tab_want, "");
    let mut registry = BrowserStorage::open_any(Want::Local, "");
    let tab_id = if options.session_scope == SessionScope::Tab {
        claim_tab(&mut tab, &mut registry)
    } else {
        String::new()
    };
    let dnt = browser::do_not_track();
    let tracker = Tracker::new(options, BrowserClock, shared, tab, BrowserEntropy, dnt);
    let mut registered = tracker.registered();
    if !registered.starts_with("{") {
        registered = owned("{}");
    }
    let o = &tracker.options;
    let auto_pageviews = o.auto_pageviews;
    let durable = o.persistence != Persistence::Memory;
    let delivery = Delivery::new(
        &o.endpoint,
        &o.key,
        o.batch_size,
        o.flush_interval_ms,
        BrowserStorage::open(Want::LocalOnly, ""),
    );
    let sdk = state.insert(Sdk {
        tracker,
        delivery,
        session: BrowserStorage::open(Want::SessionOnly, ""),
        registry,
        tab,
        own_key: String::new(),
        orphans_checked: 0,
        tab_id,
        registered,
        shown: String::new(),
        replayed_page: None,
        // The first page view happened when the navigation started, before any call the
        // page made while the SDK loaded.
        replay_at: if auto_pageviews {
            browser::page_load_ms()
        } else {
            0
        },
        engagement: Engagement::default(),
    });
    // The host calls `_on` for each event of the page from now on.
    browser::listen(auto_pageviews);
    if durable {
        sdk.own_outbox();
    }
    if auto_pageviews {
        sdk.view("");
    }
}

/// This tab's ID in `"tab"` scope (see [`session::claim_tab`]).
fn claim_tab(tab: &mut BrowserStorage, registry: &mut BrowserStorage) -> String {
    let entries = browser::local_keys(session::TAB_ENTRY_PREFIX);
    session::claim_tab(tab, registry, &mut BrowserEntropy, now(), &entries)
}

impl Sdk {
    /// Takes this tab's outbox key (from sessionStorage, so a reload keeps it), under a Web
    /// Lock held for the page's life so that no other tab can take it; then adopts outboxes
    /// whose tab is gone, and sends. A duplicated tab, which copied the key, finds the lock
    /// taken and gets a key of its own.
    fn own_outbox(&mut self) {
        let Some(tab) = &mut self.session else {
            return;
        };
        let mut id = tab.text("ff_ob");
        if id.is_empty() {
            id = uuid_v7(&mut BrowserEntropy, now());
        }
        tab.set("ff_ob", &id);
        let mut key = owned(outbox::PREFIX);
        key.push_str(&id);
        self.own_key = owned(&key);
        if !self.ask_lock(&key, true) {
            // No Web Locks: the key is ours by the sessionStorage ID alone; others' outboxes
            // are adopted once left unsaved for a long time.
            self.take_outbox(key);
        }
    }

    /// Asks the host for Web Lock `name` if it is free; the answer comes to [`Sdk::locked`]. False
    /// when there are no Web Locks (then nothing comes).
    fn ask_lock(&mut self, name: &str, hold: bool) -> bool {
        browser::lock(name, hold)
    }

    fn locked(&mut self, name: &str, granted: bool) {
        let name = owned(name);
        match (name == self.own_key, granted) {
            (true, true) => self.take_outbox(name),
            (true, false) => {
                // A duplicated tab, which copied the key: it gets one of its own.
                if let Some(tab) = &mut self.session {
                    tab.remove("ff_ob");
                }
                self.own_outbox();
            }
            (false, true) => self.delivery.adopt(&name, &mut BrowserNet),
            (false, false) => {}
        }
    }

    fn take_outbox(&mut self, key: String) {
        let d = &mut self.delivery;
        let Some(store) = &d.local else { return };
        if !self.tracker.is_opted_out() {
            d.outbox.own(store, key);
        }
        self.adopt_orphans();
        self.delivery.save_soon(&mut BrowserNet);
        self.delivery.send_soon(&mut BrowserNet);
    }

    /// Adopts the outboxes of tabs that are gone: their Web Lock is free (the browser frees
    /// it when a page goes, crashed or not, though not always at once: so this runs again
    /// before later sends), or without Web Locks, they were left unsaved for
    /// [`ABANDONED_MS`].
    fn adopt_orphans(&mut self) {
        let now = now();
        self.orphans_checked = now;
        let Some(own) = self.delivery.outbox.key().map(str::to_owned) else {
            return;
        };
        let keys = browser::local_keys(outbox::PREFIX);
        for other in fields(&keys, b'\n') {
            if other.is_empty() || other == own {
                continue;
            }
            if !self.ask_lock(other, false)
                && self
                    .delivery
                    .local
                    .as_ref()
                    .is_some_and(|s| now - outbox::saved_ms(&s.text(other)) > ABANDONED_MS)
            {
                self.delivery.adopt(other, &mut BrowserNet);
            }
        }
    }

    /// The tab was hidden or shown again; hidden, what the page holds leaves by beacon.
    fn visibility_changed(&mut self) {
        let hidden = browser::is_hidden();
        self.engagement.set_hidden(hidden, now());
        if hidden {
            self.tracker.hidden();
            self.delivery.beacon_all(&mut BrowserNet);
        } else {
            self.tracker.visible();
        }
    }

    /// The page goes (closed, navigated away, or into the back/forward cache): this tab's
    /// registration ends, the page is left, and the outbox leaves by beacon.
    fn page_hidden(&mut self) {
        if !self.tab_id.is_empty() {
            session::release_tab(&mut self.registry, &self.tab_id);
        }
        self.leave();
        self.delivery.beacon_all(&mut BrowserNet);
    }

    fn on(&mut self, event: u32, x: f64) {
        match event {
            0 => self.visibility_changed(),
            1 => self.delivery.online(&mut BrowserNet),
            2 => self.page_hidden(),
            // Back from the back/forward cache: this tab is open again.
            3 if x == 1.0 => {
                if !self.tab_id.is_empty() {
                    self.tab_id = claim_tab(&mut self.tab, &mut self.registry);
                }
                if self.tracker.options.auto_pageviews {
                    self.view("");
                }
            }
            // User input: pointer, key, scroll, touch.
            4 => {
                self.engagement.input(now());
                self.tracker.input();
            }
            // `popstate` and `pushState` (5), `replaceState` (6).
            5 => self.navigated(false),
            6 => self.navigated(true),
            7 => self.later(Later::from_u32(x as u32)),
            // The loader's replay: the next event happened at `x` (epoch milliseconds); `NaN`
            // ends a replayed call, and the time and page of the next event are then its own.
            8 => {
                self.replay_at = if x.is_finite() { x as i64 } else { 0 };
                if !x.is_finite() {
                    self.replayed_page = None;
                }
            }
            // The answer to the send in flight: 1000 + its status (1000 when the request did
            // not complete: offline, blocked, CORS refused), `x` its `Retry-After` (seconds).
            1000.. => {
                let status = (event - 1000).min(999);
                self.delivery.answered(status, x as i64, &mut BrowserNet);
            }
            _ => {}
        }
    }

    fn record(&mut self, kind: EventType, name: &str, props: &str, traits: Option<&str>) {
        let page = self.current_page();
        self.record_on(kind, name, props, traits, &page);
    }

    /// The page the event being recorded happened on: this one, or the one given by
    /// [`replay_page`] for a call kept by an earlier page.
    fn current_page(&mut self) -> String {
        self.replayed_page.take().unwrap_or_else(browser::page)
    }

    fn record_on(
        &mut self,
        kind: EventType,
        name: &str,
        props: &str,
        traits: Option<&str>,
        page: &str,
    ) {
        let o = Occurrence {
            kind,
            name,
            props,
            traits,
            page,
            at_ms: core::mem::take(&mut self.replay_at),
        };
        if let Some(e) = self.tracker.record(o, &browser::context()) {
            self.delivery.push(&e, &mut BrowserNet);
        }
    }

    /// A page view (with the registered properties when `props` is empty): the page shown
    /// before is left, and the new one's engaged time starts.
    fn view(&mut self, props: &str) {
        // A call replayed from before the SDK loaded: the leave happened when the view did.
        let at = self.replay_at;
        self.leave();
        self.replay_at = at;
        let page = self.current_page();
        // Lent out while recording, which does not read it (no copy).
        let registered = core::mem::take(&mut self.registered);
        self.record_on(
            EventType::Page,
            "",
            if props.is_empty() { &registered } else { props },
            None,
            &page,
        );
        self.registered = registered;
        self.engagement.start(now(), browser::is_hidden());
        self.shown = page;
    }

    /// With `trackEngagement`, a `$pageleave` for the page shown, carrying its engaged time.
    fn leave(&mut self) {
        let page = core::mem::take(&mut self.shown);
        if page.is_empty() {
            return;
        }
        if !self.tracker.options.track_engagement {
            return;
        }
        let engaged = self.engagement.engaged_ms(now());
        // The registered properties with `engaged_ms` last (it wins over a registered one).
        let r = &self.registered;
        let mut props = owned(r.strip_suffix("}").unwrap_or("{"));
        if props.len() > 1 {
            props.push_str(",");
        }
        props.push_str("\"engaged_ms\":");
        write_u64(&mut props, engaged.max(0) as u64);
        props.push_str("}");
        self.record_on(EventType::Track, "$pageleave", &props, None, &page);
    }

    /// After `history.pushState` (`replace` false), `replaceState` (true) or `popstate`
    /// (false): a page view when the page changed. A push or a traversal changes it when the
    /// URL does (the fragment aside); a replace only when the path does, as routers replace
    /// the state of the page they show.
    fn navigated(&mut self, replace: bool) {
        let now = browser::page();
        // Line 0 is the URL, line 1 the path.
        let part = |page: &str| {
            let line = fields(page, b'\n')
                .nth(usize::from(replace))
                .unwrap_or_default();
            owned(fields(line, b'#').next().unwrap_or_default())
        };
        let changed = self.shown.is_empty() || part(&self.shown) != part(&now);
        if changed {
            self.view("");
        }
    }

    fn later(&mut self, what: Later) {
        if what == Later::Drain && now() - self.orphans_checked > ORPHANS_EVERY_MS {
            self.adopt_orphans();
        }
        self.delivery.run(what, &mut BrowserNet);
    }

    fn clear_registered(&mut self) {
        self.registered = owned("{}");
    }
}

/// What the host tells the wasm, one export for all (each export costs its own glue and its
/// own borrow of the state): `event` 0 to 6 an event of the page (`listen` in `host/page.js`;
/// for 3, `pageshow`, `x` is 1 for a page back from the back/forward cache); 7 the work for
/// later that the host was asked for has come (`x` its [`Later`] number: at the end of the
/// task, or a timer); 8 the next event is a call the loader kept, made at `x`; 20 to 26 the
/// calls without text (see [`act`]), whose answer is the return value (false for the others);
/// 30 to 33 a read of the page's (see [`read`]), answered through the host's `got`; 1000 and
/// up the answer to a send (see [`Sdk::on`]).
#[wasm_bindgen(js_name = _on)]
pub fn on(event: u32, x: f64) -> bool {
    with_sdk(|s| match event {
        20..=26 => act(s, event - 20),
        30..=33 => {
            read(s, event - 30);
            false
        }
        _ => {
            s.on(event, x);
            false
        }
    }) == Some(true)
}

/// Properties as the host hands them: JSON text of an object, or empty for none (`{}`).
fn props(text: &str) -> &str {
    if text.len() > DEFAULT_MAX_EVENT_BYTES / 2 {
        browser::warn("properties over 16 KB; ignored");
        return "{}";
    }
    if text.starts_with("{") {
        text
    } else {
        "{}"
    }
}

/// The calls that hand in text, as the host's adapter makes them (one export for all: each
/// string export costs its own glue): `kind` 0 `page(props)`, 1 `track(name, props)`, 2
/// `identify(name, traits)`, 3 `setUserProperties(traits)`, where `json` is the properties'
/// JSON text (with the registered ones merged in for `page` and `track`); 4 `register` and
/// `unregister` (`json`: all the registered properties now); 5 the page of a replayed call
/// (`name`: see [`replay_page`]); 6 and 7 the host's answer to the request for Web Lock
/// `name` (one answer a request): 6 while the lock is held, 7 at once when another tab holds
/// it; 8 `init` (`json`: the options as the host lists them, see [`init`]).
#[wasm_bindgen(js_name = _record)]
pub fn record(kind: u32, name: browser::Text, json: browser::Text) {
    let (name, json) = (name.as_str(), json.as_str());
    match kind {
        4 => return set_registered(json),
        5 => return replay_page(name),
        8 => return init(json),
        6 | 7 => {
            with_sdk(|s| s.locked(name, kind == 6));
            return;
        }
        _ => {}
    }
    // `track` and `identify` need a name (the others have none, and do not read it).
    if (kind == 1 || kind == 2) && (name.is_empty() || name.len() > 200) {
        return browser::warn(if kind == 1 {
            "track needs a name of 1-200 characters; dropped"
        } else {
            "identify needs a user ID of 1-200 characters; ignored"
        });
    }
    let p = props(json);
    recording(|s| match kind {
        0 => s.view(p),
        1 => s.record(EventType::Track, name, p, None),
        // Traits become user properties.
        2 => s.record(EventType::Identify, name, "{}", Some(p)),
        _ => s.record(EventType::Set, name, "{}", Some(p)),
    });
}

/// `register`/`unregister` changed the registered properties (the host's object, as JSON
/// text): kept across page loads.
fn set_registered(json: &str) {
    let json = props(json);
    with_sdk(|s| {
        s.tracker.set_registered(json);
        s.registered = owned(json);
    });
}

/// The calls without text (through [`on`], as `20 + what`): `what` 0 `reset()` (logout: new
/// anonymous ID and session, user ID and registered properties cleared), 1 `optOut()`
/// (nothing is sent or stored from now on but the opt-out itself), 2 `optIn()`, 3
/// `isOptedOut()`; 6 `flush()`, true when the host is to wait for `flushed` (false before
/// `init`: nothing to wait for). The answer of 3 and 6 is the return value; the others return
/// false. (4 and 5, the early hide of a page whose SDK had not started, are no longer sent: the
/// script tag starts the SDK as soon as it has the wasm's bytes; they count as 6.)
fn act(s: &mut Sdk, what: u32) -> bool {
    match what {
        0 => {
            s.tracker.reset();
            s.clear_registered();
            false
        }
        1 => {
            s.tracker.opt_out();
            s.clear_registered();
            s.delivery.clear(&mut BrowserNet);
            false
        }
        2 => {
            s.tracker.opt_in();
            false
        }
        3 => s.tracker.is_opted_out(),
        _ => {
            s.delivery.flush(&mut BrowserNet);
            true
        }
    }
}

/// What the page can read (through [`on`], as `30 + what`; the text goes to the host's `got`,
/// which saves the glue and the copy of a returned string): `what` 0 the anonymous ID, 1 the
/// session ID, 2 the user ID, 3 the registered properties as JSON text (the host keeps them
/// as an object to merge into the page's calls); none before `init` (the host reads "").
fn read(s: &Sdk, what: u32) {
    let session;
    let text = match what {
        0 => s.tracker.anonymous_id(),
        1 => {
            session = s.tracker.session_id();
            session.as_deref()
        }
        2 => s.tracker.user_id(),
        _ => Some(s.registered.as_str()),
    };
    browser::got(text.unwrap_or_default());
}

/// Used by the script tag's replay of calls kept by a page that went before its SDK had
/// started: the next event happened on that page (its URL, path, title and referrer, one a
/// line).
fn replay_page(page: &str) {
    with_sdk(|s| s.replayed_page = Some(owned(page)));
}
