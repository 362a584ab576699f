//! The tracker: identity, sessions and event building. It owns no browser object; the browser
//! layer hands it the page and context of each event and puts the event it returns in the
//! outbox.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::options::{Options, SessionScope};
use crate::platform::fields;
use crate::platform::{uuid_v7, Clock, Entropy, Storage};
use crate::session::{Rules, Sessions, SESSION_KEY};
use footfall_wire::{json, EventType};

/// Storage key of the anonymous ID (the `ff_id` cookie).
pub const ANON_KEY: &str = "ff_id";
/// Storage key of the identified user ID.
pub const USER_KEY: &str = "ff_uid";
/// Storage key of the properties given to `register`, as JSON.
pub const REGISTERED_KEY: &str = "ff_reg";
/// Storage key of the opt-out (`"1"`), the one thing kept for an opted-out visitor.
pub const OPT_OUT_KEY: &str = "ff_optout";

/// User input counts as activity at most this often.
pub const INPUT_THROTTLE_MS: i64 = 5_000;

pub struct Tracker<C, S, E> {
    pub options: Options,
    clock: C,
    /// Storage every tab sees: identity, and the session in `"browser"` scope.
    shared: S,
    /// This tab's storage: the session in `"tab"` scope.
    tab: S,
    rng: E,
    sessions: Sessions,
    /// Empty while opted out.
    anonymous_id: String,
    /// Empty when none.
    user_id: String,
    /// Do Not Track / Global Privacy Control, when `respectDnt` is on.
    dnt: bool,
    /// When the tab was hidden; 0 while it is not.
    hidden_at: i64,
    /// When input last counted; 0 before any.
    last_input_ms: i64,
}

/// What the page tells the tracker about one event.
pub struct Occurrence<'a> {
    pub kind: EventType,
    pub name: &'a str,
    /// JSON text of an object.
    pub props: &'a str,
    pub traits: Option<&'a str>,
    /// The page's URL, path, title and referrer, one a line (as the host reads them).
    pub page: &'a str,
    /// When it happened, if earlier than now (calls queued before the SDK loaded); 0 for now.
    pub at_ms: i64,
}

impl<C: Clock, S: Storage, E: Entropy> Tracker<C, S, E> {
    /// Starts tracking: reads the visitor's anonymous ID or makes one, and renews it. `dnt`
    /// says the browser asks not to be tracked (only heeded with `respectDnt`).
    pub fn new(mut options: Options, clock: C, shared: S, tab: S, rng: E, dnt: bool) -> Self {
        options.sanitize();
        let sessions = Sessions {
            rules: Rules {
                timeout_ms: options.session_timeout_ms,
                max_duration_ms: options.max_session_duration_ms,
            },
        };
        let mut t = Tracker {
            dnt: dnt && options.respect_dnt,
            options,
            clock,
            shared,
            tab,
            rng,
            sessions,
            anonymous_id: String::new(),
            user_id: String::new(),
            hidden_at: 0,
            last_input_ms: 0,
        };
        t.load_identity();
        t
    }

    fn load_identity(&mut self) {
        if self.is_opted_out() {
            return;
        }
        self.anonymous_id = self.shared.text(ANON_KEY);
        if self.anonymous_id.len() != 36 {
            self.anonymous_id = uuid_v7(&mut self.rng, self.clock.now_ms());
        }
        self.shared.set(ANON_KEY, &self.anonymous_id);
        self.user_id = self.shared.text(USER_KEY);
    }

    /// Where the session lives: shared by all tabs, or this tab's own.
    fn session_storage(&mut self) -> &mut S {
        match self.options.session_scope {
            SessionScope::Browser => &mut self.shared,
            SessionScope::Tab => &mut self.tab,
        }
    }

    pub fn anonymous_id(&self) -> Option<&str> {
        (!self.anonymous_id.is_empty()).then_some(self.anonymous_id.as_str())
    }

    pub fn user_id(&self) -> Option<&str> {
        (!self.user_id.is_empty()).then_some(self.user_id.as_str())
    }

    /// The ID of the session that runs now, if one does.
    pub fn session_id(&self) -> Option<String> {
        let storage = match self.options.session_scope {
            SessionScope::Browser => &self.shared,
            SessionScope::Tab => &self.tab,
        };
        self.sessions
            .current(storage, self.clock.now_ms())
            .map(|s| s.id)
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn is_opted_out(&self) -> bool {
        self.dnt || self.shared.text(OPT_OUT_KEY) == "1"
    }

    /// Consent withdrawn: forget everything (cookie, user, session) but the opt-out.
    pub fn opt_out(&mut self) {
        self.shared.set(OPT_OUT_KEY, "1");
        self.shared.remove(ANON_KEY);
        self.shared.remove(USER_KEY);
        self.shared.remove(REGISTERED_KEY);
        self.shared.remove(SESSION_KEY);
        self.tab.remove(SESSION_KEY);
        self.anonymous_id.clear();
        self.user_id.clear();
    }

    /// Consent given again: a new anonymous visitor from now on.
    pub fn opt_in(&mut self) {
        self.shared.remove(OPT_OUT_KEY);
        self.load_identity();
    }

    /// Logout: a new anonymous ID and session; user ID and registered properties cleared.
    pub fn reset(&mut self) {
        if self.is_opted_out() {
            return;
        }
        self.user_id.clear();
        self.shared.remove(USER_KEY);
        self.shared.remove(REGISTERED_KEY);
        self.session_storage().remove(SESSION_KEY);
        self.anonymous_id = uuid_v7(&mut self.rng, self.clock.now_ms());
        self.shared.set(ANON_KEY, &self.anonymous_id);
    }

    /// The properties given to `register`, as JSON text (empty for none).
    pub fn registered(&self) -> String {
        self.shared.text(REGISTERED_KEY)
    }

    pub fn set_registered(&mut self, json: &str) {
        if self.is_opted_out() {
            return;
        }
        if json == "{}" {
            self.shared.remove(REGISTERED_KEY);
        } else {
            self.shared.set(REGISTERED_KEY, json);
        }
    }

    /// User input (pointer, key, scroll, touch): keeps the session alive or starts one.
    /// Throttled to one per [`INPUT_THROTTLE_MS`].
    pub fn input(&mut self) {
        let now = self.clock.now_ms();
        if self.is_opted_out() || (0..INPUT_THROTTLE_MS).contains(&(now - self.last_input_ms)) {
            return;
        }
        self.last_input_ms = now;
        self.touch(false);
    }

    fn touch(&mut self, numbered: bool) -> crate::session::Session {
        let storage = match self.options.session_scope {
            SessionScope::Browser => &mut self.shared,
            SessionScope::Tab => &mut self.tab,
        };
        self.sessions
            .touch(storage, &self.clock, &mut self.rng, numbered)
    }

    /// The tab was hidden (the user switched tabs or minimised the window).
    pub fn hidden(&mut self) {
        self.hidden_at = self.clock.now_ms();
    }

    /// The tab is visible again. With `endSessionOnHidden`, a tab hidden longer than
    /// `hiddenGrace` ends its session, unless some tab was active on it meanwhile (in
    /// `"browser"` scope the session is shared: another tab's use keeps it).
    pub fn visible(&mut self) {
        let hidden_at = core::mem::take(&mut self.hidden_at);
        if hidden_at == 0 {
            return;
        }
        let now = self.clock.now_ms();
        if !self.options.ends_session_on_hidden() || now - hidden_at <= self.options.hidden_grace_ms
        {
            return;
        }
        let sessions = &self.sessions;
        let storage = match self.options.session_scope {
            SessionScope::Browser => &mut self.shared,
            SessionScope::Tab => &mut self.tab,
        };
        if sessions
            .current(storage, now)
            .is_some_and(|s| s.last_ms <= hidden_at)
        {
            sessions.end(storage);
        }
    }

    /// Records one event: its JSON, for the outbox. Opted out, nothing is recorded.
    /// `context` is the screen, viewport, language and time zone, one a line.
    pub fn record(&mut self, o: Occurrence, context: &str) -> Option<String> {
        if self.is_opted_out() {
            return None;
        }
        let session = self.touch(true);
        let now = self.clock.now_ms();
        let at = if o.at_ms > 0 && o.at_ms <= now {
            o.at_ms
        } else {
            now
        };
        if o.kind == EventType::Identify {
            self.user_id = crate::platform::owned(o.name);
            self.shared.set(USER_KEY, o.name);
        }
        // The JSON of product.md's event, written at once (`event_id` first: see
        // `outbox::id_of`).
        let mut e = String::new();
        e.reserve(1024);
        e.push_str("{\"event_id\":\"");
        e.push_str(&uuid_v7(&mut self.rng, at));
        // The type and, but for `track`, the name: constants.
        e.push_str(match o.kind {
            EventType::Page => "\",\"type\":\"page\",\"name\":\"$pageview\"",
            EventType::Identify => "\",\"type\":\"identify\",\"name\":\"$identify\"",
            EventType::Set => "\",\"type\":\"set\",\"name\":\"$set\"",
            EventType::Track => "\",\"type\":\"track\",\"name\":",
        });
        if o.kind == EventType::Track {
            json::write_str(&mut e, o.name);
        }
        e.push_str(",\"timestamp\":\"");
        e.push_str(&self.clock.timestamp(at));
        e.push_str("\",\"anonymous_id\":");
        json::write_str(&mut e, &self.anonymous_id);
        e.push_str(",\"user_id\":");
        if self.user_id.is_empty() {
            e.push_str("null");
        } else {
            json::write_str(&mut e, &self.user_id);
        }
        e.push_str(",\"session_id\":");
        json::write_str(&mut e, &session.id);
        e.push_str(",\"seq\":");
        json::write_u64(&mut e, session.seq);
        e.push_str(",\"page\":");
        lines_as_object(
            &mut e,
            &["{\"url\":", ",\"path\":", ",\"title\":", ",\"referrer\":"],
            o.page,
        );
        e.push_str("},\"context\":");
        lines_as_object(
            &mut e,
            &[
                "{\"screen\":",
                ",\"viewport\":",
                ",\"language\":",
                ",\"timezone\":",
            ],
            context,
        );
        e.push_str(",\"sdk\":\"");
        e.push_str(crate::SDK_VERSION);
        e.push_str("\"},\"props\":");
        e.push_str(o.props);
        if let Some(t) = o.traits {
            e.push_str(",\"traits\":");
            e.push_str(t);
        }
        e.push_str("}");
        Some(e)
    }
}

/// Writes `{"key":"line",...` (unclosed) from `keys` (each with its JSON before the value:
/// `{"url":`, `,"path":`, ...) and the lines of `text`, missing lines empty, extra ones
/// ignored.
fn lines_as_object(out: &mut String, keys: &[&str], text: &str) {
    let mut values = fields(text, b'\n');
    for k in keys {
        out.push_str(k);
        json::write_str(out, values.next().unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::{FakeClock, MemStorage, SeqEntropy};

    const T0: i64 = 1_795_428_000_000;

    fn tracker(
        store: &MemStorage,
        clock: &FakeClock,
    ) -> Tracker<FakeClock, MemStorage, SeqEntropy> {
        let options = Options {
            key: "demo".into(),
            endpoint: "http://c.test".into(),
            batch_size: 3,
            ..Options::default()
        };
        Tracker::new(
            options,
            clock.clone(),
            store.clone(),
            MemStorage::default(),
            SeqEntropy(3),
            false,
        )
    }

    fn track(name: &str) -> Occurrence<'_> {
        Occurrence {
            kind: EventType::Track,
            name,
            props: r#"{"plan":"pro"}"#,
            traits: None,
            page: "http://c.test/p\n/p",
            at_ms: 0,
        }
    }

    use footfall_wire::Event;

    #[derive(serde::Deserialize)]
    struct Envelope {
        key: String,
        events: Vec<Event>,
    }

    #[test]
    fn the_anonymous_id_is_kept_across_page_loads() {
        let store = MemStorage::default();
        let clock = FakeClock::at(T0);
        let a = tracker(&store, &clock).anonymous_id().unwrap().to_owned();
        let b = tracker(&store, &clock).anonymous_id().unwrap().to_owned();
        assert_eq!(a, b);
        assert_eq!(store.get(ANON_KEY).as_deref(), Some(a.as_str()));
    }

    #[test]
    fn events_encode_to_a_batch_the_collector_reads() {
        let store = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut t = tracker(&store, &clock);
        let mut chunk = vec![t.record(track("a"), "").unwrap()];
        clock.advance(1000);
        chunk.push(t.record(track("b"), "").unwrap());
        chunk.push(t.record(track("c"), "").unwrap());
        let body = crate::delivery::batch_body(
            &t.options.key,
            &footfall_wire::time::rfc3339_millis(t.now_ms()),
            &chunk.join("\n"),
        );
        let env: Envelope = serde_json::from_str(&body).unwrap();
        assert_eq!(env.key, "demo");
        let seqs: Vec<u64> = env.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert!(env
            .events
            .iter()
            .all(|e| e.session_id == env.events[0].session_id));
        assert!(env
            .events
            .iter()
            .all(|e| Some(e.anonymous_id.as_str()) == t.anonymous_id()));
        assert_eq!(env.events[1].timestamp, "2026-11-23T10:00:01.000Z");
        assert_eq!(env.events[0].props.as_str(), r#"{"plan":"pro"}"#);
    }

    #[test]
    fn page_and_context_come_from_the_hosts_lines() {
        let store = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut t = tracker(&store, &clock);
        let full = Occurrence {
            page: "https://s.example/a?b=1\n/a\nA \"title\"\nhttps://r.example/",
            ..track("a")
        };
        let e: Event = serde_json::from_str(
            &t.record(full, "1920x1080\n800x600\nde-CH\nEurope/Zurich\nmore")
                .unwrap(),
        )
        .unwrap();
        assert_eq!(e.page.url, "https://s.example/a?b=1");
        assert_eq!(e.page.path, "/a");
        assert_eq!(e.page.title, "A \"title\"");
        assert_eq!(e.page.referrer, "https://r.example/");
        assert_eq!(e.context.screen, "1920x1080");
        assert_eq!(e.context.viewport, "800x600");
        assert_eq!(e.context.language, "de-CH");
        assert_eq!(e.context.timezone, "Europe/Zurich", "extra lines ignored");
        assert_eq!(e.context.sdk, crate::SDK_VERSION);
        // Missing lines are empty.
        let short = Occurrence {
            page: "https://s.example/",
            ..track("b")
        };
        let e: Event = serde_json::from_str(&t.record(short, "").unwrap()).unwrap();
        assert_eq!(e.page.url, "https://s.example/");
        assert_eq!((e.page.path.as_str(), e.page.referrer.as_str()), ("", ""));
        assert_eq!(e.context.screen, "");
    }

    #[test]
    fn identify_sets_the_user_on_later_events_and_across_loads() {
        let store = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut t = tracker(&store, &clock);
        let identify = t.record(
            Occurrence {
                kind: EventType::Identify,
                name: "ann@example.com",
                traits: Some(r#"{"plan":"pro"}"#),
                ..track("")
            },
            "",
        );
        let after = t.record(track("after"), "");
        let chunk = [identify.unwrap(), after.unwrap()];
        let body = crate::delivery::batch_body(
            &t.options.key,
            &footfall_wire::time::rfc3339_millis(t.now_ms()),
            &chunk.join("\n"),
        );
        let env: Envelope = serde_json::from_str(&body).unwrap();
        assert_eq!(env.events[0].name, "$identify");
        assert_eq!(env.events[0].user_id.as_deref(), Some("ann@example.com"));
        assert_eq!(env.events[1].user_id.as_deref(), Some("ann@example.com"));
        assert_eq!(tracker(&store, &clock).user_id(), Some("ann@example.com"));
    }
}

/// The consent, reset, visibility and input rules.
#[cfg(test)]
mod rule_tests {
    use super::*;
    use crate::platform::fake::{FakeClock, MemStorage, SeqEntropy};

    const T0: i64 = 1_795_428_000_000;
    const MIN: i64 = 60_000;

    struct Tab {
        t: Tracker<FakeClock, MemStorage, SeqEntropy>,
    }

    fn tab(shared: &MemStorage, clock: &FakeClock, o: Options, seed: u64) -> Tab {
        let o = Options {
            key: "k".into(),
            ..o
        };
        Tab {
            t: Tracker::new(
                o,
                clock.clone(),
                shared.clone(),
                MemStorage::default(),
                SeqEntropy(seed),
                false,
            ),
        }
    }

    impl Tab {
        fn event(&mut self) -> Option<String> {
            self.t.record(
                Occurrence {
                    kind: EventType::Track,
                    name: "e",
                    props: "{}",
                    traits: None,
                    page: "",
                    at_ms: 0,
                },
                "",
            );
            self.t.session_id()
        }
    }

    #[test]
    fn opting_out_forgets_everything_but_the_opt_out() {
        let shared = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut a = tab(&shared, &clock, Options::default(), 1);
        let before = a.t.anonymous_id().unwrap().to_owned();
        a.event();
        a.t.opt_out();
        assert!(a.t.is_opted_out());
        assert_eq!(a.t.anonymous_id(), None);
        assert_eq!(
            a.t.record(
                Occurrence {
                    kind: EventType::Track,
                    name: "e",
                    props: "{}",
                    traits: None,
                    page: "",
                    at_ms: 0,
                },
                "",
            ),
            None,
            "nothing recorded while opted out"
        );
        let keys: Vec<String> = shared.0.borrow().keys().cloned().collect();
        assert_eq!(keys, [OPT_OUT_KEY], "only the opt-out is stored");
        // Kept across page loads.
        let mut b = tab(&shared, &clock, Options::default(), 2);
        assert!(b.t.is_opted_out());
        b.t.opt_in();
        assert!(!b.t.is_opted_out());
        let after = b.t.anonymous_id().unwrap().to_owned();
        assert_ne!(before, after, "a new visitor after opting in again");
        assert!(b.event().is_some());
    }

    #[test]
    fn do_not_track_is_heeded_only_with_respect_dnt() {
        let shared = MemStorage::default();
        let clock = FakeClock::at(T0);
        let make = |respect_dnt| {
            let o = Options {
                key: "k".into(),
                respect_dnt,
                ..Options::default()
            };
            Tracker::new(
                o,
                clock.clone(),
                shared.clone(),
                MemStorage::default(),
                SeqEntropy(1),
                true,
            )
        };
        assert!(!make(false).is_opted_out());
        shared.0.borrow_mut().clear();
        let t = make(true);
        assert!(t.is_opted_out());
        assert_eq!(t.anonymous_id(), None);
        assert!(shared.0.borrow().is_empty(), "no cookie for a DNT visitor");
    }

    #[test]
    fn reset_gives_a_new_visitor_and_session() {
        let shared = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut a = tab(&shared, &clock, Options::default(), 1);
        let s1 = a.event();
        a.t.record(
            Occurrence {
                kind: EventType::Identify,
                name: "ann",
                props: "{}",
                traits: None,
                page: "",
                at_ms: 0,
            },
            "",
        );
        a.t.set_registered(r#"{"plan":"pro"}"#);
        let anon = a.t.anonymous_id().unwrap().to_owned();
        a.t.reset();
        assert_eq!(a.t.user_id(), None);
        assert_eq!(a.t.registered(), "");
        assert_ne!(a.t.anonymous_id().unwrap(), anon);
        assert_eq!(a.t.session_id(), None);
        assert_ne!(a.event(), s1);
        assert_eq!(
            tab(&shared, &clock, Options::default(), 9).t.user_id(),
            None
        );
    }

    #[test]
    fn input_keeps_the_session_alive_and_is_throttled() {
        let shared = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut a = tab(&shared, &clock, Options::default(), 1);
        let s = a.event();
        for _ in 0..5 {
            clock.advance(25 * MIN);
            a.t.input();
        }
        assert_eq!(
            a.event(),
            s,
            "2 hours of reading and scrolling is one session"
        );
        let stored = shared.get(crate::session::SESSION_KEY).unwrap();
        clock.advance(1000);
        a.t.input();
        assert_eq!(
            shared.get(crate::session::SESSION_KEY).unwrap(),
            stored,
            "input within the throttle writes nothing"
        );
    }

    #[test]
    fn a_tab_hidden_longer_than_the_grace_ends_its_session() {
        let shared = MemStorage::default();
        let clock = FakeClock::at(T0);
        let o = Options {
            end_session_on_hidden: Some(true),
            hidden_grace_ms: 60_000,
            ..Options::default()
        };
        let mut a = tab(&shared, &clock, o.clone(), 1);
        let s1 = a.event();
        a.t.hidden();
        clock.advance(60_000);
        a.t.visible();
        assert_eq!(a.event(), s1, "hidden for exactly the grace");
        a.t.hidden();
        clock.advance(60_001);
        a.t.visible();
        let s2 = a.event();
        assert_ne!(s2, s1);
        // In browser scope, another tab's use while this one was hidden keeps the session.
        let mut b = tab(&shared, &clock, o, 2);
        a.t.hidden();
        clock.advance(2 * MIN);
        assert_eq!(b.event(), s2);
        a.t.visible();
        assert_eq!(a.event(), s2);
    }

    #[test]
    fn without_the_option_hiding_changes_nothing() {
        let shared = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut a = tab(&shared, &clock, Options::default(), 1);
        let s = a.event();
        a.t.hidden();
        clock.advance(20 * MIN);
        a.t.visible();
        assert_eq!(a.event(), s);
    }

    #[test]
    fn tab_scope_gives_each_tab_its_own_session() {
        let shared = MemStorage::default();
        let clock = FakeClock::at(T0);
        let o = Options {
            session_scope: SessionScope::Tab,
            ..Options::default()
        };
        let mut a = tab(&shared, &clock, o.clone(), 1);
        let mut b = tab(&shared, &clock, o, 2);
        assert_eq!(a.t.anonymous_id(), b.t.anonymous_id(), "one visitor");
        assert_ne!(a.event(), b.event());
    }
}

/// The SDK's events against the golden wire fixture the collector's tests read too.
#[cfg(test)]
mod fixture_tests {
    use super::*;
    use crate::platform::fake::{FakeClock, MemStorage, SeqEntropy};
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn keys(v: &Value) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        if let Value::Object(m) = v {
            for (k, v) in m {
                out.insert(k.clone());
                if k == "page" || k == "context" {
                    for sub in keys(v) {
                        out.insert(format!("{k}.{sub}"));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_sdk_writes_the_fields_of_the_golden_batch() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/batch-basic.json"
        );
        let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut t = Tracker::new(
            Options {
                key: "demo".into(),
                ..Options::default()
            },
            FakeClock::at(1_795_428_001_004),
            MemStorage::default(),
            MemStorage::default(),
            SeqEntropy(11),
            false,
        );
        let page = String::from("https://shop.example/p?utm_source=x\n/p\nP\n");
        let mut chunk = Vec::new();
        for (kind, name, traits) in [
            (EventType::Page, "", None),
            (EventType::Track, "signup_clicked", None),
            (
                EventType::Identify,
                "ann@example.com",
                Some(r#"{"plan":"pro"}"#),
            ),
        ] {
            chunk.extend(t.record(
                Occurrence {
                    kind,
                    name,
                    props: "{}",
                    traits,
                    page: &page,
                    at_ms: 0,
                },
                "",
            ));
        }
        let ours: Value = serde_json::from_str(&crate::delivery::batch_body(
            &t.options.key,
            &footfall_wire::time::rfc3339_millis(t.now_ms()),
            &chunk.join("\n"),
        ))
        .unwrap();
        assert_eq!(keys(&ours), keys(&golden));
        for (mine, gold) in ours["events"]
            .as_array()
            .unwrap()
            .iter()
            .zip(golden["events"].as_array().unwrap())
        {
            assert_eq!(keys(mine), keys(gold));
            for k in ["type", "name", "user_id", "page", "timestamp"] {
                if k == "timestamp" {
                    assert_eq!(
                        mine[k].as_str().unwrap().len(),
                        gold[k].as_str().unwrap().len()
                    );
                } else {
                    assert_eq!(mine[k], gold[k], "{k}");
                }
            }
        }
    }
}
