//! The outbox: every recorded event waits here until the collector acknowledged it, and is
//! kept in storage (localStorage) so that a reload or a crash loses nothing.
//!
//! Each tab owns its own outbox under its own key, so no two tabs ever send the same events.
//! The outbox of a tab that is gone (closed, crashed) is adopted by the next tab that finds it
//! (`browser::lock` tells a gone owner from a live one). Bounded by count and bytes: when
//! full, the oldest events go, and are counted.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::platform::Storage;

/// Most events kept.
pub const MAX_EVENTS: usize = 1000;
/// Most bytes of encoded events kept.
pub const MAX_BYTES: usize = 512 * 1024;
/// Storage keys of outboxes start with this, then the owning tab's ID.
pub const PREFIX: &str = "ff_outbox_";

/// The `event_id` of an encoded event (it comes first: `{"event_id":"…"`).
pub fn id_of(event: &str) -> &str {
    event.get(13..49).unwrap_or(event)
}

#[derive(Default)]
pub struct Outbox {
    /// Where it is kept; `None` while not owned yet, or in memory persistence.
    key: Option<String>,
    events: Vec<String>,
    /// Events dropped because the outbox was full.
    pub dropped: usize,
    dirty: bool,
    /// Bytes of all events, kept so that a push costs the same however full the outbox is.
    bytes: usize,
}

/// The events kept under `key`, and when they were saved.
pub fn load(storage: &impl Storage, key: &str) -> (Vec<String>, i64) {
    let text = storage.get(key).unwrap_or_default();
    let mut lines = crate::platform::fields(&text, b'\n');
    let saved_ms = lines
        .next()
        .and_then(|l| l.strip_prefix('t'))
        .and_then(footfall_wire::json::read_i64)
        .unwrap_or(0);
    let events = lines
        .filter(|l| l.starts_with('{'))
        .map(String::from)
        .collect();
    (events, saved_ms)
}

impl Outbox {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Where it is kept, once owned.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn push(&mut self, event: String) {
        self.bytes += event.len();
        self.events.push(event);
        self.dirty = true;
        if self.events.len() > MAX_EVENTS || self.bytes > MAX_BYTES {
            self.bound();
        }
    }

    fn bound(&mut self) {
        self.bytes = self.events.iter().map(String::len).sum();
        let before = self.events.len();
        let mut left = before;
        let bytes = &mut self.bytes;
        // Oldest first; `retain` rather than indexing and `drain`, whose bounds checks would
        // bring `core::fmt` into the wasm.
        self.events.retain(|e| {
            let drop = left > MAX_EVENTS || *bytes > MAX_BYTES;
            if drop {
                *bytes -= e.len();
                left -= 1;
            }
            !drop
        });
        self.dropped += before - left;
        self.dirty = true;
    }

    /// Events from the oldest, skipping `except`, up to `max_bytes` of body (at least one).
    pub fn peek(&self, max_bytes: usize, except: &[String]) -> Vec<String> {
        let mut size = 128;
        let mut out = Vec::new();
        for e in self
            .events
            .iter()
            .filter(|e| !except.iter().any(|x| x == id_of(e)))
        {
            if !out.is_empty() && size + e.len() + 1 > max_bytes {
                break;
            }
            size += e.len() + 1;
            out.push(e.clone());
        }
        out
    }

    /// Removes events the collector answered for.
    pub fn ack(&mut self, sent: &[String]) {
        let ids: Vec<&str> = sent.iter().map(|e| id_of(e)).collect();
        self.events.retain(|e| !ids.contains(&id_of(e)));
        self.bytes = self.events.iter().map(String::len).sum();
        self.dirty = true;
    }

    /// Takes ownership of `key`: what an earlier page of this tab left there goes first.
    pub fn own(&mut self, storage: &impl Storage, key: String) {
        let (mut events, _) = load(storage, &key);
        events.append(&mut self.events);
        self.events = events;
        self.key = Some(key);
        self.bound();
    }

    /// Takes in the outbox of a tab that is gone; its events go before ours.
    pub fn adopt(&mut self, storage: &mut impl Storage, key: &str) {
        let (mut events, _) = load(storage, key);
        storage.remove(key);
        events.retain(|e| !self.events.iter().any(|x| id_of(x) == id_of(e)));
        events.append(&mut self.events);
        self.events = events;
        self.bound();
    }

    /// Writes the outbox to its key, if it changed.
    pub fn save(&mut self, storage: &mut impl Storage, now_ms: i64) {
        let Some(key) = self.key.as_deref().filter(|_| self.dirty) else {
            return;
        };
        if self.events.is_empty() {
            storage.remove(key);
        } else {
            let mut text = String::from("t");
            footfall_wire::json::write_u64(&mut text, now_ms.max(0) as u64);
            for e in &self.events {
                text.push('\n');
                text.push_str(e);
            }
            storage.set(key, &text);
        }
        self.dirty = false;
    }

    /// Forgets every event (opt-out), in storage too at the next save.
    pub fn clear(&mut self) {
        self.events.clear();
        self.bytes = 0;
        self.dirty = true;
    }

    pub fn events(&self) -> &[String] {
        &self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::MemStorage;

    fn ev(n: usize, pad: usize) -> String {
        format!(
            "{{\"event_id\":\"019ab0b4-0000-7000-8000-{n:012x}\",\"p\":\"{}\"}}",
            "x".repeat(pad)
        )
    }

    #[test]
    fn events_survive_a_reload_until_acknowledged() {
        let mut store = MemStorage::default();
        let mut a = Outbox::default();
        a.own(&store, "ff_outbox_t1".into());
        for n in 0..5 {
            a.push(ev(n, 10));
        }
        a.save(&mut store, 1_000);
        let sent = a.peek(usize::MAX, &[]);
        assert_eq!(sent.len(), 5);
        a.ack(&sent[..2]);
        a.save(&mut store, 2_000);

        // The page reloads: a new outbox with an event recorded before it owned the key.
        let mut b = Outbox::default();
        b.push(ev(9, 10));
        b.own(&store, "ff_outbox_t1".into());
        let ids: Vec<&str> = b.events().iter().map(|e| id_of(e)).collect();
        assert_eq!(ids, [2, 3, 4, 9].map(|n| id_of(&ev(n, 0)).to_owned()));
        b.ack(&b.peek(usize::MAX, &[]));
        b.save(&mut store, 3_000);
        assert_eq!(
            store.get("ff_outbox_t1"),
            None,
            "empty outboxes leave no key"
        );
    }

    #[test]
    fn a_gone_tabs_outbox_is_adopted_once() {
        let mut store = MemStorage::default();
        let mut gone = Outbox::default();
        gone.own(&store, "ff_outbox_old".into());
        gone.push(ev(1, 0));
        gone.push(ev(2, 0));
        gone.save(&mut store, 5);
        assert_eq!(load(&store, "ff_outbox_old").1, 5);
        let mut me = Outbox::default();
        me.own(&store, "ff_outbox_me".into());
        me.push(ev(2, 0));
        me.push(ev(3, 0));
        me.adopt(&mut store, "ff_outbox_old");
        assert_eq!(me.len(), 3, "no event twice");
        assert_eq!(
            id_of(&me.events()[0]),
            id_of(&ev(1, 0)),
            "older events first"
        );
        assert_eq!(store.get("ff_outbox_old"), None);
    }

    #[test]
    fn full_outboxes_drop_the_oldest_and_count_them() {
        let mut o = Outbox::default();
        for n in 0..MAX_EVENTS + 10 {
            o.push(ev(n, 0));
        }
        assert_eq!(o.len(), MAX_EVENTS);
        assert_eq!(o.dropped, 10);
        assert_eq!(id_of(&o.events()[0]), id_of(&ev(10, 0)));
        let mut o = Outbox::default();
        for n in 0..200 {
            o.push(ev(n, 4096));
        }
        assert!(o.events().iter().map(String::len).sum::<usize>() <= MAX_BYTES);
        assert!(o.dropped > 0);
    }

    #[test]
    fn chunks_skip_beaconed_events_and_stay_under_the_limit() {
        let mut o = Outbox::default();
        for n in 0..10 {
            o.push(ev(n, 1000));
        }
        let skip = vec![id_of(&ev(0, 0)).to_owned()];
        let chunk = o.peek(4000, &skip);
        assert_eq!(chunk.len(), 3);
        assert_eq!(id_of(&chunk[0]), id_of(&ev(1, 0)));
        assert_eq!(o.peek(10, &[]).len(), 1, "one event alone even when larger");
    }
}
