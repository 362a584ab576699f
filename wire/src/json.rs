//! A small JSON writer for the wire types, free of `core::fmt` and serde so that it adds
//! little to the SDK's wasm. Its output is checked against serde's reading in the tests.
//! With it, the decimal reader the SDK uses for the numbers in its stored state.

#[allow(unused_imports)]
use crate::prelude::*;

use crate::{Batch, Context, Event, Page};

/// Hexadecimal digits, written as one-byte strings: pushing a `char` computed at run time
/// brings in its UTF-8 encoder, which the SDK's wasm does not otherwise need.
const DIGITS: &str = "0123456789abcdef";

/// The digit `d` (below 16) as text.
fn digit(d: usize) -> &'static str {
    let d = d & 15;
    // SAFETY: `DIGITS` is 16 ASCII bytes; `d..d + 1` is one of them.
    unsafe { DIGITS.get_unchecked(d..d + 1) }
}

/// Appends `s` as a JSON string literal (quotes included).
pub fn write_str(out: &mut String, s: &str) {
    out.push_str("\"");
    // Runs of bytes that need no escape are copied whole; the bytes that do are all ASCII, so
    // every cut falls on a character boundary.
    let mut run = 0;
    // A plain loop over the bytes (an iterator's adapters cost the SDK's wasm more).
    let mut i = 0;
    while let Some(&b) = s.as_bytes().get(i) {
        i += 1;
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x0f => "\\u000",
            0x10..=0x1f => "\\u001",
            _ => continue,
        };
        // SAFETY: `run` and `i - 1` are 0, the length, or next to an ASCII byte: character
        // boundaries within `s` (unchecked: the check is the wasm's only use of that code).
        out.push_str(unsafe { s.get_unchecked(run..i - 1) });
        run = i;
        out.push_str(escaped);
        // `\u00` and two digits, the last one here.
        if escaped.len() == 5 {
            out.push_str(digit(usize::from(b)));
        }
    }
    // SAFETY: as above.
    out.push_str(unsafe { s.get_unchecked(run..) });
    out.push_str("\"");
}

/// Appends `n` in decimal, the highest digits first (by recursion, at most 20 deep: a buffer
/// indexed by a running position would pull `core::fmt`'s panic messages into the SDK's wasm).
pub fn write_u64(out: &mut String, n: u64) {
    if n >= 10 {
        write_u64(out, n / 10);
    }
    out.push_str(digit((n % 10) as usize));
}

/// Reads a decimal number as `str::parse::<u64>` does (an optional `+`, then ASCII digits, no
/// overflow), without core's generic integer parser.
pub fn read_u64(s: &str) -> Option<u64> {
    digits_u64(s.as_bytes())
}

/// [`read_u64`] over bytes (by bytes: `str`'s prefix matching costs the SDK's wasm more).
fn digits_u64(s: &[u8]) -> Option<u64> {
    let digits = match s.first() {
        Some(b'+') => s.get(1..)?,
        _ => s,
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        // Overflow checked by a division by a constant (a multiplication's overflow check is a
        // 128-bit product in wasm32).
        if n > (u64::MAX - u64::from(d)) / 10 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

/// Reads a decimal number as `str::parse::<i64>` does (an optional sign, then ASCII digits).
pub fn read_i64(s: &str) -> Option<i64> {
    let s = s.as_bytes();
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, s.get(1..)?),
        _ => (false, s),
    };
    if negative && digits.first() == Some(&b'+') {
        return None;
    }
    let n = digits_u64(digits)?;
    if negative {
        (n <= 1 << 63).then(|| (n as i64).wrapping_neg())
    } else {
        i64::try_from(n).ok()
    }
}

/// Writes `{"k":v,...}` one field at a time.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut String) -> Self {
        out.push_str("{");
        Obj { out, first: true }
    }
    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push_str(",");
        }
        self.first = false;
        write_str(self.out, k);
        self.out.push_str(":");
        self.out
    }
    fn str(&mut self, k: &str, v: &str) {
        write_str(self.key(k), v);
    }
    fn raw(&mut self, k: &str, v: &str) {
        self.key(k).push_str(v);
    }
    fn close(self) {
        self.out.push_str("}");
    }
}

fn write_page(out: &mut String, p: &Page) {
    let mut o = Obj::open(out);
    o.str("url", &p.url);
    o.str("path", &p.path);
    o.str("title", &p.title);
    o.str("referrer", &p.referrer);
    o.close();
}

fn write_context(out: &mut String, c: &Context) {
    let mut o = Obj::open(out);
    o.str("screen", &c.screen);
    o.str("viewport", &c.viewport);
    o.str("language", &c.language);
    o.str("timezone", &c.timezone);
    o.str("sdk", &c.sdk);
    o.close();
}

/// Appends one event as JSON.
pub fn write_event(out: &mut String, e: &Event) {
    let mut o = Obj::open(out);
    o.str("event_id", &e.event_id);
    o.str("type", e.kind.as_str());
    o.str("name", &e.name);
    o.str("timestamp", &e.timestamp);
    o.str("anonymous_id", &e.anonymous_id);
    match &e.user_id {
        Some(u) => o.str("user_id", u),
        None => o.raw("user_id", "null"),
    }
    o.str("session_id", &e.session_id);
    write_u64(o.key("seq"), e.seq);
    write_page(o.key("page"), &e.page);
    write_context(o.key("context"), &e.context);
    o.raw("props", e.props.as_str());
    if let Some(t) = &e.traits {
        o.raw("traits", t.as_str());
    }
    o.close();
}

/// The JSON text of one event.
pub fn event_to_string(e: &Event) -> String {
    let mut s = String::with_capacity(1024);
    write_event(&mut s, e);
    s
}

/// Writes a batch around events that are already JSON text (the SDK keeps its queue that way,
/// so that a chunk of it can be sent without encoding anything twice).
pub fn batch_from_encoded<'a>(
    key: &str,
    sent_at: &str,
    events: impl IntoIterator<Item = &'a str>,
) -> String {
    // Its keys written as they are (the SDK's wasm needs no object writer for them).
    // Sized by `reserve`, not `with_capacity`: the SDK's wasm has the one growing code.
    let mut out = String::new();
    out.reserve(1024);
    out.push_str("{\"key\":");
    write_str(&mut out, key);
    out.push_str(",\"sent_at\":");
    write_str(&mut out, sent_at);
    out.push_str(",\"events\":[");
    let mut sep = "";
    for e in events {
        out.push_str(sep);
        out.push_str(e);
        sep = ",";
    }
    out.push_str("]}");
    out
}

/// The JSON text of a whole batch.
pub fn batch_to_string(b: &Batch) -> String {
    let encoded: Vec<String> = b.events.iter().map(event_to_string).collect();
    batch_from_encoded(&b.key, &b.sent_at, encoded.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_quotes_backslashes_and_controls() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\nd\u{1}é😀");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é😀""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é😀");
        let mut s = String::new();
        write_str(&mut s, "\u{1f}\u{10}\u{0}");
        assert_eq!(s, r#""\u001f\u0010\u0000""#);
    }

    #[test]
    fn numbers_are_written_as_core_writes_them() {
        for n in [0, 7, 10, 99, 1_000_000_007, u64::MAX] {
            let mut s = String::from("x");
            write_u64(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }

    #[test]
    fn every_ascii_character_round_trips_beside_multibyte_ones() {
        for c in (0u8..=0x7f).map(char::from) {
            for text in [
                c.to_string(),
                format!("{c}é{c}"),
                format!("😀{c}{c}x"),
                format!("ab{c}"),
            ] {
                let mut s = String::new();
                write_str(&mut s, &text);
                let back: String = serde_json::from_str(&s).unwrap();
                assert_eq!(back, text, "{s}");
            }
        }
    }

    #[test]
    fn numbers_in_decimal() {
        for n in [
            0u64,
            7,
            9,
            10,
            99,
            100,
            12345,
            10_000_000_000_000_000_000,
            u64::MAX,
        ] {
            let mut s = String::new();
            write_u64(&mut s, n);
            assert_eq!(s, n.to_string());
            assert_eq!(read_u64(&s), Some(n));
        }
    }

    #[test]
    fn numbers_read_as_the_standard_parser_reads_them() {
        let cases = [
            "",
            "+",
            "-",
            "0",
            "-0",
            "+0",
            "7",
            "+7",
            "-7",
            "--7",
            "+-7",
            "-+7",
            "++7",
            " 7",
            "7 ",
            "1_000",
            "0x10",
            "12a",
            "007",
            "١",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
        ];
        for s in cases {
            assert_eq!(read_i64(s), s.parse::<i64>().ok(), "i64 {s:?}");
            assert_eq!(read_u64(s), s.parse::<u64>().ok(), "u64 {s:?}");
        }
    }
}
