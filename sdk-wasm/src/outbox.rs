//! The outbox: every recorded event waits here until the collector acknowledged it, and is
//! kept in storage (localStorage) so that a reload or a crash loses nothing.
//!
//! Each tab owns its own outbox under its own key, so no two tabs ever send the same events.
//! The outbox of a tab that is gone (closed, crashed) is adopted by the next tab that finds it
//! (`browser::lock` tells a gone owner from a live one). Bounded by count and bytes: when
//! full, the oldest events go, and are counted.
//!
//! The events are one text, one event's JSON a line (JSON text has no raw line breaks), as
//! they are stored: a push appends, a save writes the text as it is, and a chunk to send is a
//! run of its lines. Sets of events (a chunk in flight, the events a page sent by beacon) are
//! texts too: lines, or event IDs one after another.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::platform::{fields, Storage};

/// Most events kept.
pub const MAX_EVENTS: usize = 1000;
/// Most bytes of encoded events kept.
pub const MAX_BYTES: usize = 512 * 1024;
/// Storage keys of outboxes start with this, then the owning tab's ID.
pub const PREFIX: &str = "ff_outbox_";
/// An `event_id`'s length (a UUID's text).
pub const ID_LEN: usize = 36;

/// The `event_id` of an encoded event (it comes first: `{"event_id":"…"`).
pub fn id_of(event: &str) -> &str {
    event.get(13..13 + ID_LEN).unwrap_or(event)
}

/// The events of a text, one a line.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    fields(text, b'\n').filter(|l| l.starts_with("{"))
}

/// Whether `ids` (event IDs one after another) holds `id`.
pub fn has_id(ids: &str, id: &str) -> bool {
    let mut at = 0;
    while let Some(x) = ids.as_bytes().get(at..at + ID_LEN) {
        if x == id.as_bytes() {
            return true;
        }
        at += ID_LEN;
    }
    false
}

/// The IDs of a text of events (one a line, nothing else: a chunk, the outbox's own text), one
/// after another.
pub fn ids(text: &str) -> String {
    let mut out = String::new();
    for e in fields(text, b'\n') {
        out.push_str(id_of(e));
    }
    out
}

#[derive(Default)]
pub struct Outbox {
    /// Where it is kept; empty while not owned yet, or in memory persistence.
    key: String,
    /// The events, oldest first, one a line, from `start` on: the oldest events are dropped by
    /// moving `start`, and the text is copied only once half of it is dropped (a full outbox
    /// drops one event a push).
    text: String,
    start: usize,
    count: usize,
    /// Events dropped because the outbox was full.
    pub dropped: usize,
    dirty: bool,
}

/// The events kept under `key` (one a line), and when they were saved.
pub fn load(storage: &impl Storage, key: &str) -> (String, i64) {
    let text = storage.text(key);
    (without(&text, "", usize::MAX).0, saved_ms(&text))
}

/// When the outbox text `stored` was saved (its first line, `t` and the time), 0 if unknown.
pub fn saved_ms(stored: &str) -> i64 {
    let line = fields(stored, b'\n').next().unwrap_or_default();
    match line.as_bytes().first() {
        // SAFETY: after the ASCII `t`, a character boundary.
        Some(b't') => footfall_wire::json::read_i64(unsafe { line.get_unchecked(1..) }),
        _ => None,
    }
    .unwrap_or(0)
}

/// The events of `text` (one a line) whose ID is not in `except` (IDs one after another), from
/// the first, up to `max_bytes` of a batch's body (at least one): their lines, and how many.
/// Peeking a chunk, acknowledging one and adopting an outbox all filter this way.
fn without(text: &str, except: &str, max_bytes: usize) -> (String, usize) {
    let (mut out, mut count) = (String::new(), 0);
    // Not `lines`: its filter is one condition here (the wasm has no iterator adapter left).
    for e in fields(text, b'\n') {
        if !e.starts_with("{") || has_id(except, id_of(e)) {
            continue;
        }
        if !out.is_empty() && 128 + out.len() + e.len() + 1 > max_bytes {
            break;
        }
        push_line(&mut out, e);
        count += 1;
    }
    (out, count)
}

fn push_line(text: &mut String, line: &str) {
    if !text.is_empty() {
        text.push_str("\n");
    }
    text.push_str(line);
}

impl Outbox {
    pub fn len(&self) -> usize {
        self.count
    }

    /// Where it is kept, once owned.
    pub fn key(&self) -> Option<&str> {
        (!self.key.is_empty()).then_some(self.key.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The events' text, one a line.
    fn live(&self) -> &str {
        if self.start > self.text.len() {
            return "";
        }
        // SAFETY: `start` is 0 or just after a line's break (ASCII), a character boundary
        // (unchecked: the check is the wasm's only use of that code).
        unsafe { self.text.get_unchecked(self.start..) }
    }

    /// The events, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &str> {
        lines(self.live())
    }

    pub fn push(&mut self, event: &str) {
        if self.count == 0 {
            self.clear();
        }
        push_line(&mut self.text, event);
        self.count += 1;
        self.dirty = true;
        self.bound();
    }

    /// Puts `older` (events, one a line, and how many) before the outbox's own.
    fn prepend(&mut self, (mut older, count): (String, usize)) {
        if !older.is_empty() {
            if !self.is_empty() {
                older.push_str("\n");
            }
            older.push_str(self.live());
            self.text = older;
            self.start = 0;
            self.count += count;
            self.dirty = true;
        }
        self.bound();
    }

    /// Drops the oldest events while there are more than [`MAX_EVENTS`] or [`MAX_BYTES`].
    fn bound(&mut self) {
        if self.count <= MAX_EVENTS && self.live().len() <= MAX_BYTES {
            return;
        }
        let (mut count, mut cut) = (self.count, 0);
        let live = self.live();
        // The live text holds events only.
        for e in fields(live, b'\n') {
            if count <= MAX_EVENTS && live.len() - cut <= MAX_BYTES {
                break;
            }
            cut += e.len() + 1;
            count -= 1;
        }
        if cut > 0 {
            self.dropped += self.count - count;
            self.count = count;
            self.start += cut;
            if self.start > self.text.len() / 2 {
                self.text = crate::platform::owned(self.live());
                self.start = 0;
            }
            self.dirty = true;
        }
    }

    /// Events from the oldest, skipping those whose ID is in `except` (IDs one after another),
    /// up to `max_bytes` of body (at least one): their lines.
    pub fn peek(&self, max_bytes: usize, except: &str) -> String {
        without(self.live(), except, max_bytes).0
    }

    /// Removes the events of `sent` (lines), which the collector answered for.
    pub fn ack(&mut self, sent: &str) {
        let (kept, count) = without(self.live(), &ids(sent), usize::MAX);
        self.text = kept;
        self.start = 0;
        self.count = count;
        self.dirty = true;
    }

    /// Takes ownership of `key`: what an earlier page of this tab left there goes first.
    pub fn own(&mut self, storage: &impl Storage, key: String) {
        self.prepend(without(&storage.text(&key), "", usize::MAX));
        self.key = key;
    }

    /// Takes in the outbox of a tab that is gone; its events go before ours.
    pub fn adopt(&mut self, storage: &mut impl Storage, key: &str) {
        let theirs = storage.text(key);
        storage.remove(key);
        self.prepend(without(&theirs, &ids(self.live()), usize::MAX));
    }

    /// Writes the outbox to its key, if it changed.
    pub fn save(&mut self, storage: &mut impl Storage, now_ms: i64) {
        if self.key.is_empty() || !self.dirty {
            return;
        }
        let key = &self.key;
        if self.is_empty() {
            storage.remove(key);
        } else {
            // Sized by `reserve` (the wasm's one growing code), not `with_capacity`.
            let mut text = String::new();
            text.reserve(self.live().len() + 16);
            text.push_str("t");
            footfall_wire::json::write_u64(&mut text, now_ms.max(0) as u64);
            text.push_str("\n");
            text.push_str(self.live());
            storage.set(key, &text);
        }
        self.dirty = false;
    }

    /// Forgets every event (opt-out), in storage too at the next save.
    pub fn clear(&mut self) {
        self.text.clear();
        self.start = 0;
        self.count = 0;
        self.dirty = true;
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

    fn ids_of<'a>(events: impl Iterator<Item = &'a str>) -> Vec<String> {
        events.map(|e| id_of(e).to_owned()).collect()
    }

    fn ids_n(ns: &[usize]) -> Vec<String> {
        ns.iter().map(|&n| id_of(&ev(n, 0)).to_owned()).collect()
    }

    #[test]
    fn events_survive_a_reload_until_acknowledged() {
        let mut store = MemStorage::default();
        let mut a = Outbox::default();
        a.own(&store, "ff_outbox_t1".into());
        for n in 0..5 {
            a.push(&ev(n, 10));
        }
        a.save(&mut store, 1_000);
        let sent = a.peek(usize::MAX, "");
        assert_eq!(ids_of(lines(&sent)), ids_n(&[0, 1, 2, 3, 4]));
        let first_two: Vec<&str> = lines(&sent).take(2).collect();
        a.ack(&first_two.join("\n"));
        assert_eq!(a.len(), 3);
        a.save(&mut store, 2_000);

        // The page reloads: a new outbox with an event recorded before it owned the key.
        let mut b = Outbox::default();
        b.push(&ev(9, 10));
        b.own(&store, "ff_outbox_t1".into());
        assert_eq!(ids_of(b.events()), ids_n(&[2, 3, 4, 9]));
        assert_eq!(b.len(), 4);
        b.ack(&b.peek(usize::MAX, ""));
        assert!(b.is_empty());
        b.save(&mut store, 3_000);
        assert_eq!(
            store.get("ff_outbox_t1"),
            None,
            "empty outboxes leave no key"
        );
    }

    #[test]
    fn stored_text_is_the_save_time_then_one_event_a_line() {
        let mut store = MemStorage::default();
        let mut o = Outbox::default();
        o.own(&store, "ff_outbox_t".into());
        o.push(&ev(1, 0));
        o.push(&ev(2, 0));
        o.save(&mut store, 77);
        let text = store.get("ff_outbox_t").unwrap();
        assert_eq!(text, format!("t77\n{}\n{}", ev(1, 0), ev(2, 0)));
        // Lines that are not events (a damaged or older text) are skipped.
        store.set("ff_outbox_t", &format!("t5\n\ngarbage\n{}\n", ev(3, 0)));
        let (events, saved) = load(&store, "ff_outbox_t");
        assert_eq!((events, saved), (ev(3, 0), 5));
    }

    #[test]
    fn a_gone_tabs_outbox_is_adopted_once() {
        let mut store = MemStorage::default();
        let mut gone = Outbox::default();
        gone.own(&store, "ff_outbox_old".into());
        gone.push(&ev(1, 0));
        gone.push(&ev(2, 0));
        gone.save(&mut store, 5);
        assert_eq!(load(&store, "ff_outbox_old").1, 5);
        let mut me = Outbox::default();
        me.own(&store, "ff_outbox_me".into());
        me.push(&ev(2, 0));
        me.push(&ev(3, 0));
        me.adopt(&mut store, "ff_outbox_old");
        assert_eq!(me.len(), 3, "no event twice");
        assert_eq!(ids_of(me.events()), ids_n(&[1, 2, 3]), "older events first");
        assert_eq!(store.get("ff_outbox_old"), None);
    }

    #[test]
    fn full_outboxes_drop_the_oldest_and_count_them() {
        let mut o = Outbox::default();
        for n in 0..MAX_EVENTS + 10 {
            o.push(&ev(n, 0));
        }
        assert_eq!(o.len(), MAX_EVENTS);
        assert_eq!(o.events().count(), MAX_EVENTS);
        assert_eq!(o.dropped, 10);
        assert_eq!(o.events().next().map(id_of), Some(ids_n(&[10])[0].as_str()));
        let mut o = Outbox::default();
        for n in 0..200 {
            o.push(&ev(n, 4096));
        }
        assert!(o.events().map(|e| e.len() + 1).sum::<usize>() <= MAX_BYTES + 1);
        assert_eq!(o.len(), o.events().count());
        assert_eq!(o.dropped, 200 - o.len());
        assert_eq!(
            o.events().last().map(id_of),
            Some(ids_n(&[199])[0].as_str()),
            "the newest kept"
        );
        // What is stored is what is kept, however far the text's start moved.
        let mut store = MemStorage::default();
        o.own(&store, "ff_outbox_full".into());
        o.save(&mut store, 1);
        let (stored, _) = load(&store, "ff_outbox_full");
        assert_eq!(ids_of(lines(&stored)), ids_of(o.events()));
        o.ack(&o.peek(usize::MAX, ""));
        assert!(o.is_empty());
        o.push(&ev(500, 0));
        assert_eq!(ids_of(o.events()), ids_n(&[500]));
    }

    #[test]
    fn chunks_skip_beaconed_events_and_stay_under_the_limit() {
        let mut o = Outbox::default();
        for n in 0..10 {
            o.push(&ev(n, 1000));
        }
        let skip = ids_n(&[0, 2]).concat();
        let chunk = o.peek(4000, &skip);
        assert_eq!(ids_of(lines(&chunk)), ids_n(&[1, 3, 4]));
        assert_eq!(
            lines(&o.peek(10, "")).count(),
            1,
            "one event alone even when larger"
        );
        assert!(has_id(&skip, &ids_n(&[2])[0]));
        assert!(!has_id(&skip, &ids_n(&[1])[0]));
    }
}
