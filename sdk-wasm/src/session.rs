//! Session IDs, assigned on the client (product.md §1, "Identity and session rules").
//!
//! The state of the current session lives in shared storage, so every tab of the site reads and
//! advances the same one. Expiry is decided from timestamps at the next activity, never by a
//! timer: a background tab whose timers were throttled still gets it right.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::platform::{fields, uuid_v7, Clock, Entropy, Storage};
use footfall_wire::json::{read_i64, read_u64, write_u64};

/// Storage key of the session state.
pub const SESSION_KEY: &str = "ff_s";
/// Tab-storage key of this tab's ID (`"tab"` scope).
pub const TAB_KEY: &str = "ff_tab";
/// Shared-storage keys of the tabs open now: this prefix and the tab's ID, each holding the
/// time the tab registered (ms since the epoch).
pub const TAB_ENTRY_PREFIX: &str = "ff_tab_";
/// Registry entries older than this are dropped (a tab that crashed never said goodbye).
const TAB_ENTRY_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// The session as stored: `id.started.last.seq` (times in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub started_ms: i64,
    pub last_ms: i64,
    /// Sequence number of the session's latest event (0 before the first).
    pub seq: u64,
}

impl Session {
    pub fn encode(&self) -> String {
        let mut s = String::new();
        s.push_str(&self.id);
        s.push_str(".");
        write_u64(&mut s, self.started_ms.max(0) as u64);
        s.push_str(".");
        write_u64(&mut s, self.last_ms.max(0) as u64);
        s.push_str(".");
        write_u64(&mut s, self.seq);
        s
    }

    pub fn decode(text: &str) -> Option<Session> {
        let mut parts = fields(text, b'.');
        let id = parts.next().filter(|id| id.len() == 36)?;
        let started_ms = read_i64(parts.next()?)?;
        let last_ms = read_i64(parts.next()?)?;
        let seq = read_u64(parts.next()?)?;
        // The ID copied last: no early return has it to drop.
        Some(Session {
            id: crate::platform::owned(id),
            started_ms,
            last_ms,
            seq,
        })
    }
}

/// When a session is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Inactivity after which the next activity starts a new session.
    pub timeout_ms: i64,
    /// Length after which the next activity starts a new session, however busy the visit.
    pub max_duration_ms: i64,
}

impl Rules {
    /// Whether `s` still runs at `now`. The session ends once the last activity is *older*
    /// than the timeout (a gap of exactly the timeout keeps it) or once it is *older* than the
    /// maximum duration. A clock that went backwards counts as no time passed.
    pub fn is_alive(&self, s: &Session, now_ms: i64) -> bool {
        let now = now_ms.max(s.last_ms);
        now - s.last_ms <= self.timeout_ms && now - s.started_ms <= self.max_duration_ms
    }
}

/// Reads, advances and writes the shared session state.
pub struct Sessions {
    pub rules: Rules,
}

impl Sessions {
    /// The session that runs now, if any, without counting an activity.
    pub fn current(&self, storage: &impl Storage, now_ms: i64) -> Option<Session> {
        let s = Session::decode(&storage.text(SESSION_KEY))?;
        self.rules.is_alive(&s, now_ms).then_some(s)
    }

    /// Counts an activity at `clock`'s time: continues the running session or starts a new one.
    /// With `numbered`, the activity is an event and takes the session's next sequence number.
    pub fn touch(
        &self,
        storage: &mut impl Storage,
        clock: &impl Clock,
        rng: &mut impl Entropy,
        numbered: bool,
    ) -> Session {
        let now = clock.now_ms();
        let mut s = self.current(storage, now).unwrap_or_else(|| Session {
            id: uuid_v7(rng, now),
            started_ms: now,
            last_ms: now,
            seq: 0,
        });
        s.last_ms = s.last_ms.max(now);
        if numbered {
            s.seq += 1;
        }
        storage.set(SESSION_KEY, &s.encode());
        s
    }

    /// Ends the session: the next activity starts a new one.
    pub fn end(&self, storage: &mut impl Storage) {
        storage.remove(SESSION_KEY);
    }
}

/// The shared-storage key of tab `id`'s entry in the registry of open tabs.
fn entry(id: &str) -> String {
    let mut key = crate::platform::owned(TAB_ENTRY_PREFIX);
    key.push_str(id);
    key
}

/// Decides which tab this page load is, in `"tab"` scope. `tab` is the tab's own storage
/// (sessionStorage: kept across reloads and navigations, copied when the tab is duplicated),
/// `registry` storage shared by all tabs, with one entry for each open tab (its key
/// [`TAB_ENTRY_PREFIX`] and the tab's ID, its value when the tab registered); `entries` the
/// keys of those entries now, one a line. A reload finds its ID in `tab` but not in the
/// registry (it left at `pagehide`): same tab, same session. A duplicate finds the ID it
/// copied still registered by the original: it takes a new ID, and its copied session is
/// dropped. Entries a week old or more are removed first (a tab that crashed never left).
pub fn claim_tab(
    tab: &mut impl Storage,
    registry: &mut impl Storage,
    rng: &mut impl Entropy,
    now_ms: i64,
    entries: &str,
) -> String {
    for key in fields(entries, b'\n') {
        if read_i64(&registry.text(key)).is_none_or(|since| now_ms - since >= TAB_ENTRY_TTL_MS) {
            registry.remove(key);
        }
    }
    let kept = tab.text(TAB_KEY);
    let taken = !registry.text(&entry(&kept)).is_empty();
    let id = if kept.is_empty() || taken {
        // A duplicate (its copied ID still registered) drops the session it copied.
        if taken {
            tab.remove(SESSION_KEY);
        }
        crate::platform::uuid_v7(rng, now_ms)
    } else {
        kept
    };
    tab.set(TAB_KEY, &id);
    let mut since = String::new();
    write_u64(&mut since, now_ms.max(0) as u64);
    registry.set(&entry(&id), &since);
    id
}

/// The tab leaves (`pagehide`): a reload or navigation will claim the same ID again.
pub fn release_tab(registry: &mut impl Storage, id: &str) {
    registry.remove(&entry(id));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::{FakeClock, MemStorage, SeqEntropy};

    const MIN: i64 = 60_000;
    const T0: i64 = 1_795_428_000_000;

    fn sessions() -> Sessions {
        Sessions {
            rules: Rules {
                timeout_ms: 30 * MIN,
                max_duration_ms: 24 * 60 * MIN,
            },
        }
    }

    struct Tab {
        store: MemStorage,
        clock: FakeClock,
        rng: SeqEntropy,
    }

    impl Tab {
        fn new() -> Tab {
            Tab {
                store: MemStorage::default(),
                clock: FakeClock::at(T0),
                rng: SeqEntropy(7),
            }
        }
        fn event(&mut self) -> Session {
            sessions().touch(&mut self.store, &self.clock, &mut self.rng, true)
        }
    }

    #[test]
    fn encodes_and_decodes() {
        let s = Session {
            id: "019ab0b4-8a20-7000-8000-000000000001".into(),
            started_ms: T0,
            last_ms: T0 + 5,
            seq: 9,
        };
        assert_eq!(Session::decode(&s.encode()), Some(s));
        assert_eq!(Session::decode("garbage"), None);
        assert_eq!(
            Session::decode("019ab0b4-8a20-7000-8000-000000000001.x.1.2"),
            None
        );
    }

    #[test]
    fn first_activity_starts_a_session_and_numbers_events() {
        let mut tab = Tab::new();
        let a = tab.event();
        tab.clock.advance(MIN);
        let b = tab.event();
        assert_eq!(a.id, b.id);
        assert_eq!((a.seq, b.seq), (1, 2));
    }

    #[test]
    fn inactivity_longer_than_the_timeout_starts_a_new_session() {
        let mut tab = Tab::new();
        let a = tab.event();
        tab.clock.advance(30 * MIN);
        let b = tab.event();
        assert_eq!(a.id, b.id, "a gap of exactly the timeout keeps the session");
        tab.clock.advance(30 * MIN + 1);
        let c = tab.event();
        assert_ne!(b.id, c.id);
        assert_eq!(c.seq, 1);
    }

    #[test]
    fn a_clock_going_backwards_keeps_the_session() {
        let mut tab = Tab::new();
        let a = tab.event();
        tab.clock.advance(-10 * 60 * MIN);
        let b = tab.event();
        assert_eq!(a.id, b.id);
        assert_eq!(b.last_ms, a.last_ms, "last activity never moves back");
    }

    #[test]
    fn the_maximum_duration_ends_a_busy_session() {
        let mut tab = Tab::new();
        let first = tab.event();
        let mut last = first.clone();
        // Activity every 10 minutes for 24 hours: never idle, but too long.
        for _ in 0..(24 * 6) {
            tab.clock.advance(10 * MIN);
            last = tab.event();
        }
        assert_eq!(last.id, first.id, "exactly 24 h is still the same session");
        tab.clock.advance(10 * MIN);
        assert_ne!(tab.event().id, first.id);
    }

    #[test]
    fn a_laptop_asleep_for_days_starts_a_new_session() {
        let mut tab = Tab::new();
        let a = tab.event();
        tab.clock.advance(3 * 24 * 60 * MIN);
        assert_ne!(tab.event().id, a.id);
    }

    #[test]
    fn two_tabs_sharing_storage_share_the_session() {
        let mut one = Tab::new();
        let mut two = Tab {
            store: one.store.clone(),
            clock: one.clock.clone(),
            rng: SeqEntropy(99),
        };
        let a = one.event();
        one.clock.advance(20 * MIN);
        let b = two.event();
        one.clock.advance(20 * MIN);
        let c = one.event();
        assert_eq!(a.id, b.id);
        assert_eq!(
            b.id, c.id,
            "the other tab's activity kept the session alive"
        );
        assert_eq!((a.seq, b.seq, c.seq), (1, 2, 3));
    }

    /// The registry's entries, as the host lists them (`localStorage` keys with the prefix).
    fn entries(registry: &MemStorage) -> String {
        let map = registry.0.borrow();
        let mut keys: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with(TAB_ENTRY_PREFIX))
            .collect();
        keys.sort();
        keys.join("\n")
    }

    fn claim(
        tab: &mut MemStorage,
        registry: &mut MemStorage,
        rng: &mut SeqEntropy,
        now: i64,
    ) -> String {
        let listed = entries(registry);
        claim_tab(tab, registry, rng, now, &listed)
    }

    #[test]
    fn a_reloaded_tab_keeps_its_id_and_a_duplicate_gets_a_new_one() {
        let mut registry = MemStorage::default();
        let mut rng = SeqEntropy(5);
        let mut tab = MemStorage::default();
        let a = claim(&mut tab, &mut registry, &mut rng, T0);
        tab.set(SESSION_KEY, "s");
        // Reload: the page left, then the same tab came back.
        release_tab(&mut registry, &a);
        assert_eq!(entries(&registry), "", "left: no entry");
        assert_eq!(claim(&mut tab, &mut registry, &mut rng, T0 + 2), a);
        assert_eq!(tab.get(SESSION_KEY).as_deref(), Some("s"));
        // Duplicate: a copy of the tab's storage while the original is still open.
        let mut copy = MemStorage::default();
        copy.set(TAB_KEY, &a);
        copy.set(SESSION_KEY, "s");
        let b = claim(&mut copy, &mut registry, &mut rng, T0 + 3);
        assert_ne!(a, b);
        assert_eq!(
            copy.get(SESSION_KEY),
            None,
            "the copied session is not shared"
        );
        // The original stays registered: a second copy is a duplicate too; the duplicate's
        // leaving removes its own entry only.
        let mut again = MemStorage::default();
        again.set(TAB_KEY, &a);
        let c = claim(&mut again, &mut registry, &mut rng, T0 + 4);
        assert_ne!(c, a);
        release_tab(&mut registry, &b);
        assert_eq!(
            entries(&registry),
            {
                let mut both = [entry(&a), entry(&c)];
                both.sort();
                both.join("\n")
            },
            "the duplicate's leaving removed its own entry only"
        );
        assert_eq!(registry.get(&entry(&a)), Some((T0 + 2).to_string()));
    }

    #[test]
    fn a_tab_that_never_left_blocks_its_id_for_a_week_and_is_then_forgotten() {
        let week = 7 * 24 * 60 * MIN;
        let mut registry = MemStorage::default();
        let mut rng = SeqEntropy(8);
        let crashed = claim(&mut MemStorage::default(), &mut registry, &mut rng, T0);
        let other = claim(
            &mut MemStorage::default(),
            &mut registry,
            &mut rng,
            T0 + week / 2,
        );
        // Restored with its storage (a browser's session restore) within the week: its entry
        // is still there, so it is taken for a duplicate.
        let mut restored = MemStorage::default();
        restored.set(TAB_KEY, &crashed);
        assert_ne!(
            claim(&mut restored, &mut registry, &mut rng, T0 + week - 1),
            crashed
        );
        // A week on, the entry is gone (removed by any tab's claim), and the ID is free again.
        let mut later = MemStorage::default();
        later.set(TAB_KEY, &crashed);
        let _ = claim(
            &mut MemStorage::default(),
            &mut registry,
            &mut rng,
            T0 + week,
        );
        assert_eq!(registry.get(&entry(&crashed)), None, "a week old: removed");
        assert!(registry.get(&entry(&other)).is_some(), "younger: kept");
        assert_eq!(
            claim(&mut later, &mut registry, &mut rng, T0 + week + 1),
            crashed
        );
        // Entries that do not read as a time are removed too.
        registry.set(&entry("junk"), "x");
        let _ = claim(
            &mut MemStorage::default(),
            &mut registry,
            &mut rng,
            T0 + week + 2,
        );
        assert_eq!(registry.get(&entry("junk")), None);
    }

    #[test]
    fn ending_starts_a_new_session_at_the_next_activity() {
        let mut tab = Tab::new();
        let a = tab.event();
        sessions().end(&mut tab.store);
        assert_ne!(tab.event().id, a.id);
    }
}
