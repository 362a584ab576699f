//! What the core needs from its host: the time, durable storage shared by the site's tabs, and
//! randomness. The browser layer implements these over `Date.now`, cookies and
//! `crypto.getRandomValues`; tests implement them in memory.

#[allow(unused_imports)]
use crate::prelude::*;

use uuid::Builder;

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

/// Key-value storage that every tab of the site sees (the `ff_*` cookies in a browser).
pub trait Storage {
    fn get(&self, key: &str) -> Option<String>;
    fn set(&mut self, key: &str, value: &str);
    fn remove(&mut self, key: &str);
}

/// A source of unpredictable bytes.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]);
}

fn hyphenated(u: uuid::Uuid) -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    u.hyphenated().encode_lower(&mut buf).to_owned()
}

/// A random (version 4) UUID, as text.
pub fn uuid_v4(rng: &mut impl Entropy) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    hyphenated(Builder::from_random_bytes(b).into_uuid())
}

/// A time-ordered (version 7) UUID for `now_ms`, as text.
pub fn uuid_v7(rng: &mut impl Entropy, now_ms: i64) -> String {
    let mut b = [0u8; 10];
    rng.fill(&mut b);
    hyphenated(Builder::from_unix_timestamp_millis(now_ms.max(0) as u64, &b).into_uuid())
}

#[cfg(test)]
pub mod fake {
    //! In-memory implementations for tests.
    use super::*;
    use std::cell::Cell;
    use std::collections::HashMap;
    use std::rc::Rc;

    /// A clock the test moves by hand; clones share the time.
    #[derive(Clone, Default)]
    pub struct FakeClock(pub Rc<Cell<i64>>);

    impl FakeClock {
        pub fn at(ms: i64) -> Self {
            FakeClock(Rc::new(Cell::new(ms)))
        }
        pub fn advance(&self, ms: i64) {
            self.0.set(self.0.get() + ms);
        }
        pub fn set(&self, ms: i64) {
            self.0.set(ms);
        }
    }

    impl Clock for FakeClock {
        fn now_ms(&self) -> i64 {
            self.0.get()
        }
    }

    /// Storage that several fake tabs can share.
    #[derive(Clone, Default)]
    pub struct MemStorage(pub Rc<std::cell::RefCell<HashMap<String, String>>>);

    impl Storage for MemStorage {
        fn get(&self, key: &str) -> Option<String> {
            self.0.borrow().get(key).cloned()
        }
        fn set(&mut self, key: &str, value: &str) {
            self.0.borrow_mut().insert(key.to_owned(), value.to_owned());
        }
        fn remove(&mut self, key: &str) {
            self.0.borrow_mut().remove(key);
        }
    }

    /// A deterministic byte stream (xorshift).
    pub struct SeqEntropy(pub u64);

    impl Entropy for SeqEntropy {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                *b = self.0 as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::SeqEntropy;
    use super::*;

    #[test]
    fn uuids_have_their_version_and_v7_sorts_by_time() {
        let mut rng = SeqEntropy(42);
        let v4 = uuid_v4(&mut rng);
        assert_eq!(v4.len(), 36);
        assert_eq!(&v4[14..15], "4");
        let a = uuid_v7(&mut rng, 1_000);
        let b = uuid_v7(&mut rng, 2_000);
        assert_eq!(&a[14..15], "7");
        assert!(a < b, "{a} < {b}");
    }
}
