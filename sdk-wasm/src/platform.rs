//! What the core needs from its host: the time, durable storage shared by the site's tabs, and
//! randomness. The browser layer implements these over `Date.now`, cookies and
//! `crypto.getRandomValues`; tests implement them in memory.

#[allow(unused_imports)]
use crate::prelude::*;

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> i64;
    /// `ms` as product.md's timestamps are written (RFC 3339, UTC, milliseconds). The browser
    /// layer asks its host (`Date#toISOString`), which keeps the calendar code out of the wasm.
    fn timestamp(&self, ms: i64) -> String {
        footfall_wire::time::rfc3339_millis(ms)
    }
}

/// Key-value storage that every tab of the site sees (the `ff_*` cookies in a browser).
pub trait Storage {
    fn get(&self, key: &str) -> Option<String>;
    /// The value of `key`, empty when missing (the SDK treats an empty value as none).
    fn text(&self, key: &str) -> String {
        self.get(key).unwrap_or_default()
    }
    fn set(&mut self, key: &str, value: &str);
    fn remove(&mut self, key: &str);
}

/// A source of unpredictable bytes.
pub trait Entropy {
    fn fill(&mut self, buf: &mut [u8]);
}

/// The parts of `text` between `sep` bytes (ASCII), as `text.split(sep)` gives them: one
/// hand-written splitter for every stored text the SDK reads, smaller in wasm than core's
/// pattern searchers.
pub fn fields(text: &str, sep: u8) -> Fields<'_> {
    debug_assert!(sep.is_ascii());
    Fields {
        rest: Some(text),
        sep,
    }
}

pub struct Fields<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest?;
        let mut i = 0;
        while let Some(&b) = s.as_bytes().get(i) {
            if b == self.sep {
                // SAFETY: `i` is the index of an ASCII byte: both cuts are on character
                // boundaries, and within the text.
                unsafe {
                    self.rest = Some(s.get_unchecked(i + 1..));
                    return Some(s.get_unchecked(..i));
                }
            }
            i += 1;
        }
        self.rest = None;
        Some(s)
    }
}

/// `s` as an owned `String`, grown by `push_str` (`to_owned`, `String::from` and `clone`
/// allocate exactly, through code of their own in the wasm).
pub fn owned(s: &str) -> String {
    let mut o = String::new();
    o.push_str(s);
    o
}

/// The 16 bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, by hand: the `uuid` crate's
/// builders and formatting cost more wasm than this (the tests check both agree).
/// Written into a fixed array (no vector growing byte by byte).
fn hyphenated(b: &[u8; 16]) -> String {
    let mut text = [b'-'; 36];
    let mut j = 0;
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            j += 1;
        }
        if let Some([hi, lo]) = text.get_mut(j..j + 2) {
            *hi = hex_digit(x >> 4);
            *lo = hex_digit(x & 15);
        }
        j += 2;
    }
    // SAFETY: hex digits and hyphens only, all ASCII.
    owned(unsafe { core::str::from_utf8_unchecked(&text) })
}

fn hex_digit(d: u8) -> u8 {
    d + if d < 10 { b'0' } else { b'a' - 10 }
}

/// A time-ordered (version 7) UUID for `now_ms`, as text: 48 bits of milliseconds, then
/// random bits. Every ID the SDK makes is one: events', and the anonymous, tab and outbox IDs
/// (one UUID writer in the wasm, not two).
pub fn uuid_v7(rng: &mut impl Entropy, now_ms: i64) -> String {
    let mut b = [0u8; 16];
    let (time, random) = b.split_at_mut(6);
    for (i, t) in time.iter_mut().enumerate() {
        *t = ((now_ms.max(0) as u64) >> (40 - 8 * i)) as u8;
    }
    rng.fill(random);
    // The version nibble and the RFC 9562 variant bits.
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    hyphenated(&b)
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
    fn uuids_have_their_version_and_sort_by_time() {
        let mut rng = SeqEntropy(42);
        let a = uuid_v7(&mut rng, 1_000);
        let b = uuid_v7(&mut rng, 2_000);
        assert_eq!((a.len(), &a[14..15]), (36, "7"));
        assert!("89ab".contains(&a[19..20]), "the variant: {a}");
        assert!(a < b, "{a} < {b}");
    }

    #[test]
    fn fields_split_as_str_split_does() {
        for text in ["", "a", "a\nb", "\n", "a\n\nb\n", "\nx", "é\nü\n"] {
            let ours: Vec<&str> = fields(text, b'\n').collect();
            let std: Vec<&str> = text.split('\n').collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn uuids_match_the_uuid_crates() {
        use uuid::Builder;
        for seed in 1..50 {
            let ms = 1_795_428_000_000 + seed as i64 * 7_777;
            let mut random = [0u8; 10];
            SeqEntropy(seed).fill(&mut random);
            let theirs = Builder::from_unix_timestamp_millis(ms as u64, &random)
                .into_uuid()
                .to_string();
            assert_eq!(uuid_v7(&mut SeqEntropy(seed), ms), theirs);
        }
    }
}
