//! Drops the SDK's dead read-only data from the optimised wasm.
//!
//! The linker keeps every constant that some function named when it linked. wasm-opt later
//! removes functions that can never run (the panic paths: the SDK's panic handler is a trap),
//! but not the data they named, as it cannot know where one constant ends and the next
//! begins: alloc's panic locations with their source paths, its out-of-memory message and
//! the digit table of `core::fmt` stayed in every visitor's download.
//!
//! The linker's map (`--Map`) tells where each constant begins and ends. A constant is live
//! when an address the optimised code names falls in it, at its end (an end pointer) or just
//! before it (`SLACK`: an index's constant offset folded into the address), or when live data
//! holds a pointer into it (a 4-byte aligned word). An address where some section of the map
//! starts (a constant, a static of `.data`) is that section's only. Every other constant is zeroed, and the zeros at a segment's end are
//! dropped (memory starts zeroed). The Chromium suites run the trimmed wasm.

use crate::Result;
use std::ops::Range;
use wasmparser::{DataKind, Operator, Parser, Payload};

/// The functions that only ever lead to the SDK's panic handler, a trap (all `-> !`): the
/// panic entry points and alloc's error paths. Before they trap they write the panic's message
/// and location into the stack, naming constants nothing reads; [`blank_traps`] makes them
/// trap at once.
pub const TRAPS: &[&str] = &[
    "core::panicking::panic_fmt",
    "core::panicking::panic_nounwind_fmt",
    "alloc::raw_vec::handle_error",
    "alloc::raw_vec::capacity_overflow",
    "alloc::alloc::handle_alloc_error",
    "__rustc::__rdl_alloc_error_handler",
    "__rustc::__rust_alloc_error_handler",
];

/// `wasm` (with its name section) with the bodies of the [`TRAPS`] it has replaced by
/// `unreachable`, and their names.
pub fn blank_traps(wasm: &[u8]) -> Result<(Vec<u8>, Vec<String>)> {
    let e = |e: wasmparser::BinaryReaderError| format!("reading the wasm: {e}");
    let mut imported = 0;
    let mut blanked = Vec::new();
    let mut indices = Vec::new();
    let mut bodies: Vec<Range<usize>> = Vec::new();
    let mut code_section = None;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(e)? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if matches!(import.map_err(e)?.ty, wasmparser::TypeRef::Func(_)) {
                        imported += 1;
                    }
                }
            }
            Payload::CodeSectionStart {
                unchecked_range: r, ..
            } => code_section = Some(r.start as usize..r.end as usize),
            Payload::CodeSectionEntry(body) => {
                let r = body.range();
                bodies.push(r.start as usize..r.end as usize);
            }
            Payload::CustomSection(c) => {
                if let wasmparser::KnownCustom::Name(names) = c.as_known() {
                    for name in names {
                        let wasmparser::Name::Function(map) = name.map_err(e)? else {
                            continue;
                        };
                        for naming in map {
                            let naming = naming.map_err(e)?;
                            let plain = crate::guard::without_hashes(naming.name);
                            if TRAPS.contains(&plain.as_str()) {
                                indices.push(naming.index);
                                blanked.push(plain);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let Some(section) = code_section else {
        return Ok((wasm.to_vec(), Vec::new()));
    };
    let mut body = Vec::new();
    leb_u(&mut body, bodies.len() as u64);
    for (i, range) in bodies.iter().enumerate() {
        if indices.contains(&(imported + i as u32)) {
            // No locals; unreachable; end.
            body.extend([3, 0x00, 0x00, 0x0b]);
        } else {
            leb_u(&mut body, range.len() as u64);
            body.extend(&wasm[range.clone()]);
        }
    }
    Ok((with_section(wasm, 10, section, &body)?, blanked))
}

/// What wasm-bindgen exports for its own glue and the script tag's glue (`glue-helpers.js`)
/// never reads: the externref table and the start function, which is the import that fills
/// the table's first slots (the SDK hands no JavaScript value across), and the abort
/// handler's statics. Without these exports wasm-opt drops the table, the import and the
/// statics, and the glue's import goes (`script_glue`).
pub const UNREAD_EXPORTS: &[&str] = &[
    "__wbindgen_start",
    "__wbindgen_externrefs",
    "__abort_handler",
    "__instance_terminated",
];

/// The import that [`UNREAD_EXPORTS`]'s start function is.
pub const TABLE_INIT: &str = "__wbindgen_init_externref_table";

/// `wasm` without the exports [`UNREAD_EXPORTS`]. Fails if the start function is more than the
/// table's filling import, or if any code reads or writes a table (the table would then be
/// needed, filled).
pub fn without_unread_exports(wasm: &[u8]) -> Result<Vec<u8>> {
    let e = |e: wasmparser::BinaryReaderError| format!("reading the wasm: {e}");
    let mut imported = 0;
    let mut table_init = None;
    let mut kept = Vec::new();
    let mut section = None;
    let mut dropped = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(e)? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(e)?;
                    if matches!(import.ty, wasmparser::TypeRef::Func(_)) {
                        if import.name == TABLE_INIT {
                            table_init = Some(imported);
                        }
                        imported += 1;
                    }
                }
            }
            Payload::ExportSection(reader) => {
                let r = reader.range();
                section = Some(r.start as usize..r.end as usize);
                for export in reader {
                    let export = export.map_err(e)?;
                    if !UNREAD_EXPORTS.contains(&export.name) {
                        kept.push(export);
                        continue;
                    }
                    dropped += 1;
                    if export.name == "__wbindgen_start"
                        && (export.kind != wasmparser::ExternalKind::Func
                            || Some(export.index) != table_init)
                    {
                        return Err(format!(
                            "wasm-bindgen's start function is more than {TABLE_INIT}: the glue must call it"
                        ));
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader().map_err(e)?;
                while !ops.eof() {
                    let op = ops.read().map_err(e)?;
                    if format!("{op:?}").starts_with("Table") {
                        return Err(format!(
                            "the wasm uses a table ({op:?}): wasm-bindgen's externref table must stay filled"
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    let Some(section) = section else {
        return Err("the wasm has no exports".into());
    };
    if dropped != UNREAD_EXPORTS.len() {
        return Err(format!(
            "wasm-bindgen's exports changed: {dropped} of {UNREAD_EXPORTS:?} found"
        ));
    }
    let mut body = Vec::new();
    leb_u(&mut body, kept.len() as u64);
    for export in kept {
        leb_u(&mut body, export.name.len() as u64);
        body.extend(export.name.as_bytes());
        body.push(match export.kind {
            wasmparser::ExternalKind::Func => 0,
            wasmparser::ExternalKind::Table => 1,
            wasmparser::ExternalKind::Memory => 2,
            wasmparser::ExternalKind::Global => 3,
            other => return Err(format!("an export of kind {other:?}")),
        });
        leb_u(&mut body, u64::from(export.index));
    }
    with_section(wasm, 7, section, &body)
}

/// How far before a constant an address that reaches it may point: LLVM folds an index's
/// constant offset into the address (`table[i - 1]` reads from `table - 1` plus `i`).
const SLACK: u32 = 16;

/// The read-only constants of a linker map: each input section of the output's `.rodata`, as
/// the addresses it spans.
pub fn rodata_items(map: &str) -> Result<Vec<Range<u32>>> {
    let mut items: Vec<Range<u32>> = input_sections(map)?
        .into_iter()
        .filter(|(out, _)| out == ".rodata")
        .map(|(_, range)| range)
        .collect();
    if items.is_empty() {
        return Err("the linker map lists no .rodata sections".into());
    }
    items.sort_by_key(|r| r.start);
    Ok(items)
}

/// Where every input section of a linker map starts, in any output section (the constants,
/// and the statics of `.data` after them): an address that is one of these is that
/// section's own, not the end of the one before it.
pub fn starts(map: &str) -> Result<Vec<u32>> {
    let mut starts: Vec<u32> = input_sections(map)?
        .into_iter()
        .map(|(_, range)| range.start)
        .collect();
    starts.sort_unstable();
    Ok(starts)
}

/// Each input section of a linker map, with the output section it is in.
fn input_sections(map: &str) -> Result<Vec<(String, Range<u32>)>> {
    // The header names the columns; output sections, input sections and symbols are told
    // apart by the column their name starts in.
    let header = map.lines().next().unwrap_or_default();
    let (Some(out_col), Some(in_col)) = (header.find(" Out ").map(|i| i + 1), header.find(" In "))
    else {
        return Err("the linker map has no header naming its columns".into());
    };
    let in_col = in_col + 1;
    let mut sections = Vec::new();
    let mut out = String::new();
    for line in map.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let [addr, _off, size, name, ..] = cols.as_slice() else {
            continue;
        };
        let (Ok(addr), Ok(size)) = (u32::from_str_radix(addr, 16), u32::from_str_radix(size, 16))
        else {
            continue;
        };
        // The name cannot occur in the hexadecimal columns before it.
        let column = line.find(name);
        if column == Some(out_col) {
            out = name.to_string();
        } else if column == Some(in_col) {
            sections.push((out.clone(), addr..addr + size));
        }
    }
    Ok(sections)
}

/// An active data segment: its address, its bytes.
struct Segment {
    at: u32,
    bytes: Vec<u8>,
}

/// What the trim did: bytes of constants zeroed, bytes the data section lost.
pub struct Trimmed {
    pub wasm: Vec<u8>,
    pub zeroed: usize,
}

/// `wasm` with the constants of `items` that nothing reaches zeroed and its segments' trailing
/// zeros dropped; `starts` are where the map's input sections start (see [`starts`]).
pub fn dead_data(wasm: &[u8], items: &[Range<u32>], starts: &[u32]) -> Result<Trimmed> {
    let e = |e: wasmparser::BinaryReaderError| format!("reading the wasm: {e}");
    let roots = addresses(wasm)?;
    let mut segments: Vec<Segment> = Vec::new();
    let mut data_section: Option<Range<usize>> = None;
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::DataSection(reader) = payload.map_err(e)? {
            let r = reader.range();
            data_section = Some(r.start as usize..r.end as usize);
            for data in reader {
                let data = data.map_err(e)?;
                let DataKind::Active {
                    memory_index: 0,
                    offset_expr,
                } = &data.kind
                else {
                    return Err("a data segment that is not active in memory 0".into());
                };
                let at = const_of(offset_expr)?.ok_or("a data segment's address")?;
                segments.push(Segment {
                    at,
                    bytes: data.data.to_vec(),
                });
            }
        }
    }
    let Some(section) = data_section else {
        return Ok(Trimmed {
            wasm: wasm.to_vec(),
            zeroed: 0,
        });
    };

    let mut live = vec![false; items.len()];
    let reach = |live: &mut [bool], a: u32| {
        // The start of a section is that section's own address, not another's folded one
        // nor the end of the one before it.
        let a_start = starts.binary_search(&a).is_ok();
        for (i, item) in items.iter().enumerate() {
            let before = a < item.start && !a_start && a >= item.start.saturating_sub(SLACK);
            let end = a == item.end && !a_start;
            if before || end || (a >= item.start && a < item.end) {
                live[i] = true;
            }
        }
    };
    for &a in &roots {
        reach(&mut live, a);
    }
    // Pointers in data: in everything but the constants not (yet) found live, until no more
    // are found.
    loop {
        let before = live.iter().filter(|l| **l).count();
        for s in &segments {
            for (k, word) in s.bytes.windows(4).enumerate() {
                let at = s.at + k as u32;
                if !at.is_multiple_of(4) || is_dead(items, &live, at) {
                    continue;
                }
                reach(
                    &mut live,
                    u32::from_le_bytes([word[0], word[1], word[2], word[3]]),
                );
            }
        }
        if live.iter().filter(|l| **l).count() == before {
            break;
        }
    }

    let mut zeroed = 0;
    for s in &mut segments {
        for (k, b) in s.bytes.iter_mut().enumerate() {
            if is_dead(items, &live, s.at + k as u32) {
                zeroed += usize::from(*b != 0);
                *b = 0;
            }
        }
        let keep = s.bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        s.bytes.truncate(keep);
    }

    let mut body = Vec::new();
    leb_u(&mut body, segments.len() as u64);
    for s in &segments {
        // Active, memory 0, at `i32.const at`.
        body.extend([0x00, 0x41]);
        leb_s(&mut body, i64::from(s.at as i32));
        body.push(0x0b);
        leb_u(&mut body, s.bytes.len() as u64);
        body.extend(&s.bytes);
    }
    Ok(Trimmed {
        wasm: with_section(wasm, 11, section, &body)?,
        zeroed,
    })
}

/// `wasm` with section `id`, whose contents are at `contents`, holding `body` instead.
fn with_section(wasm: &[u8], id: u8, contents: Range<usize>, body: &[u8]) -> Result<Vec<u8>> {
    // The section's id and size come before its contents.
    let head = section_head(wasm, contents.start, id)?;
    let mut out = wasm[..head].to_vec();
    out.push(id);
    leb_u(&mut out, body.len() as u64);
    out.extend(body);
    out.extend(&wasm[contents.end..]);
    Ok(out)
}

/// The addresses `wasm`'s code and globals name: every 32-bit constant and memory offset.
fn addresses(wasm: &[u8]) -> Result<Vec<u32>> {
    let e = |e: wasmparser::BinaryReaderError| format!("reading the wasm: {e}");
    let mut roots = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(e)? {
            Payload::CodeSectionEntry(body) => {
                let mut ops = body.get_operators_reader().map_err(e)?;
                while !ops.eof() {
                    if let Some(a) = address_of(&ops.read().map_err(e)?)? {
                        roots.push(a);
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    roots.extend(const_of(&global.map_err(e)?.init_expr)?);
                }
            }
            _ => {}
        }
    }
    Ok(roots)
}

/// Whether `at` lies in a constant not found live.
fn is_dead(items: &[Range<u32>], live: &[bool], at: u32) -> bool {
    let i = items.partition_point(|r| r.end <= at);
    items.get(i).is_some_and(|r| r.contains(&at)) && !live[i]
}

/// The address an instruction names: a 32-bit constant, or a memory access's offset.
fn address_of(op: &Operator) -> Result<Option<u32>> {
    use Operator::*;
    Ok(match op {
        I32Const { value } => Some(*value as u32),
        I32Load { memarg }
        | I64Load { memarg }
        | F32Load { memarg }
        | F64Load { memarg }
        | I32Load8S { memarg }
        | I32Load8U { memarg }
        | I32Load16S { memarg }
        | I32Load16U { memarg }
        | I64Load8S { memarg }
        | I64Load8U { memarg }
        | I64Load16S { memarg }
        | I64Load16U { memarg }
        | I64Load32S { memarg }
        | I64Load32U { memarg }
        | I32Store { memarg }
        | I64Store { memarg }
        | F32Store { memarg }
        | F64Store { memarg }
        | I32Store8 { memarg }
        | I32Store16 { memarg }
        | I64Store8 { memarg }
        | I64Store16 { memarg }
        | I64Store32 { memarg } => Some(memarg.offset as u32),
        // Any other access to memory (atomics, SIMD) would be missed: refuse.
        other if format!("{other:?}").contains("memarg") => {
            return Err(format!("cannot follow addresses through {other:?}"))
        }
        _ => None,
    })
}

/// The value of a constant expression of one `i32.const`.
fn const_of(expr: &wasmparser::ConstExpr) -> Result<Option<u32>> {
    let mut ops = expr.get_operators_reader();
    let mut value = None;
    while !ops.eof() {
        if let Operator::I32Const { value: v } = ops.read().map_err(|e| e.to_string())? {
            value = Some(v as u32);
        }
    }
    Ok(value)
}

/// Where section `id`, whose contents start at `contents`, begins: its id byte, then its size.
fn section_head(wasm: &[u8], contents: usize, id: u8) -> Result<usize> {
    // The size is a LEB128 of at most 5 bytes; find the start whose size ends at `contents`.
    (1..=5)
        .map(|n| contents - n - 1)
        .find(|&head| {
            wasm.get(head) == Some(&id) && {
                let size = &wasm[head + 1..contents];
                size.last().is_some_and(|b| b & 0x80 == 0)
                    && size[..size.len() - 1].iter().all(|b| b & 0x80 != 0)
            }
        })
        .ok_or_else(|| format!("the head of section {id}"))
}

fn leb_u(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn leb_s(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0) {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "    Addr      Off     Size Out     In      Symbol
       -        8       f6 TYPE
     400      100       a0 .rodata
     400      100        8         a.o:(.rodata..Lanon.x.0)
     400      100        8                 .Lanon.x.0
     408      108       80         a.o:(.rodata..Lanon.x.1)
     488      188       18         a.o:(.rodata..Lanon.x.2)
     4a0      1a0        4 .data
     4a0      1a0        4         a.o:(.data.STATE)
     4a0      1a0        4                 STATE
";

    #[test]
    fn the_map_gives_each_constant() {
        assert_eq!(
            rodata_items(MAP).unwrap(),
            [0x400..0x408, 0x408..0x488, 0x488..0x4a0]
        );
        assert!(rodata_items("nothing").is_err());
        assert_eq!(starts(MAP).unwrap(), [0x400, 0x408, 0x488, 0x4a0]);
    }

    /// A module whose one function reads address `read`, with one data segment at 0x400 of
    /// `data`.
    fn module(read: u32, data: &[u8]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        let section = |m: &mut Vec<u8>, id: u8, body: &[u8]| {
            m.push(id);
            leb_u(m, body.len() as u64);
            m.extend(body);
        };
        // type () -> i32; one function; one memory of one page.
        section(&mut m, 1, &[1, 0x60, 0, 1, 0x7f]);
        section(&mut m, 3, &[1, 0]);
        section(&mut m, 5, &[1, 0, 1]);
        let mut code = vec![0x41];
        leb_s(&mut code, i64::from(read as i32));
        // i32.load offset=0; end
        code.extend([0x28, 2, 0, 0x0b]);
        let mut body = vec![0];
        body.extend(code);
        let mut sec = vec![1];
        leb_u(&mut sec, body.len() as u64);
        sec.extend(body);
        section(&mut m, 10, &sec);
        let mut seg = vec![1, 0, 0x41];
        leb_s(&mut seg, 0x400);
        seg.push(0x0b);
        leb_u(&mut seg, data.len() as u64);
        seg.extend(data);
        section(&mut m, 11, &seg);
        m
    }

    fn segment(wasm: &[u8]) -> Vec<u8> {
        for p in Parser::new(0).parse_all(wasm) {
            if let Payload::DataSection(r) = p.unwrap() {
                return r.into_iter().next().unwrap().unwrap().data.to_vec();
            }
        }
        panic!("no data")
    }

    #[test]
    fn what_nothing_reaches_goes_and_what_is_pointed_at_stays() {
        let items = rodata_items(MAP).unwrap();
        let starts = starts(MAP).unwrap();
        // 0x400: a pointer to 0x408 and a length; 0x408: 128 bytes of text; 0x488: 24 bytes
        // nobody names.
        let mut data = vec![];
        data.extend(0x408u32.to_le_bytes());
        data.extend(128u32.to_le_bytes());
        data.extend([b'x'; 128]);
        data.extend([7u8; 24]);
        data.extend(0x0102_0304u32.to_le_bytes()); // .data
                                                   // The code names 0x400 only.
        let far = module(0x400, &data);
        let t = dead_data(&far, &items, &starts).unwrap();
        let kept = segment(&t.wasm);
        assert_eq!(&kept[..0x88], &data[..0x88], "reached and pointed-at kept");
        assert_eq!(&kept[0x88..0xa0], &[0u8; 24], "the unnamed constant zeroed");
        assert_eq!(&kept[0xa0..], &data[0xa0..], ".data kept");
        assert_eq!(t.zeroed, 24);
        // 0x400 is 8 bytes before 0x408, but it is the start of a constant of its own: without
        // its pointer, 0x408 goes.
        let mut unpointed = data.clone();
        unpointed[..4].fill(0);
        let kept = segment(
            &dead_data(&module(0x400, &unpointed), &items, &starts)
                .unwrap()
                .wasm,
        );
        assert_eq!(&kept[8..0xa0], &[0u8; 0x98]);

        // Addresses that reach 0x488 without falling in it: just before it, and its end
        // when nothing starts there; one byte further does not.
        let third = |read: u32, starts: &[u32]| {
            segment(
                &dead_data(&module(read, &data), &items, starts)
                    .unwrap()
                    .wasm,
            )
        };
        let no_data = &starts[..3];
        for read in [0x488 - SLACK, 0x4a0] {
            assert_eq!(
                &third(read, no_data)[0x88..0xa0],
                &data[0x88..0xa0],
                "{read:#x}"
            );
        }
        assert_eq!(&third(0x488 - SLACK - 1, no_data)[0x88..0xa0], &[0u8; 24]);
        // 0x400 and its pointer to 0x408 are gone with nothing naming them.
        assert_eq!(&third(0x4a0, no_data)[..0x88], &[0u8; 0x88]);
        // 0x4a0 is where .data's STATE starts: code that reads STATE does not reach 0x488.
        assert_eq!(&third(0x4a0, &starts)[0x88..0xa0], &[0u8; 24]);

        // Trailing zeros go: with no .data after it, the dead constant shortens the segment.
        let tail = module(0x400, &data[..0xa0]);
        let t = dead_data(&tail, &items, &starts).unwrap();
        assert_eq!(segment(&t.wasm), &data[..0x88]);
        assert!(t.wasm.len() < tail.len());
        // What is left is still a valid module.
        wasmparser::Validator::new().validate_all(&t.wasm).unwrap();
    }
    /// A module as wasm-bindgen leaves it: the table's filling import, an externref table, the
    /// abort handler's globals, all exported beside `f`, whose body is `code` (without `end`);
    /// `start` is the function exported as `__wbindgen_start`.
    fn bindgen_module(code: &[u8], start: u8) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        let section = |m: &mut Vec<u8>, id: u8, body: &[u8]| {
            m.push(id);
            leb_u(m, body.len() as u64);
            m.extend(body);
        };
        section(&mut m, 1, &[1, 0x60, 0, 0]);
        let mut imports = vec![1, 1, b'a'];
        leb_u(&mut imports, TABLE_INIT.len() as u64);
        imports.extend(TABLE_INIT.as_bytes());
        imports.extend([0, 0]);
        section(&mut m, 2, &imports);
        section(&mut m, 3, &[1, 0]);
        // An externref table of 4; two immutable i32 globals.
        section(&mut m, 4, &[1, 0x6f, 0, 4]);
        section(
            &mut m,
            6,
            &[2, 0x7f, 0, 0x41, 0, 0x0b, 0x7f, 0, 0x41, 4, 0x0b],
        );
        let mut exports = vec![5, 1, b'f', 0, 1];
        for (name, kind, index) in [
            ("__wbindgen_start", 0, start),
            ("__wbindgen_externrefs", 1, 0),
            ("__abort_handler", 3, 0),
            ("__instance_terminated", 3, 1),
        ] {
            exports.push(name.len() as u8);
            exports.extend(name.as_bytes());
            exports.extend([kind, index]);
        }
        section(&mut m, 7, &exports);
        let mut body = vec![0];
        body.extend(code);
        body.push(0x0b);
        let mut sec = vec![1];
        leb_u(&mut sec, body.len() as u64);
        sec.extend(body);
        section(&mut m, 10, &sec);
        m
    }

    fn export_names(wasm: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        for p in Parser::new(0).parse_all(wasm) {
            if let Payload::ExportSection(r) = p.unwrap() {
                names.extend(r.into_iter().map(|e| e.unwrap().name.to_string()));
            }
        }
        names
    }

    #[test]
    fn the_unread_exports_go_unless_the_table_is_used_or_the_start_does_more() {
        let plain = bindgen_module(&[], 0);
        wasmparser::Validator::new().validate_all(&plain).unwrap();
        assert_eq!(export_names(&plain).len(), 5);
        let out = without_unread_exports(&plain).unwrap();
        wasmparser::Validator::new().validate_all(&out).unwrap();
        assert_eq!(export_names(&out), ["f"]);
        // `i32.const 0; table.get 0; drop`: the table is read.
        let reads = bindgen_module(&[0x41, 0, 0x25, 0, 0x1a], 0);
        wasmparser::Validator::new().validate_all(&reads).unwrap();
        let err = without_unread_exports(&reads).unwrap_err();
        assert!(err.contains("TableGet"), "{err}");
        // The start function is `f`, not the import.
        let err = without_unread_exports(&bindgen_module(&[], 1)).unwrap_err();
        assert!(err.contains("start function"), "{err}");
    }
}
