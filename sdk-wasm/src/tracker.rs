//! The tracker: identity, event building and the send queue. It owns no browser object; the
//! browser layer hands it the page and context of each event and sends what it drains.

use crate::options::Options;
use crate::platform::{uuid_v4, uuid_v7, Clock, Entropy, Storage};
use crate::session::{Rules, Sessions};
use footfall_wire::{json, time, Context, Event, EventType, Page, RawJson};

/// Storage key of the anonymous ID (the `ff_id` cookie).
pub const ANON_KEY: &str = "ff_id";
/// Storage key of the identified user ID.
pub const USER_KEY: &str = "ff_uid";

/// Largest body of one send: beacons are limited to 64 KB, keep a margin for the envelope.
pub const MAX_SEND_BYTES: usize = 60 * 1024;

pub struct Tracker<C, S, E> {
    pub options: Options,
    clock: C,
    storage: S,
    rng: E,
    sessions: Sessions,
    anonymous_id: String,
    user_id: Option<String>,
    /// Events not yet acknowledged, each already encoded as JSON.
    queue: Vec<String>,
}

/// What the page tells the tracker about one event.
pub struct Occurrence {
    pub kind: EventType,
    pub name: String,
    pub props: RawJson,
    pub traits: Option<RawJson>,
    pub page: Page,
    /// When it happened, if earlier than now (calls queued before the SDK loaded).
    pub at_ms: Option<i64>,
}

impl<C: Clock, S: Storage, E: Entropy> Tracker<C, S, E> {
    /// Starts tracking: reads the visitor's anonymous ID or makes one, and renews it.
    pub fn new(options: Options, clock: C, mut storage: S, mut rng: E) -> Self {
        let options = options.sanitized();
        let anonymous_id = storage
            .get(ANON_KEY)
            .filter(|id| id.len() == 36)
            .unwrap_or_else(|| uuid_v4(&mut rng));
        storage.set(ANON_KEY, &anonymous_id);
        let user_id = storage.get(USER_KEY).filter(|u| !u.is_empty());
        let sessions = Sessions {
            rules: Rules {
                timeout_ms: options.session_timeout_ms,
                max_duration_ms: options.max_session_duration_ms,
            },
        };
        Tracker {
            options,
            clock,
            storage,
            rng,
            sessions,
            anonymous_id,
            user_id,
            queue: Vec::new(),
        }
    }

    pub fn anonymous_id(&self) -> &str {
        &self.anonymous_id
    }

    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The ID of the session that runs now, if one does.
    pub fn session_id(&self) -> Option<String> {
        self.sessions
            .current(&self.storage, self.clock.now_ms())
            .map(|s| s.id)
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Records one event; returns true when the queue has reached `batchSize`.
    pub fn record(&mut self, o: Occurrence, context: &Context) -> bool {
        let session = self
            .sessions
            .touch(&mut self.storage, &self.clock, &mut self.rng, true);
        let now = self.clock.now_ms();
        let at = o.at_ms.filter(|&t| t <= now).unwrap_or(now);
        if o.kind == EventType::Identify {
            self.set_user_id(&o.name);
        }
        let event = Event {
            event_id: uuid_v7(&mut self.rng, at),
            kind: o.kind,
            name: match o.kind {
                EventType::Page => "$pageview".into(),
                EventType::Identify => "$identify".into(),
                EventType::Set => "$set".into(),
                EventType::Track => o.name,
            },
            timestamp: time::rfc3339_millis(at),
            anonymous_id: self.anonymous_id.clone(),
            user_id: self.user_id.clone(),
            session_id: session.id,
            seq: session.seq,
            page: o.page,
            context: context.clone(),
            props: o.props,
            traits: o.traits,
        };
        self.queue.push(json::event_to_string(&event));
        self.queue.len() >= self.options.batch_size
    }

    fn set_user_id(&mut self, user_id: &str) {
        self.user_id = Some(user_id.to_owned());
        self.storage.set(USER_KEY, user_id);
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Takes queued events for one send, in order, up to `max_bytes` of body. An event larger
    /// than that alone is sent alone (the collector will say what it thinks of it).
    pub fn take_chunk(&mut self, max_bytes: usize) -> Vec<String> {
        let mut size = 128;
        let mut n = 0;
        for e in &self.queue {
            if n > 0 && size + e.len() + 1 > max_bytes {
                break;
            }
            size += e.len() + 1;
            n += 1;
        }
        self.queue.drain(..n).collect()
    }

    /// Puts events whose send failed back at the front of the queue.
    pub fn requeue(&mut self, mut events: Vec<String>) {
        events.append(&mut self.queue);
        self.queue = events;
    }

    /// The body of one batch around already-encoded events.
    pub fn batch_body(&self, events: &[String]) -> String {
        let sent_at = time::rfc3339_millis(self.clock.now_ms());
        json::batch_from_encoded(
            &self.options.key,
            &sent_at,
            events.iter().map(String::as_str),
        )
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
        Tracker::new(options, clock.clone(), store.clone(), SeqEntropy(3))
    }

    fn track(name: &str) -> Occurrence {
        Occurrence {
            kind: EventType::Track,
            name: name.into(),
            props: RawJson(r#"{"plan":"pro"}"#.into()),
            traits: None,
            page: Page {
                url: "http://c.test/p".into(),
                path: "/p".into(),
                ..Page::default()
            },
            at_ms: None,
        }
    }

    #[derive(serde::Deserialize)]
    struct Envelope {
        key: String,
        events: Vec<Event>,
    }

    #[test]
    fn the_anonymous_id_is_kept_across_page_loads() {
        let store = MemStorage::default();
        let clock = FakeClock::at(T0);
        let a = tracker(&store, &clock).anonymous_id().to_owned();
        let b = tracker(&store, &clock).anonymous_id().to_owned();
        assert_eq!(a, b);
        assert_eq!(store.get(ANON_KEY).as_deref(), Some(a.as_str()));
    }

    #[test]
    fn events_encode_to_a_batch_the_collector_reads() {
        let store = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut t = tracker(&store, &clock);
        assert!(!t.record(track("a"), &Context::default()));
        clock.advance(1000);
        assert!(!t.record(track("b"), &Context::default()));
        assert!(
            t.record(track("c"), &Context::default()),
            "batchSize reached"
        );
        let chunk = t.take_chunk(MAX_SEND_BYTES);
        let body = t.batch_body(&chunk);
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
            .all(|e| e.anonymous_id == t.anonymous_id()));
        assert_eq!(env.events[1].timestamp, "2026-11-23T10:00:01.000Z");
        assert_eq!(env.events[0].props.as_str(), r#"{"plan":"pro"}"#);
        assert_eq!(t.queued(), 0);
    }

    #[test]
    fn chunks_stay_under_the_limit_and_keep_order() {
        let store = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut t = tracker(&store, &clock);
        for i in 0..50 {
            t.record(track(&"x".repeat(1000 + i)), &Context::default());
        }
        let mut seen = 0;
        while t.queued() > 0 {
            let chunk = t.take_chunk(8 * 1024);
            assert!(t.batch_body(&chunk).len() <= 8 * 1024);
            seen += chunk.len();
        }
        assert_eq!(seen, 50);
    }

    #[test]
    fn requeued_events_go_first() {
        let store = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut t = tracker(&store, &clock);
        t.record(track("a"), &Context::default());
        let chunk = t.take_chunk(MAX_SEND_BYTES);
        t.record(track("b"), &Context::default());
        t.requeue(chunk);
        let again = t.take_chunk(MAX_SEND_BYTES);
        assert!(again[0].contains("\"name\":\"a\""));
        assert!(again[1].contains("\"name\":\"b\""));
    }

    #[test]
    fn identify_sets_the_user_on_later_events_and_across_loads() {
        let store = MemStorage::default();
        let clock = FakeClock::at(T0);
        let mut t = tracker(&store, &clock);
        t.record(
            Occurrence {
                kind: EventType::Identify,
                name: "ann@example.com".into(),
                traits: Some(RawJson(r#"{"plan":"pro"}"#.into())),
                ..track("")
            },
            &Context::default(),
        );
        t.record(track("after"), &Context::default());
        let chunk = t.take_chunk(MAX_SEND_BYTES);
        let body = t.batch_body(&chunk);
        let env: Envelope = serde_json::from_str(&body).unwrap();
        assert_eq!(env.events[0].name, "$identify");
        assert_eq!(env.events[0].user_id.as_deref(), Some("ann@example.com"));
        assert_eq!(env.events[1].user_id.as_deref(), Some("ann@example.com"));
        assert_eq!(tracker(&store, &clock).user_id(), Some("ann@example.com"));
    }
}
