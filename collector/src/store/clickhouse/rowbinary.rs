//! Rows in ClickHouse's `RowBinary` format, the insert path's wire format: each value in its
//! column's binary form, one row after another, columns in the order the `INSERT` names them.
//!
//! Only the types the ingest tables use, all read alike by 18.16 and current ClickHouse:
//! `String` (LEB128 length, then the bytes), `Nullable(T)` (a byte, 1 for NULL, else 0 and
//! the value), `Array(T)` (LEB128 length, then the elements), `UInt8`, `Int64`, `UInt64` and
//! `Float64` (little-endian). No `DateTime64` (18.16 has none; times are `Int64` milliseconds)
//! and no `LowCardinality` (the tables declare none; it changes nothing in RowBinary anyway).
//! Strings go as their bytes: quotes, newlines and the rest need no escaping.

use super::Row;
use std::io::{self, BufRead};

/// The columns of `events` in the order [`event`] writes them; the `INSERT` names them, so
/// columns the table gains later (with defaults) do not break older writers.
pub const EVENT_COLUMNS: &str = "event_id, site, type, name, time_ms, client_ms, server_ms, \
    anonymous_id, user_id, session_id, seq, url, path, title, referrer, screen, viewport, \
    language, timezone, sdk, props, traits, browser, browser_version, os, device, bot_reason, \
    referrer_domain, utm_source, utm_medium, utm_campaign, utm_term, utm_content, country, \
    region, city, ip, prop_keys, prop_values, prop_nums, prop_reals, trait_keys, trait_values, \
    trait_nums, trait_reals, ver";

/// The columns of `aliases` in the order [`alias`] writes them.
pub const ALIAS_COLUMNS: &str = "anonymous_id, user_id, time_ms, event_id";

pub fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

pub fn string(out: &mut Vec<u8>, s: &str) {
    leb128(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn nullable_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(1),
        Some(s) => {
            out.push(0);
            string(out, s);
        }
    }
}

fn strings(out: &mut Vec<u8>, items: &[String]) {
    leb128(out, items.len() as u64);
    for s in items {
        string(out, s);
    }
}

fn bytes(out: &mut Vec<u8>, items: &[u8]) {
    leb128(out, items.len() as u64);
    out.extend_from_slice(items);
}

fn floats(out: &mut Vec<u8>, items: &[f64]) {
    leb128(out, items.len() as u64);
    for f in items {
        out.extend_from_slice(&f.to_le_bytes());
    }
}

fn i64(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(&n.to_le_bytes());
}

/// Appends one row of `events` ([`EVENT_COLUMNS`]).
pub fn event(out: &mut Vec<u8>, r: &Row) {
    for s in [&r.event_id, &r.site, &r.kind, &r.name] {
        string(out, s);
    }
    for n in [r.time_ms, r.client_ms, r.server_ms] {
        i64(out, n);
    }
    string(out, &r.anonymous_id);
    nullable_string(out, r.user_id.as_deref());
    string(out, &r.session_id);
    i64(out, r.seq);
    for s in [
        &r.url,
        &r.path,
        &r.title,
        &r.referrer,
        &r.screen,
        &r.viewport,
        &r.language,
        &r.timezone,
        &r.sdk,
        &r.props,
    ] {
        string(out, s);
    }
    nullable_string(out, r.traits.as_deref());
    for s in [&r.browser, &r.browser_version, &r.os, &r.device] {
        string(out, s);
    }
    nullable_string(out, r.bot_reason.as_deref());
    for s in [
        &r.referrer_domain,
        &r.utm_source,
        &r.utm_medium,
        &r.utm_campaign,
        &r.utm_term,
        &r.utm_content,
        &r.country,
        &r.region,
        &r.city,
    ] {
        string(out, s);
    }
    nullable_string(out, r.ip.as_deref());
    strings(out, &r.prop_keys);
    strings(out, &r.prop_values);
    bytes(out, &r.prop_nums);
    floats(out, &r.prop_reals);
    strings(out, &r.trait_keys);
    strings(out, &r.trait_values);
    bytes(out, &r.trait_nums);
    floats(out, &r.trait_reals);
    out.extend_from_slice(&r.ver.to_le_bytes());
}

/// Appends one row of `aliases` ([`ALIAS_COLUMNS`]).
pub fn alias(out: &mut Vec<u8>, anonymous_id: &str, user_id: &str, time_ms: i64, event_id: &str) {
    string(out, anonymous_id);
    string(out, user_id);
    i64(out, time_ms);
    string(out, event_id);
}

/// A reader of a `RowBinary` answer (`Client::select_binary`): what is left of it. The same
/// forms as the writers above: numbers little-endian, a text as its LEB128 length and bytes.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    /// The next `N` bytes (a number, little-endian).
    pub fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    /// The next length (of a text or an array) in LEB128.
    pub fn varint(&mut self) -> Option<usize> {
        let mut len = 0usize;
        for shift in (0..64).step_by(7) {
            let [b] = self.take::<1>()?;
            len |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(len);
            }
        }
        None
    }

    /// The next text: its length in LEB128, then its bytes.
    pub fn text(&mut self) -> Option<&'a [u8]> {
        let len = self.varint()?;
        let (text, rest) = self.0.split_at_checked(len)?;
        self.0 = rest;
        Some(text)
    }
}

/// A column of a block of a `Native` answer: fixed-width numbers as their bytes
/// (little-endian, `width` each), or texts.
pub enum Column<'a> {
    Fixed { width: usize, data: &'a [u8] },
    Text(Vec<&'a [u8]>),
}

impl Column<'_> {
    /// Row `i` of a column of 8-byte numbers (0 if it is not one).
    pub fn u64(&self, i: usize) -> u64 {
        self.number::<8>(i).map_or(0, u64::from_le_bytes)
    }

    /// Row `i` of a column of numbers of up to 4 bytes, widened (0 if it is not one).
    pub fn u32(&self, i: usize) -> u32 {
        match self {
            Column::Fixed { width: 1, data } => data.get(i).map_or(0, |&b| b.into()),
            Column::Fixed { width: 2, .. } => self
                .number::<2>(i)
                .map_or(0, |b| u16::from_le_bytes(b).into()),
            _ => self.number::<4>(i).map_or(0, u32::from_le_bytes),
        }
    }

    /// Row `i` of a column of texts (empty if it is not one).
    pub fn text(&self, i: usize) -> &[u8] {
        match self {
            Column::Text(t) => t.get(i).copied().unwrap_or_default(),
            Column::Fixed { .. } => &[],
        }
    }

    /// The bytes of a column of `rows` numbers of `width` bytes each (`None` if it is not
    /// that).
    pub fn numbers(&self, width: usize, rows: usize) -> Option<&[u8]> {
        self.fixed(width).filter(|data| data.len() == rows * width)
    }

    /// The bytes of a column of numbers of `width` bytes each (`None` if it is not one).
    pub fn fixed(&self, width: usize) -> Option<&[u8]> {
        match self {
            Column::Fixed { width: w, data } if *w == width => Some(data),
            _ => None,
        }
    }

    fn number<const N: usize>(&self, i: usize) -> Option<[u8; N]> {
        self.fixed(N)?.get(i * N..i * N + N)?.try_into().ok()
    }
}

/// The bytes of each of a block's `columns`, which must be `N` columns of `rows` numbers of
/// `widths` bytes each (`None` if they are not).
pub fn numbers<'c, const N: usize>(
    columns: &'c [Column<'_>],
    widths: [usize; N],
    rows: usize,
) -> Option<[&'c [u8]; N]> {
    let columns: &[Column<'_>; N] = columns.try_into().ok()?;
    let mut out = [&[][..]; N];
    for ((bytes, column), width) in out.iter_mut().zip(columns).zip(widths) {
        *bytes = column.numbers(width, rows)?;
    }
    Some(out)
}

/// Number `i` of the bytes of a column of 8-byte numbers (see [`numbers`]).
pub fn le_u64(column: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(column[i * 8..i * 8 + 8].try_into().unwrap_or_default())
}

/// The blocks of a `Native` answer over HTTP, each its row count and its columns in the
/// query's order. A block is a LEB128 count of columns and of rows, then each column's
/// name and type (texts) and its values: fixed-width numbers one after another, texts each
/// as in `RowBinary`. Only `String` and the fixed-width integer types; `None` if the answer
/// holds another type or is cut short.
pub fn native_blocks(bytes: &[u8]) -> Option<Vec<(usize, Vec<Column<'_>>)>> {
    let mut r = Reader(bytes);
    let mut blocks = Vec::new();
    while !r.0.is_empty() {
        let columns = r.varint()?;
        let rows = r.varint()?;
        let mut block = Vec::with_capacity(columns);
        for _ in 0..columns {
            r.text()?;
            let width = match r.text()? {
                b"String" => {
                    let texts = (0..rows).map(|_| r.text()).collect::<Option<Vec<_>>>()?;
                    block.push(Column::Text(texts));
                    continue;
                }
                b"UInt8" | b"Int8" => 1,
                b"UInt16" | b"Int16" => 2,
                b"UInt32" | b"Int32" => 4,
                b"UInt64" | b"Int64" => 8,
                _ => return None,
            };
            let (data, rest) = r.0.split_at_checked(rows.checked_mul(width)?)?;
            r.0 = rest;
            block.push(Column::Fixed { width, data });
        }
        blocks.push((rows, block));
    }
    Some(blocks)
}

/// Reads the next block of a `Native` answer from `from` as it arrives, its bytes into `out`
/// (cleared first) for [`native_blocks`]: `Ok(false)` where the answer ends between blocks,
/// an error where it is cut short inside one or holds a type [`native_blocks`] does not read.
pub fn read_native_block(from: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<bool> {
    out.clear();
    if from.fill_buf()?.is_empty() {
        return Ok(false);
    }
    let columns = copy_varint(from, out)?;
    let rows = copy_varint(from, out)?;
    for _ in 0..columns {
        copy_text(from, out)?;
        let type_at = copy_text(from, out)?;
        let width = match &out[type_at..] {
            b"String" => {
                for _ in 0..rows {
                    copy_text(from, out)?;
                }
                continue;
            }
            b"UInt8" | b"Int8" => 1,
            b"UInt16" | b"Int16" => 2,
            b"UInt32" | b"Int32" => 4,
            b"UInt64" | b"Int64" => 8,
            other => {
                let name = String::from_utf8_lossy(other);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a column of {name}"),
                ));
            }
        };
        let len = rows.checked_mul(width).ok_or(io::ErrorKind::InvalidData)?;
        copy_bytes(from, out, len)?;
    }
    Ok(true)
}

/// Copies a LEB128 number from `from` to `out`, and gives it.
fn copy_varint(from: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<usize> {
    let mut n = 0usize;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8];
        from.read_exact(&mut b)?;
        out.push(b[0]);
        n |= usize::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err(io::ErrorKind::InvalidData.into())
}

/// Copies the next `len` bytes from `from` to `out`.
fn copy_bytes(from: &mut impl BufRead, out: &mut Vec<u8>, len: usize) -> io::Result<()> {
    let start = out.len();
    out.resize(start + len, 0);
    from.read_exact(&mut out[start..])
}

/// Copies a text (its LEB128 length, then its bytes) from `from` to `out`, and gives where
/// its bytes begin in `out`.
fn copy_text(from: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<usize> {
    // A short text already in the buffer, copied at once (most are: names, countries).
    let buf = from.fill_buf()?;
    if let Some(&len) = buf.first() {
        let end = 1 + usize::from(len);
        if len < 0x80 && end <= buf.len() {
            out.extend_from_slice(&buf[..end]);
            from.consume(end);
            return Ok(out.len() + 1 - end);
        }
    }
    let len = copy_varint(from, out)?;
    let at = out.len();
    copy_bytes(from, out, len)?;
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_leb128_and_strings_their_bytes() {
        let mut out = Vec::new();
        string(&mut out, "");
        string(&mut out, "é'\n");
        assert_eq!(out, [0, 4, 0xc3, 0xa9, b'\'', b'\n']);
        let mut out = Vec::new();
        string(&mut out, &"x".repeat(300));
        assert_eq!(&out[..2], [0xac, 0x02]);
        assert_eq!(out.len(), 302);
        let mut out = Vec::new();
        nullable_string(&mut out, None);
        nullable_string(&mut out, Some("a"));
        assert_eq!(out, [1, 0, 1, b'a']);
    }

    #[test]
    fn native_blocks_give_each_column_by_row() {
        // Two blocks of (UInt64 `a`, String `b`, UInt16 `c`): 2 rows, then 1.
        let mut out = Vec::new();
        for rows in [vec![(7u64, "x", 3u16), (8, "", 1023)], vec![(9, "yz", 0)]] {
            out.extend([3, rows.len() as u8]);
            string(&mut out, "a");
            string(&mut out, "UInt64");
            rows.iter().for_each(|r| out.extend(r.0.to_le_bytes()));
            string(&mut out, "b");
            string(&mut out, "String");
            rows.iter().for_each(|r| string(&mut out, r.1));
            string(&mut out, "c");
            string(&mut out, "UInt16");
            rows.iter().for_each(|r| out.extend(r.2.to_le_bytes()));
        }
        let blocks = native_blocks(&out).unwrap();
        let rows: Vec<(u64, &[u8], u32)> = blocks
            .iter()
            .flat_map(|(n, c)| (0..*n).map(move |i| (c[0].u64(i), c[1].text(i), c[2].u32(i))))
            .collect();
        assert_eq!(
            rows,
            [(7, &b"x"[..], 3), (8, &b""[..], 1023), (9, &b"yz"[..], 0)]
        );
        // Cut short, or a type it does not read: no blocks at all.
        assert!(native_blocks(&out[..out.len() - 1]).is_none());
        let mut float = vec![1, 1];
        string(&mut float, "f");
        string(&mut float, "Float64");
        float.extend(1.5f64.to_le_bytes());
        assert!(native_blocks(&float).is_none());
    }

    #[test]
    fn numbers_are_the_columns_asked_for_or_none() {
        let (a, c) = ([7u64.to_le_bytes(), 9u64.to_le_bytes()].concat(), [1u8, 2]);
        let columns = [
            Column::Fixed { width: 8, data: &a },
            Column::Fixed { width: 1, data: &c },
        ];
        let [a, c] = numbers(&columns, [8, 1], 2).unwrap();
        assert_eq!((le_u64(a, 0), le_u64(a, 1), c), (7, 9, &[1u8, 2][..]));
        // Another width, another row count, or another number of columns: none.
        assert!(numbers(&columns, [8, 2], 2).is_none());
        assert!(numbers(&columns, [8, 1], 3).is_none());
        assert!(numbers(&columns, [8], 2).is_none());
        assert!(numbers(&[Column::Text(vec![&b"x"[..]])], [8], 1).is_none());
    }

    #[test]
    fn native_blocks_read_as_they_arrive_are_the_blocks_of_the_whole() {
        // Blocks of (UInt64, String, UInt8, Int32) of 0, 1 and 300 rows, a long text among
        // them, read through a buffer of 3 bytes (a block arrives in many reads).
        let mut out = Vec::new();
        for rows in [0u64, 1, 300] {
            // Four columns, then the rows in LEB128 (a text's length is written alike).
            out.push(4);
            let len_at = out.len();
            string(&mut out, &"x".repeat(rows as usize));
            out.truncate(len_at + if rows < 128 { 1 } else { 2 });
            for (name, kind) in [
                ("a", "UInt64"),
                ("b", "String"),
                ("c", "UInt8"),
                ("d", "Int32"),
            ] {
                string(&mut out, name);
                string(&mut out, kind);
                for r in 0..rows {
                    match kind {
                        "UInt64" => out.extend((r * 1000).to_le_bytes()),
                        "String" => string(&mut out, &"é".repeat(r as usize)),
                        "UInt8" => out.push(r as u8),
                        _ => out.extend((-(r as i32)).to_le_bytes()),
                    }
                }
            }
        }
        let whole = native_blocks(&out).unwrap();
        let mut from = std::io::BufReader::with_capacity(3, &out[..]);
        let mut block = Vec::new();
        let mut read = Vec::new();
        while read_native_block(&mut from, &mut block).unwrap() {
            read.push(block.clone());
        }
        assert_eq!(read.len(), 3);
        let rows = |blocks: &[(usize, Vec<Column<'_>>)]| -> Vec<(u64, Vec<u8>, u32, u32)> {
            blocks
                .iter()
                .flat_map(|(n, c)| {
                    (0..*n).map(move |i| {
                        (c[0].u64(i), c[1].text(i).to_vec(), c[2].u32(i), c[3].u32(i))
                    })
                })
                .collect()
        };
        let arrived: Vec<(u64, Vec<u8>, u32, u32)> = read
            .iter()
            .flat_map(|b| rows(&native_blocks(b).unwrap()))
            .collect();
        assert_eq!(arrived, rows(&whole));
        assert_eq!(arrived.len(), 301);
        assert_eq!(arrived[300].1.len(), 2 * 299);
        // Cut short inside a block: an error, not a block or the end.
        let mut cut = std::io::BufReader::with_capacity(3, &out[..out.len() - 1]);
        let mut n = 0;
        let err = loop {
            match read_native_block(&mut cut, &mut block) {
                Ok(true) => n += 1,
                Ok(false) => panic!("a cut answer read as whole"),
                Err(e) => break e,
            }
        };
        assert_eq!((n, err.kind()), (2, std::io::ErrorKind::UnexpectedEof));
        // A type it does not read (or an error text in place of a block): an error.
        let mut float = vec![1, 1];
        string(&mut float, "f");
        string(&mut float, "Float64");
        float.extend(1.5f64.to_le_bytes());
        let err = read_native_block(&mut &float[..], &mut block).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let text = b"Code: 241. DB::Exception: Memory limit exceeded\n";
        assert!(read_native_block(&mut &text[..], &mut block).is_err());
    }

    #[test]
    fn the_reader_reads_back_what_the_writers_wrote() {
        let mut out = Vec::new();
        i64(&mut out, -5);
        string(&mut out, &"é".repeat(100));
        string(&mut out, "");
        let mut r = Reader(&out);
        assert_eq!(r.take::<8>().map(i64::from_le_bytes), Some(-5));
        assert_eq!(r.text(), Some("é".repeat(100).as_bytes()));
        assert_eq!(r.text(), Some(&b""[..]));
        assert_eq!(r.text(), None, "nothing left");
        assert_eq!(Reader(&[0x05, b'a']).text(), None, "a text cut short");
        assert_eq!(Reader(&[0xac, 0x02]).varint(), Some(300));
    }

    #[test]
    fn the_column_list_names_every_field_of_a_row_once() {
        let row = Row::new(crate::store::StoredEvent::default());
        let fields: std::collections::BTreeSet<String> = match serde_json::to_value(&row) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            other => panic!("a row serializes as an object: {other:?}"),
        };
        let columns: Vec<&str> = EVENT_COLUMNS.split(',').map(str::trim).collect();
        let named: std::collections::BTreeSet<String> =
            columns.iter().map(|c| c.to_string()).collect();
        assert_eq!(named.len(), columns.len(), "a column named twice");
        assert_eq!(named, fields);
    }
}
