//! The SDK's size report: raw, gzip and brotli bytes of what a page downloads (the script-tag
//! build: footfall.js, with the wasm written into it), checked against the budget in
//! `js-wrapper/size-budget.txt`. footfall_bg.wasm, still served on its own, is listed apart.
//! The budget counts `gzip -9n` (Debian's gzip: zlib's deflate at level 9), as other SDKs are
//! measured; the collector serves zopfli's gzip and brotli (its build script compresses the
//! files once), listed as "served".

use crate::{read, Result, DIST};
use std::io::Write;
use std::path::Path;

/// `gzip -9n`'s output length: the gzip of a Debian machine (zlib's deflate at level 9, no file
/// name in the header), which others measure SDKs with. (flate2's Rust deflate, used before
/// 2026-12-01, wrote the script tag 9 B shorter.)
fn gzip(bytes: &[u8]) -> usize {
    let mut child = std::process::Command::new("gzip")
        .arg("-9nc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip (Debian's package of that name) runs");
    let mut stdin = child.stdin.take().expect("piped");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("gzip ran");
    writer
        .join()
        .expect("the writer ran")
        .expect("gzip read its input");
    assert!(out.status.success(), "gzip failed");
    out.stdout.len()
}

/// The gzip the collector serves (collector/build.rs): zopfli's.
fn zopfli(bytes: &[u8]) -> usize {
    let mut out = Vec::new();
    zopfli::compress(
        zopfli::Options::default(),
        zopfli::Format::Gzip,
        bytes,
        &mut out,
    )
    .expect("in memory");
    out.len()
}

fn brotli(bytes: &[u8]) -> usize {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).expect("in memory");
    out.len()
}

/// The JavaScript of footfall.js without the wasm written into it: the bytes before the string
/// of the wasm's bytes (`'\0asm...`) and after its closing quote (the last one in the file).
fn js_part(script: &[u8]) -> Vec<u8> {
    let start = script.windows(5).position(|w| w == b"'\0asm");
    let end = script.iter().rposition(|&b| b == b'\'');
    match (start, end) {
        (Some(start), Some(end)) if end > start => [&script[..start], &script[end + 1..]].concat(),
        _ => script.to_vec(),
    }
}

/// Prints the table; with `enforce`, fails when the gzip total is over budget. Returns the
/// gzip total in bytes.
pub fn report(root: &Path, enforce: bool) -> Result<usize> {
    let dist = root.join(DIST);
    let mut total = (0, 0, 0, 0);
    println!(
        "    {:<20} {:>9} {:>9} {:>9} {:>14}",
        "file", "raw B", "gzip B", "brotli B", "served gzip B"
    );
    for name in ["footfall_bg.wasm", "footfall.js", "loader.js"] {
        let bytes = std::fs::read(dist.join(name))
            .map_err(|e| format!("{}: {e} (build the SDK first)", dist.join(name).display()))?;
        let row = (bytes.len(), gzip(&bytes), brotli(&bytes), zopfli(&bytes));
        println!(
            "    {name:<20} {:>9} {:>9} {:>9} {:>14}",
            row.0, row.1, row.2, row.3
        );
        if name == "footfall.js" {
            total = row;
            let js = js_part(&bytes);
            let row = (js.len(), gzip(&js), brotli(&js), zopfli(&js));
            println!(
                "      {:<18} {:>9} {:>9} {:>9} {:>14}",
                "of which JS", row.0, row.1, row.2, row.3
            );
        }
    }
    println!(
        "    {:<20} {:>9} {:>9} {:>9} {:>14}   ({:.1} KB gzipped; the goal is 13 KB)",
        "script tag",
        total.0,
        total.1,
        total.2,
        total.3,
        total.1 as f64 / 1024.0
    );
    let budget: usize = read(&root.join("js-wrapper/size-budget.txt"))?
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .and_then(|l| l.trim().parse().ok())
        .ok_or("js-wrapper/size-budget.txt holds no number")?;
    println!("    budget: {budget} B gzipped (js-wrapper/size-budget.txt)");
    if enforce && total.1 > budget {
        return Err(format!(
            "the SDK grew past its budget: {} B gzipped > {budget} B",
            total.1
        ));
    }
    Ok(total.1)
}
