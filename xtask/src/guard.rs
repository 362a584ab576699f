//! The SDK's build guard: fails when `core::fmt` or panic-message code reaches the wasm.
//! Each of them costs hundreds of bytes for every visitor and comes in silently (an index, a
//! slice range, an `unwrap` on a `Result` with a `Debug` error). Read from the function names
//! of wasm-bindgen's output, which keeps the name section (wasm-opt strips it afterwards).

use crate::Result;
use std::path::Path;

/// What stays and why: `alloc`'s out-of-memory handler formats the size it failed to get
/// (`u32`'s `Display`, `pad_integral`), and stable Rust cannot replace that handler; the two
/// panic entry points lead to the SDK's own handler, which formats nothing. The build then
/// makes these trap at once, and wasm-opt drops the formatting (see trim.rs).
const ALLOWED: &[&str] = &[
    "<core::fmt::Formatter>::pad_integral",
    "<core::fmt::Formatter>::pad_integral::write_prefix",
    "<u32 as core::fmt::Display>::fmt",
    "core::panicking::panic_fmt",
    "core::panicking::panic_nounwind_fmt",
];

/// Fails, naming them, if functions of `core::fmt` or of Rust's panic machinery other than
/// [`ALLOWED`] are in the wasm at `path`.
pub fn no_fmt(path: &Path) -> Result {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let names = function_names(&bytes).ok_or("the wasm has no readable name section")?;
    if names.is_empty() {
        return Err("the wasm's name section lists no functions".into());
    }
    let found: Vec<String> = names
        .iter()
        .map(|n| without_hashes(n))
        .filter(|n| is_fmt_or_panic(n) && !ALLOWED.contains(&n.as_str()))
        .collect();
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "core::fmt or panic-message code reached the wasm ({}); see sdk-wasm/src/lib.rs",
            found.join(", ")
        ))
    }
}

fn is_fmt_or_panic(name: &str) -> bool {
    [
        "core::fmt",
        "panicking",
        "panic_bounds_check",
        "unwrap_failed",
        "expect_failed",
    ]
    .iter()
    .any(|p| name.contains(p))
        || name.contains("slice_") && name.contains("_fail")
        || name.starts_with("std::")
}

/// `core[c5930c85a12de822]::fmt` to `core::fmt`, and no trailing `::h0123...` hash.
pub(crate) fn without_hashes(name: &str) -> String {
    let mut out = String::new();
    let mut rest = name;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        match rest[open..].find(']') {
            Some(close) => rest = &rest[open + close + 1..],
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    out.push_str(rest);
    match out.rfind("::h") {
        Some(i)
            if out[i + 3..].len() == 16 && out[i + 3..].bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            out.truncate(i);
            out
        }
        _ => out,
    }
}

fn leb(bytes: &[u8], at: &mut usize) -> Option<usize> {
    let mut value = 0usize;
    let mut shift = 0;
    loop {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
    }
}

/// The function names of the `name` custom section.
fn function_names(bytes: &[u8]) -> Option<Vec<String>> {
    let mut at = 8;
    while at < bytes.len() {
        let id = *bytes.get(at)?;
        at += 1;
        let size = leb(bytes, &mut at)?;
        let end = at + size;
        if id == 0 {
            let mut p = at;
            let len = leb(bytes, &mut p)?;
            if bytes.get(p..p + len)? == b"name" {
                p += len;
                while p < end {
                    let sub = *bytes.get(p)?;
                    p += 1;
                    let sub_size = leb(bytes, &mut p)?;
                    if sub == 1 {
                        let mut names = Vec::new();
                        let count = leb(bytes, &mut p)?;
                        for _ in 0..count {
                            leb(bytes, &mut p)?;
                            let len = leb(bytes, &mut p)?;
                            names
                                .push(String::from_utf8_lossy(bytes.get(p..p + len)?).into_owned());
                            p += len;
                        }
                        return Some(names);
                    }
                    p += sub_size;
                }
            }
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_go_and_the_checks_see_through_them() {
        assert_eq!(
            without_hashes("<core[c5930c85a12de822]::fmt::Formatter>::pad_integral"),
            "<core::fmt::Formatter>::pad_integral"
        );
        assert_eq!(
            without_hashes("footfall_sdk::api::view::hb99a2905573b2d4e"),
            "footfall_sdk::api::view"
        );
        assert!(is_fmt_or_panic("core::fmt::write"));
        assert!(is_fmt_or_panic("core::panicking::panic_bounds_check"));
        assert!(is_fmt_or_panic(
            "core::slice::index::slice_end_index_len_fail"
        ));
        assert!(!is_fmt_or_panic("footfall_wire::json::write_u64"));
    }

    #[test]
    fn names_are_read_from_the_name_section() {
        // A module with no code and a name section naming function 0 `f`.
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        let names = [b"\x04name".as_slice(), b"\x01\x04\x01\x00\x01f"].concat();
        wasm.push(0);
        wasm.push(names.len() as u8);
        wasm.extend(names);
        assert_eq!(function_names(&wasm), Some(vec!["f".to_owned()]));
    }
}
